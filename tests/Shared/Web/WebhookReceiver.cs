using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Leuko.Tests;

/// <summary>A request the receiver got: the three Standard Webhooks headers and the raw body.</summary>
public sealed record ReceivedWebhook(string Id, string Timestamp, string Signature, string Body, int AnsweredWith, DateTimeOffset At);

/// <summary>
/// A real HTTP receiver (Kestrel on 127.0.0.1, a free port) for the webhook tests. <c>respond</c> picks the status
/// (and an optional Retry-After) for the n-th request (1-based).
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SemaphoreSlim _arrived = new(0);
    private int _count;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<ReceivedWebhook> Requests { get; } = new();

    public string Url { get; private set; } = "";

    public static async Task<WebhookReceiver> StartAsync(Func<int, (int Status, string? RetryAfter)>? respond = null)
    {
        respond ??= _ => (200, null);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/hook", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            var (status, retryAfter) = respond(Interlocked.Increment(ref receiver._count));
            receiver.Requests.Enqueue(new ReceivedWebhook(
                context.Request.Headers["webhook-id"].ToString(), context.Request.Headers["webhook-timestamp"].ToString(),
                context.Request.Headers["webhook-signature"].ToString(), body, status, DateTimeOffset.UtcNow));
            receiver._arrived.Release();
            if (retryAfter is not null)
            {
                context.Response.Headers.RetryAfter = retryAfter;
            }

            context.Response.StatusCode = status;
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = $"{address}/hook";
        return receiver;
    }

    /// <summary>
    /// Standard Webhooks verification written here from the specification's text, independently of the product's
    /// signer: the signed content is "{webhook-id}.{webhook-timestamp}.{body}", the key is the base64-decoded part of
    /// the secret after "whsec_", the signature is base64 HMAC-SHA256 prefixed "v1,", and the header may hold several,
    /// space-separated.
    /// </summary>
    public static bool SignedWith(ReceivedWebhook request, string secret)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        var expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{request.Id}.{request.Timestamp}.{request.Body}")));
        return request.Signature.Split(' ').Any(s => CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(s), Encoding.ASCII.GetBytes(expected)));
    }

    /// <summary>Returns once <paramref name="count"/> requests have arrived (fails after a minute: an event, not a measured wait).</summary>
    public async Task WaitForRequestsAsync(int count)
    {
        while (Requests.Count < count)
        {
            if (!await _arrived.WaitAsync(TimeSpan.FromMinutes(1)))
            {
                throw new TimeoutException($"{Requests.Count} of {count} webhook requests arrived within a minute");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
