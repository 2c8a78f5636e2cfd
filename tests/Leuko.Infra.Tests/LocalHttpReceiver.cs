using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Leuko.Infra.Tests;

/// <summary>One request as a <see cref="LocalHttpReceiver"/> received it.</summary>
public sealed record ReceivedRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>
/// A real HTTP server on 127.0.0.1 (HttpListener on a free port) that records every request and answers with the
/// status and headers <paramref name="respond"/> picks: the far end of the scripts under infra/ in tests (the
/// Functions host's webhook, a container registry).
/// </summary>
public sealed class LocalHttpReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Func<ReceivedRequest, (int Status, IReadOnlyDictionary<string, string> Headers)> _respond;
    private readonly Task _loop;

    public ConcurrentQueue<ReceivedRequest> Requests { get; } = new();

    public string BaseUrl { get; }

    public LocalHttpReceiver(Func<ReceivedRequest, (int Status, IReadOnlyDictionary<string, string> Headers)> respond)
    {
        _respond = respond;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            BaseUrl = $"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}";
        }

        _listener.Prefixes.Add(BaseUrl + "/");
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var reader = new StreamReader(context.Request.InputStream);
            var body = await reader.ReadToEndAsync();
            var headers = context.Request.Headers.AllKeys.Where(k => k is not null)
                .ToDictionary(k => k!, k => context.Request.Headers[k]!, StringComparer.OrdinalIgnoreCase);
            var request = new ReceivedRequest(context.Request.HttpMethod, context.Request.Url!.PathAndQuery, headers, body);
            Requests.Enqueue(request);
            var (status, responseHeaders) = _respond(request);
            context.Response.StatusCode = status;
            foreach (var (name, value) in responseHeaders)
            {
                context.Response.Headers[name] = value;
            }

            context.Response.ContentLength64 = 0;
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(10));
    }
}
