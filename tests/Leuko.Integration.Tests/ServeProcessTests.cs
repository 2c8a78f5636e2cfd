using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Leuko.Azure.Hosting;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;

namespace Leuko.Integration.Tests;

/// <summary><c>leuko serve</c> as a real process against Azurite: its HTTP API, and a kill in the middle of a batch.</summary>
[Collection("Azurite")]
public class ServeProcessTests
{
    /// <summary>
    /// The served processes' configuration folder (<c>XDG_CONFIG_HOME</c>): <c>leuko serve</c> run as the README runs it
    /// keeps its webhook secrets key in the default place, <c>leuko/webhook-secrets.key</c> there, not in the user's own.
    /// </summary>
    private static readonly string ConfigHome = Path.Combine(Path.GetTempPath(), "leuko-tests", Guid.NewGuid().ToString("N"), "config");

    [Fact]
    public async Task AConsumerKilledMidBatchLosesAndDoublesNothingAfterARestart()
    {
        await Azurite.RequireAsync();
        var queue = Azurite.Unique("killed");
        var run = Azurite.Unique("kill");
        var samples = Samples.All();
        var names = Enumerable.Range(0, 40).Select(i => $"{run}/{i:D2}-{Path.GetFileName(samples[i % samples.Count].Name)}").ToList();
        int port = FreePort();
        var results = new TableResultStore(Azurite.Tables);

        // Every upload is there before the host starts, and it is killed (no graceful shutdown) as soon as its first image
        // is final: the kill follows the pipeline's own progress, so on any machine some images are done and most are not
        // (finishing the other 39 between two looks at the table would take thousands of images a second).
        for (int i = 0; i < names.Count; i++)
        {
            await PipelineHarness.UploadAsync(Containers.Uploads, names[i], samples[i % samples.Count].Data);
        }

        async Task<int> FinalAsync() =>
            (await Task.WhenAll(names.Select(n => results.GetImageAsync(PipelineIds.Image(n), CancellationToken.None)))).Count(r => r is { IsFinal: true });

        using (var first = Serve(queue, port))
        {
            try
            {
                var deadline = DateTime.UtcNow.AddMinutes(5); // only a bound on a hang: a loaded machine takes minutes to start a host
                while (await FinalAsync() == 0)
                {
                    Assert.False(first.HasExited, "leuko serve exited before finishing an image");
                    Assert.True(DateTime.UtcNow < deadline, "leuko serve finished no image within 5 minutes");
                    await Task.Delay(20);
                }
            }
            finally
            {
                // Killed whatever happened above: a host left running would take other tests' uploads on the shared Azurite.
                first.Kill(entireProcessTree: true);
                await first.WaitForExitAsync();
            }
        }

        Assert.InRange(await FinalAsync(), 1, names.Count - 1); // counted once the host is dead: the state it left

        using var second = Serve(queue, port);
        try
        {
            await WaitForHealthAsync(port, second);
            var rows = await PipelineHarness.WaitForImagesAsync(results, names, TimeSpan.FromMinutes(3));
            Assert.All(rows, r => Assert.Equal(ImageStatus.Completed, r.Status));
            Assert.Equal(names.Count, rows.Select(r => r.ImageId).Distinct().Count());
            foreach (var row in rows)
            {
                // Exactly the image's cells, each once: a redelivered message rewrote the same rows.
                var cells = await results.GetCellsAsync(row.ImageId, row.BlobETag!, CancellationToken.None);
                Assert.Equal(row.Cells, cells.Count);
                Assert.Equal(Enumerable.Range(0, row.Cells), cells.Select(c => c.Index));
            }

            // The HTTP API of the running host.
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var image = JsonNode.Parse(await http.GetStringAsync($"/api/images/{rows[0].ImageId}"))!;
            Assert.Equal("completed", image["status"]!.GetValue<string>());
            Assert.Equal(rows[0].Cells, image["cells"]!.AsArray().Count);
            Assert.Equal(rows[0].Cells, image["differential"]!.AsObject().Sum(d => d.Value!["count"]!.GetValue<int>()));
            var png = await http.GetByteArrayAsync($"/api/images/{rows[0].ImageId}/annotated");
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/images/no-such-image")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/batches/no-such-batch")).StatusCode);

            // The webhook API of the running host. The subscription is for a source no image has: the last image's event is
            // queued just after its row is final, so one for this run's images could still reach a subscription made now.
            var created = await http.PostAsJsonAsync("/api/webhooks", new { url = $"http://127.0.0.1:{port}/hook", types = new[] { "image.completed" }, sourcePrefix = $"{run}-none/" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var subscription = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
            var id = subscription["subscription"]!["id"]!.GetValue<string>();
            Assert.StartsWith("whsec_", subscription["secret"]!.GetValue<string>());
            Assert.Contains(id, await http.GetStringAsync("/api/webhooks"));
            Assert.DoesNotContain("whsec_", await http.GetStringAsync("/api/webhooks"));
            var rotated = await http.PostAsync($"/api/webhooks/{id}/rotate-secret", null);
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
            var rotatedSecret = JsonNode.Parse(await rotated.Content.ReadAsStringAsync())!["secret"]!.GetValue<string>();
            Assert.NotEqual(subscription["secret"]!.GetValue<string>(), rotatedSecret);

            // Both secrets are stored sealed with the default local key file, which serve created readable by its owner only.
            var keyFile = Path.Combine(ConfigHome, "leuko", "webhook-secrets.key");
            Assert.True(File.Exists(keyFile), $"leuko serve made no key file at {keyFile}");
            Assert.True(OperatingSystem.IsWindows() || File.GetUnixFileMode(keyFile) == (UnixFileMode.UserRead | UnixFileMode.UserWrite));
            var entity = (await Azurite.Tables.GetTableClient(TableWebhookStore.WebhooksTable).GetEntityAsync<TableEntity>("webhook", id)).Value;
            var stored = string.Join("\n", entity.Select(p => $"{p.Key}={p.Value}"));
            foreach (var secret in new[] { subscription["secret"]!.GetValue<string>(), rotatedSecret })
            {
                Assert.DoesNotContain(secret["whsec_".Length..], stored);
            }

            Assert.Contains("local:", stored);
            Assert.Equal("[]", await http.GetStringAsync($"/api/webhooks/{id}/deliveries"));
            Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync($"/api/webhooks/{id}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.DeleteAsync($"/api/webhooks/{id}")).StatusCode);
            var refused = await http.PostAsJsonAsync("/api/webhooks", new { url = "https://10.1.2.3/hook" });
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("refused", await refused.Content.ReadAsStringAsync());
        }
        finally
        {
            second.Kill(entireProcessTree: true);
        }
    }

    [Theory]
    [InlineData("http://0.0.0.0:{0}")]
    [InlineData("http://[::]:{0}")]
    public async Task ServeRefusesToListenBeyondLoopbackWithoutAKey(string urls)
    {
        await Azurite.RequireAsync();
        using var serve = ServeProcess.Start(["--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("open"), "--urls", string.Format(urls, FreePort())]);

        int exit = await serve.WaitForExitAsync(TimeSpan.FromMinutes(2)); // only a bound on a hang
        Assert.Equal(2, exit);
        Assert.Contains("is reachable from other machines, and the API has no key: give --api-key KEY (or $LEUKO_API_KEY)", serve.Stderr);
        Assert.Equal("", serve.Stdout);
    }

    [Fact]
    public async Task ServeBeyondLoopbackWithKeysRequiresThem()
    {
        await Azurite.RequireAsync();
        int port = FreePort();
        var (admin, lims, master) = (NewKey(), NewKey(), NewKey());
        var keys = Path.Combine(Path.GetTempPath(), $"leuko-keys-{Guid.NewGuid():N}.json");
        File.WriteAllText(keys, new JsonObject
        {
            ["masterKey"] = new JsonObject { ["name"] = "master", ["value"] = master, ["encrypted"] = false },
            ["functionKeys"] = new JsonArray(new JsonObject { ["name"] = "lims", ["value"] = lims, ["encrypted"] = false }),
        }.ToJsonString());
        using var serve = ServeProcess.Start(
            ["--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("keyed"), "--urls", $"http://0.0.0.0:{port}", "--api-keys", keys, "--allow-loopback-webhooks"],
            new() { ["LEUKO_API_KEY"] = admin, ["Leuko__ApiClients__lims"] = "read,subscribe" });
        try
        {
            await WaitForHealthAsync(port, serve.Process); // health needs no key
            await serve.WaitForOutputAsync("API access:");
            Assert.Contains("API access: a key is required (x-functions-key header or code query); clients: admin (admin), lims (read,subscribe)", serve.Stdout);

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/images/x")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await Get(http, "/api/images/x", master)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await Get(http, "/api/images/x", NewKey())).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await Get(http, "/api/images/x", lims)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/api/images/x?code={Uri.EscapeDataString(admin)}")).StatusCode);

            // lims's subscription is its own: the admin sees it; it does not see the admin's.
            var mine = await Post(http, "/api/webhooks", lims, new { url = $"http://127.0.0.1:{port}/hook" });
            Assert.Equal(HttpStatusCode.Created, mine.StatusCode);
            var id = JsonNode.Parse(await mine.Content.ReadAsStringAsync())!["subscription"]!["id"]!.GetValue<string>();
            var theirs = await Post(http, "/api/webhooks", admin, new { url = $"http://127.0.0.1:{port}/hook" });
            var adminsId = JsonNode.Parse(await theirs.Content.ReadAsStringAsync())!["subscription"]!["id"]!.GetValue<string>();
            var listed = await (await Get(http, "/api/webhooks", lims)).Content.ReadAsStringAsync();
            Assert.Contains(id, listed);
            Assert.DoesNotContain(adminsId, listed);
            Assert.Contains(id, await (await Get(http, "/api/webhooks", admin)).Content.ReadAsStringAsync());
            using var rotate = new HttpRequestMessage(HttpMethod.Post, $"/api/webhooks/{adminsId}/rotate-secret") { Headers = { { "x-functions-key", lims } } };
            Assert.Equal(HttpStatusCode.NotFound, (await http.SendAsync(rotate)).StatusCode);

            // Deleted: one left on the shared Azurite would be sent every later test's events at a port long closed.
            foreach (var subscription in new[] { id, adminsId })
            {
                using var delete = new HttpRequestMessage(HttpMethod.Delete, $"/api/webhooks/{subscription}") { Headers = { { "x-functions-key", admin } } };
                Assert.Equal(HttpStatusCode.NoContent, (await http.SendAsync(delete)).StatusCode);
            }
        }
        finally
        {
            serve.Process.Kill(entireProcessTree: true);
            File.Delete(keys);
        }
    }

    [Fact]
    public async Task ServeOnLoopbackWithAKeyRequiresItToo()
    {
        await Azurite.RequireAsync();
        int port = FreePort();
        var admin = NewKey();
        using var serve = ServeProcess.Start(["--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("loopkey"), "--urls", $"http://127.0.0.1:{port}", "--api-key", admin]);
        try
        {
            await WaitForHealthAsync(port, serve.Process);
            await serve.WaitForOutputAsync("API access:");
            Assert.Contains("API access: a key is required", serve.Stdout);

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/webhooks")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await Get(http, "/api/webhooks", admin[..^1])).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await Get(http, "/api/webhooks", admin)).StatusCode);
        }
        finally
        {
            serve.Process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ServeOnLoopbackWithoutAKeyIsOpenAndSaysSo()
    {
        await Azurite.RequireAsync();
        int port = FreePort();
        using var serve = ServeProcess.Start(["--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("open"), "--urls", $"http://127.0.0.1:{port}"]);
        try
        {
            await WaitForHealthAsync(port, serve.Process);
            await serve.WaitForOutputAsync("API access:");
            Assert.Contains("API access: open, no key (loopback only, for development): every caller is admin.", serve.Stdout);

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/webhooks")).StatusCode);
        }
        finally
        {
            serve.Process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task ServeWithAKeysFileItCannotUseDoesNotStart()
    {
        await Azurite.RequireAsync();
        var keys = Path.Combine(Path.GetTempPath(), $"leuko-keys-{Guid.NewGuid():N}.json");
        File.WriteAllText(keys, "{\"masterKey\": {\"name\": \"master\", \"value\": \"0123456789abcdef0123\"}}");
        try
        {
            using var serve = ServeProcess.Start(["--storage", Azurite.ConnectionString, "--queue", Azurite.Unique("badkeys"), "--urls", $"http://0.0.0.0:{FreePort()}", "--api-keys", keys]);

            Assert.Equal(2, await serve.WaitForExitAsync(TimeSpan.FromMinutes(2))); // only a bound on a hang
            Assert.Contains("error: cannot start:", serve.Stderr);
            Assert.Contains("no functionKeys array", serve.Stderr);
        }
        finally
        {
            File.Delete(keys);
        }
    }

    [Theory]
    [InlineData("storage", "error: --storage is not a storage connection string")] // was an unhandled FormatException
    [InlineData("model", "error: model card not found")] // was the host's failure log with a stack, then the line
    [InlineData("keys", "error: cannot start: API keys file")] // the host's failure log is not printed
    [InlineData("service-bus", "error: cannot start: The connection string could not be parsed")] // was an unhandled FormatException
    public async Task ServeWithAStorageStringOrAModelItCannotUseSaysSoInOneLine(string wrong, string says)
    {
        var model = Path.Combine(Path.GetTempPath(), $"leuko-model-{Guid.NewGuid():N}.onnx");
        File.WriteAllText(model, "not a model");
        try
        {
            using var serve = ServeProcess.Start(wrong switch
            {
                "storage" => ["--storage", "AccountName=devstoreaccount1;garbage", "--urls", $"http://127.0.0.1:{FreePort()}"],
                "model" => ["--storage", Azurite.ConnectionString, "--model", model, "--urls", $"http://127.0.0.1:{FreePort()}"],
                "keys" => ["--storage", Azurite.ConnectionString, "--api-keys", model + ".missing.json", "--urls", $"http://127.0.0.1:{FreePort()}"],
                _ => ["--storage", Azurite.ConnectionString, "--transport", "service-bus", "--service-bus", "garbage", "--urls", $"http://127.0.0.1:{FreePort()}"],
            });

            Assert.Equal(2, await serve.WaitForExitAsync(TimeSpan.FromMinutes(2))); // only a bound on a hang
            Assert.Contains(says, serve.Stderr);
            Assert.DoesNotContain("Unhandled exception", serve.Stderr);
            Assert.DoesNotContain("   at ", serve.Stderr + serve.Stdout);
        }
        finally
        {
            File.Delete(model);
        }
    }

    [Fact]
    public async Task ServeWithAStorageAccountThatDoesNotAnswerSaysSoInOneLine()
    {
        // Azurite's own account and key, on ports nothing listens on: the SDK's retries all fail without an answer.
        int blob = FreePort(), queue = FreePort(), table = FreePort();
        var storage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
                      "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
                      $"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;" +
                      $"TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;";
        using var serve = ServeProcess.Start(["--storage", storage, "--urls", $"http://127.0.0.1:{FreePort()}"]);

        Assert.Equal(2, await serve.WaitForExitAsync(TimeSpan.FromMinutes(3))); // only a bound on a hang
        Assert.Contains("error: cannot start: Azure Storage did not answer after", serve.Stderr);
        Assert.Contains($"127.0.0.1:{blob}", serve.Stderr);
        Assert.DoesNotContain("Unhandled exception", serve.Stderr);
        Assert.DoesNotContain("AggregateException", serve.Stderr);
    }

    private static string NewKey() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20));

    private static Task<HttpResponseMessage> Get(HttpClient http, string path, string key) =>
        http.SendAsync(new HttpRequestMessage(HttpMethod.Get, path) { Headers = { { "x-functions-key", key } } });

    private static Task<HttpResponseMessage> Post(HttpClient http, string path, string key, object body) =>
        http.SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Headers = { { "x-functions-key", key } }, Content = JsonContent.Create(body) });

    /// <summary>A <c>leuko serve</c> process with its output kept, and the environment given (no API key unless given).</summary>
    private sealed class ServeProcess : IDisposable
    {
        private readonly System.Text.StringBuilder _stdout = new();
        private readonly System.Text.StringBuilder _stderr = new();

        private ServeProcess(Process process) => Process = process;

        public Process Process { get; }

        public string Stdout
        {
            get
            {
                lock (_stdout)
                {
                    return _stdout.ToString();
                }
            }
        }

        public string Stderr
        {
            get
            {
                lock (_stderr)
                {
                    return _stderr.ToString();
                }
            }
        }

        public static ServeProcess Start(string[] args, Dictionary<string, string>? environment = null)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "leuko.dll"));
            start.ArgumentList.Add("serve");
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            start.Environment.Remove("LEUKO_API_KEY");
            foreach (var (name, value) in environment ?? [])
            {
                start.Environment[name] = value;
            }

            var serve = new ServeProcess(Process.Start(start)!);
            serve.Process.OutputDataReceived += (_, e) => Append(serve._stdout, e.Data);
            serve.Process.ErrorDataReceived += (_, e) => Append(serve._stderr, e.Data);
            serve.Process.BeginOutputReadLine();
            serve.Process.BeginErrorReadLine();
            return serve;
        }

        /// <summary>The exit code, once the process has exited and its output is read; fails past <paramref name="bound"/>.</summary>
        public async Task<int> WaitForExitAsync(TimeSpan bound)
        {
            using var cts = new CancellationTokenSource(bound);
            await Process.WaitForExitAsync(cts.Token);
            return Process.ExitCode;
        }

        /// <summary>Until stdout has <paramref name="text"/> (the start-up lines follow the moment the API answers).</summary>
        public async Task WaitForOutputAsync(string text)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60); // only a bound on a hang
            while (!Stdout.Contains(text, StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, $"leuko serve did not write '{text}': {Stdout}{Stderr}");
                await Task.Delay(50);
            }
        }

        private static void Append(System.Text.StringBuilder text, string? line)
        {
            if (line is not null)
            {
                lock (text)
                {
                    text.AppendLine(line);
                }
            }
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }

            Process.Dispose();
        }
    }

    private static Process Serve(string queue, int port)
    {
        var leuko = Path.Combine(AppContext.BaseDirectory, "leuko.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { leuko, "serve", "--storage", Azurite.ConnectionString, "--transport", Transports.StorageQueue, "--queue", queue,
                "--urls", $"http://127.0.0.1:{port}", "--queue-lock", "3", "--allow-loopback-webhooks" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["XDG_CONFIG_HOME"] = ConfigHome },
        };
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitForHealthAsync(int port, Process process)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(process.HasExited, $"leuko serve exited with {(process.HasExited ? process.ExitCode : 0)}");
            try
            {
                var health = JsonNode.Parse(await http.GetStringAsync("/api/health"))!;
                Assert.Equal("ok", health["status"]!.GetValue<string>());
                return;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(250);
            }
            catch (TaskCanceledException)
            {
                await Task.Delay(250);
            }
        }

        Assert.Fail("leuko serve did not answer /api/health within 60 s");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
