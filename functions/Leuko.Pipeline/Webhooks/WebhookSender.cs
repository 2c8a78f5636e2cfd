using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Secrets;
using Leuko.Pipeline.Stages;

namespace Leuko.Pipeline.Webhooks;

/// <summary>Settings of webhook delivery.</summary>
/// <param name="AllowLoopback">Development only: lets subscribers on this machine (http://127.0.0.1) receive; private and metadata addresses stay refused.</param>
/// <param name="RetrySchedule">Wait before each retry (attempt 2, 3, ...); after the last, the delivery is dead-lettered.</param>
/// <param name="Timeout">Most time for one attempt, connect to last byte.</param>
/// <param name="MaxResponseBytes">Most of a receiver's response that is read (the rest is dropped).</param>
/// <param name="RotationGrace">How long the previous secret keeps signing after a rotation.</param>
public sealed record WebhookOptions(
    bool AllowLoopback,
    IReadOnlyList<TimeSpan> RetrySchedule,
    TimeSpan Timeout,
    int MaxResponseBytes,
    TimeSpan RotationGrace)
{
    /// <summary>Retries after 5 s, 30 s, 2 min, 10 min, 30 min, 1 h and 3 h: seven retries over about five hours.</summary>
    public static WebhookOptions Default { get; } = new(
        false,
        [TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(30), TimeSpan.FromHours(1), TimeSpan.FromHours(3)],
        TimeSpan.FromSeconds(10),
        64 * 1024,
        TimeSpan.FromHours(24));

    /// <summary>Subscriptions one API client may have (<c>Leuko:MaxSubscriptionsPerClient</c>); one more is refused (409).</summary>
    public int MaxSubscriptionsPerClient { get; init; } = 20;
}

/// <summary>
/// The sender stage: handles one queued delivery: signs it (Standard Webhooks), POSTs it without following
/// redirects, through a connection that refuses private, loopback, link-local and metadata addresses at connect time,
/// and records the attempt. 2xx: delivered. 410: the subscription is disabled. 429, 5xx, timeouts and network
/// errors: a new attempt is queued after the schedule's wait (with jitter; or the receiver's Retry-After), until the
/// schedule runs out, then the delivery is dead-lettered and the subscription's failures counted. A Retry-After is never
/// cut short: one over <see cref="MaxRetryAfter"/> fails the delivery. Other answers are final failures.
/// </summary>
public sealed class WebhookSender(IWebhookStore store, WebhookSecrets secrets, IMessageSender retries, HttpClient http, WebhookOptions options, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>An HttpClient for deliveries: no redirects, the address guard at connect time, no overall client timeout (each attempt has its own).</summary>
    public static HttpClient CreateHttpClient(WebhookOptions options) =>
        new(WebhookAddressGuard.CreateHandler(options.AllowLoopback, options.Timeout)) { Timeout = Timeout.InfiniteTimeSpan };

    public async Task<MessageResult> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        WebhookDelivery? delivery;
        try
        {
            delivery = JsonSerializer.Deserialize<WebhookDelivery>(message.Body.Span, PipelineJson.Options);
        }
        catch (JsonException e)
        {
            return new MessageResult(MessageOutcome.DeadLetter, $"malformed delivery: {e.Message}");
        }

        if (delivery is null)
        {
            return new MessageResult(MessageOutcome.DeadLetter, "malformed delivery");
        }

        var subscription = await store.GetAsync(delivery.SubscriptionId, cancellationToken);
        if (subscription is not { Enabled: true })
        {
            return MessageResult.Completed; // deleted or disabled since: nothing to send
        }

        // The pipeline publishes at least once: a host that dies after an image's event was queued and before its
        // message was settled publishes it again when the message comes back, under the same webhook-id. A webhook-id
        // already delivered to this subscriber is not sent again (measured: three of 95 events delivered twice after a
        // leuko serve was killed mid-burst); only copies in flight at the same moment can still both arrive, and the
        // webhook-id lets the receiver drop those.
        if (await store.WasDeliveredAsync(delivery.SubscriptionId, delivery.WebhookId, cancellationToken))
        {
            return MessageResult.Completed;
        }

        var clock = Stopwatch.StartNew();
        var refused = WebhookAddressGuard.CheckUrl(subscription.Url, options.AllowLoopback)
                      ?? await WebhookAddressGuard.CheckHostAsync(new Uri(subscription.Url).Host, options.AllowLoopback, cancellationToken);
        if (refused is not null)
        {
            return await GiveUpAsync(subscription, delivery, null, $"refused: {refused}", clock, cancellationToken);
        }

        IReadOnlyList<string> signing;
        try
        {
            signing = await secrets.SigningSecretsAsync(subscription, _time.GetUtcNow(), cancellationToken);
        }
        catch (SecretDecryptionException e)
        {
            // The row is at fault (altered, or sealed by a key this host lacks): retrying cannot help. Key Vault being
            // unreachable is another exception, left to the transport to retry.
            return await GiveUpAsync(subscription, delivery, null, $"cannot sign: {e.Message}", clock, cancellationToken);
        }

        int? status = null;
        TimeSpan? retryAfter = null;
        string? error = null;
        try
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(options.Timeout);
            var now = _time.GetUtcNow();
            var timestamp = now.ToUnixTimeSeconds();
            using var request = new HttpRequestMessage(HttpMethod.Post, subscription.Url)
            {
                Content = new StringContent(delivery.Body, Encoding.UTF8, "application/json"),
            };
            request.Headers.Add(WebhookSigner.WebhookId, delivery.WebhookId);
            request.Headers.Add(WebhookSigner.WebhookTimestamp, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add(WebhookSigner.WebhookSignature, WebhookSigner.SignatureHeader(signing, delivery.WebhookId, timestamp, delivery.Body));
            request.Headers.UserAgent.Add(new ProductInfoHeaderValue("LeukoFunctions-Webhooks", "1"));
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attempt.Token);
            status = (int)response.StatusCode;
            retryAfter = RetryAfter(response);
            await DrainAsync(response, attempt.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            error = $"no answer within {options.Timeout.TotalSeconds:0} s";
        }
        catch (HttpRequestException e)
        {
            error = e.Message;
        }

        clock.Stop();
        if (status is >= 200 and < 300)
        {
            await RecordAsync(delivery, status, WebhookAttempt.Delivered, null, clock, cancellationToken);
            return MessageResult.Completed;
        }

        if (status == (int)HttpStatusCode.Gone)
        {
            // Written onto the subscription as it is now: a rotation or delete since it was read above stands.
            await store.UpdateAsync(subscription.Id, s => s with { DisabledReason = $"the receiver answered 410 Gone on {_time.GetUtcNow():u}" }, cancellationToken);
            await RecordAsync(delivery, status, "disabled", "410 Gone: subscription disabled", clock, cancellationToken);
            return MessageResult.Completed;
        }

        bool transient = status is null or 408 or 429 or >= 500;
        if (!transient)
        {
            return await GiveUpAsync(subscription, delivery, status, $"the receiver answered {status}", clock, cancellationToken);
        }

        if (delivery.Attempt > options.RetrySchedule.Count)
        {
            return await GiveUpAsync(subscription, delivery, status, $"gave up after {delivery.Attempt} attempts: {error ?? $"HTTP {status}"}", clock, cancellationToken);
        }

        if (retryAfter > MaxRetryAfter)
        {
            // Never sooner than the receiver asked; and a delivery is not held for longer than this.
            return await GiveUpAsync(subscription, delivery, status,
                $"the receiver answered {status} asking to retry after {retryAfter.Value.TotalSeconds:0} s, more than the {MaxRetryAfter.TotalSeconds:0} s a retry waits at most",
                clock, cancellationToken);
        }

        var wait = retryAfter ?? Jitter(options.RetrySchedule[delivery.Attempt - 1]);
        await RecordAsync(delivery, status, "retry", error ?? $"HTTP {status}; next attempt in {wait.TotalSeconds:0.#} s", clock, cancellationToken);
        var next = delivery with { Attempt = delivery.Attempt + 1 };
        await retries.SendAsync(
            new OutgoingMessage($"{delivery.WebhookId}-{next.Attempt}", JsonSerializer.SerializeToUtf8Bytes(next, PipelineJson.Options), new Dictionary<string, string>())
            {
                NotBefore = _time.GetUtcNow() + wait,
            },
            cancellationToken);
        return MessageResult.Completed;
    }

    private async Task<MessageResult> GiveUpAsync(
        WebhookSubscription subscription, WebhookDelivery delivery, int? status, string reason, Stopwatch clock, CancellationToken cancellationToken)
    {
        await RecordAsync(delivery, status, "failed", reason, clock, cancellationToken);
        await store.UpdateAsync(subscription.Id, s => s with { Failures = s.Failures + 1 }, cancellationToken);
        return new MessageResult(MessageOutcome.DeadLetter, reason);
    }

    private Task RecordAsync(WebhookDelivery delivery, int? status, string outcome, string? error, Stopwatch clock, CancellationToken cancellationToken) =>
        store.AddAttemptAsync(
            new WebhookAttempt(delivery.SubscriptionId, delivery.WebhookId, delivery.Type, delivery.Attempt, status, outcome, error,
                Math.Round(clock.Elapsed.TotalMilliseconds, 1), _time.GetUtcNow()),
            cancellationToken);

    /// <summary>Reads (and drops) at most MaxResponseBytes of the answer, so that a receiver cannot make us read forever.</summary>
    private async Task DrainAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[8192];
        int total = 0;
        while (total < options.MaxResponseBytes)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, options.MaxResponseBytes - total)), cancellationToken);
            if (n == 0)
            {
                break;
            }

            total += n;
        }
    }

    /// <summary>The longest Retry-After honoured; a receiver asking for more fails the delivery rather than be retried sooner.</summary>
    public static readonly TimeSpan MaxRetryAfter = TimeSpan.FromHours(1);

    /// <summary>
    /// Retry-After as seconds or an HTTP date (measured from now, when the answer is in), never negative. The retry is
    /// queued with this as its not-before time, on the same clock: no transport delivers it sooner.
    /// </summary>
    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        var wait = header?.Delta ?? (header?.Date is { } date ? date - _time.GetUtcNow() : null);
        return wait is { } w ? TimeSpan.FromTicks(Math.Max(w.Ticks, 0)) : null;
    }

    /// <summary>The wait, plus or minus 20%, so that many deliveries retried together do not arrive together.</summary>
    private static TimeSpan Jitter(TimeSpan wait) => wait * (0.8 + (0.4 * Random.Shared.NextDouble()));
}
