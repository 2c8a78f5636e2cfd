using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Leuko.Tests;

namespace Leuko.Cli.Tests;

/// <summary>
/// A real <c>leuko serve</c> process on Azurite, on a free loopback port, with named client keys (a keys file and
/// their roles in <c>Leuko__ApiClients__NAME</c>), loopback webhooks allowed, and its own queue and secrets key file.
/// </summary>
internal sealed class ServeHost : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TempDir _dir;

    private ServeHost(Process process, TempDir dir, int port, IReadOnlyDictionary<string, string> keys)
    {
        _process = process;
        _dir = dir;
        Url = $"http://127.0.0.1:{port}";
        Keys = keys;
        Http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromMinutes(2) };
    }

    public string Url { get; }

    /// <summary>Each client's key, by its name.</summary>
    public IReadOnlyDictionary<string, string> Keys { get; }

    public HttpClient Http { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts serve with the clients <paramref name="clients"/> (name: roles) and waits until its API answers.</summary>
    public static async Task<ServeHost> StartAsync(IReadOnlyDictionary<string, string> clients)
    {
        await Azurite.RequireAsync();
        var dir = new TempDir();
        var keys = clients.Keys.ToDictionary(c => c, _ => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(30)));
        var file = Path.Combine(dir.Path, "keys.json");
        File.WriteAllText(file, new JsonObject
        {
            ["functionKeys"] = new JsonArray(keys.Select(k => (JsonNode)new JsonObject { ["name"] = k.Key, ["value"] = k.Value }).ToArray()),
        }.ToJsonString());
        int port = FreePort();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
                 {
                     Path.Combine(AppContext.BaseDirectory, "leuko.dll"), "serve", "--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("review"),
                     "--urls", $"http://127.0.0.1:{port}", "--api-keys", file, "--allow-loopback-webhooks", "--webhook-retry", "1",
                     "--secrets-key-file", Path.Combine(dir.Path, "secrets.key"),
                 })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove("LEUKO_API_KEY");
        foreach (var (name, roles) in clients)
        {
            start.Environment[$"Leuko__ApiClients__{name}"] = roles;
        }

        var host = new ServeHost(Process.Start(start)!, dir, port, keys);
        host._process.OutputDataReceived += (_, e) => host.Append(e.Data);
        host._process.ErrorDataReceived += (_, e) => host.Append(e.Data);
        host._process.BeginOutputReadLine();
        host._process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(90); // only a bound on a hang
        while (true)
        {
            Assert.False(host._process.HasExited, $"leuko serve exited: {host.Output}");
            try
            {
                if ((await host.Http.GetAsync("/api/health")).IsSuccessStatusCode)
                {
                    return host;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            Assert.True(DateTime.UtcNow < deadline, $"leuko serve did not answer /api/health: {host.Output}");
            await Task.Delay(100);
        }
    }

    /// <summary>A request as <paramref name="client"/>.</summary>
    public async Task<(HttpStatusCode Status, JsonNode? Body)> SendAsync(string client, HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add("x-functions-key", Keys[client]);
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length > 0 && text.TrimStart().StartsWith('{') ? JsonNode.Parse(text) : null);
    }

    /// <summary>Until every image is final (completed, no-leukocytes or failed), by asking the API.</summary>
    public async Task WaitForImagesAsync(string client, IEnumerable<string> imageIds)
    {
        var deadline = DateTime.UtcNow.AddMinutes(5); // only a bound on a hang
        foreach (var id in imageIds)
        {
            while (true)
            {
                var (status, body) = await SendAsync(client, HttpMethod.Get, $"/api/images/{id}");
                if (status == HttpStatusCode.OK && body!["status"]!.GetValue<string>() is "completed" or "no-leukocytes" or "failed")
                {
                    break;
                }

                Assert.True(DateTime.UtcNow < deadline, $"image {id} is not final: {status} {body}; {Output}");
                await Task.Delay(100);
            }
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _dir.Dispose();
    }
}
