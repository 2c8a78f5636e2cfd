using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Leuko.Pipeline.Webhooks;

/// <summary>A subscription as the API shows it (never its secrets), with the client that owns it.</summary>
public sealed record WebhookView(
    string Id, string Url, IReadOnlyList<string> Types, string? BatchId, string? SourcePrefix, bool Enabled, string? DisabledReason, int Failures, DateTimeOffset Created,
    string? Owner)
{
    public static WebhookView Of(WebhookSubscription s) =>
        new(s.Id, s.Url, s.Types, s.BatchId, s.SourcePrefix, s.Enabled, s.DisabledReason, s.Failures, s.Created, s.Owner);
}

/// <summary>A new subscription, or a rotated one: the only time its secret is shown.</summary>
public sealed record WebhookCreated(WebhookView Subscription, string Secret);

/// <summary>The body of <c>POST /api/webhooks</c>.</summary>
public sealed record WebhookRequest(string? Url, IReadOnlyList<string>? Types, string? BatchId, string? SourcePrefix);

/// <summary>A request the API refuses, with the reason (HTTP 400).</summary>
public sealed class WebhookRequestException(string message) : Exception(message);

/// <summary>The client already has as many subscriptions as it may (HTTP 409).</summary>
public sealed class WebhookLimitException(string message) : Exception(message);

/// <summary>
/// The subscription API, shared by the function app and <c>leuko serve</c>. Each subscription is its creator's: a
/// caller lists, deletes, rotates and reads the deliveries of its own only (an admin: all), and one it may not see
/// is answered as one that does not exist. Signing secrets are stored sealed (<see cref="WebhookSecrets"/>).
/// </summary>
public sealed class WebhookService(IWebhookStore store, WebhookSecrets secrets, WebhookOptions options, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    // One creation at a time per client in this process, so that the cap is counted exactly here (across replicas a
    // client's creations racing each other may pass it by the number in flight).
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _creating = new(StringComparer.Ordinal);

    /// <exception cref="WebhookRequestException">Bad URL (not HTTPS, refused address), unknown or no event types.</exception>
    /// <exception cref="WebhookLimitException">The caller has <see cref="WebhookOptions.MaxSubscriptionsPerClient"/> subscriptions already.</exception>
    public async Task<WebhookCreated> CreateAsync(WebhookRequest request, WebhookCaller caller, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(request.Url))
        {
            throw new WebhookRequestException("url is required");
        }

        var refused = WebhookAddressGuard.CheckUrl(request.Url, options.AllowLoopback)
                      ?? await WebhookAddressGuard.CheckHostAsync(new Uri(request.Url).Host, options.AllowLoopback, cancellationToken);
        if (refused is not null)
        {
            throw new WebhookRequestException($"url refused: {refused}");
        }

        var types = request.Types is { Count: > 0 } t ? t.Distinct().ToList() : [.. WebhookEvents.All];
        var unknown = types.Where(x => !WebhookEvents.All.Contains(x)).ToList();
        if (unknown.Count > 0)
        {
            throw new WebhookRequestException($"unknown event types {string.Join(", ", unknown)}: choose from {string.Join(", ", WebhookEvents.All)}");
        }

        var id = "wh_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var (secret, stored) = await secrets.NewAsync(id, null, cancellationToken);
        var subscription = new WebhookSubscription(id, request.Url, types, request.BatchId, request.SourcePrefix, [stored], null, 0, _time.GetUtcNow())
        {
            Owner = caller.Client,
        };
        var creating = _creating.GetOrAdd(caller.Client, _ => new SemaphoreSlim(1, 1));
        await creating.WaitAsync(cancellationToken);
        try
        {
            if ((await store.ListByOwnerAsync(caller.Client, cancellationToken)).Count >= options.MaxSubscriptionsPerClient)
            {
                throw new WebhookLimitException(
                    $"client '{caller.Client}' has {options.MaxSubscriptionsPerClient} subscriptions, the most a client may have: delete one first");
            }

            await store.CreateAsync(subscription, cancellationToken);
        }
        finally
        {
            creating.Release();
        }

        return new WebhookCreated(WebhookView.Of(subscription), secret);
    }

    /// <summary>The caller's subscriptions (an admin's: every one), oldest first.</summary>
    public async Task<IReadOnlyList<WebhookView>> ListAsync(WebhookCaller caller, CancellationToken cancellationToken) =>
        (caller.IsAdmin ? await store.ListAsync(cancellationToken) : await store.ListByOwnerAsync(caller.Client, cancellationToken)).Select(WebhookView.Of).ToList();

    /// <summary>False when there is no such subscription the caller may see.</summary>
    public async Task<bool> DeleteAsync(string id, WebhookCaller caller, CancellationToken cancellationToken) =>
        await VisibleAsync(id, caller, cancellationToken) && await store.DeleteAsync(id, cancellationToken);

    /// <summary>A new secret; the current one keeps signing (beside it) for the grace period, so receivers can switch without losing events.</summary>
    public async Task<WebhookCreated?> RotateSecretAsync(string id, WebhookCaller caller, CancellationToken cancellationToken)
    {
        if (!await VisibleAsync(id, caller, cancellationToken))
        {
            return null;
        }

        var now = _time.GetUtcNow();
        var (secret, stored) = await secrets.NewAsync(id, null, cancellationToken);
        var rotated = await store.UpdateAsync(id, subscription => subscription with
        {
            Secrets =
            [
                stored,
                .. subscription.Secrets.Where(s => s.ExpiresAt is null || s.ExpiresAt > now).Select(s => s with { ExpiresAt = s.ExpiresAt ?? now + options.RotationGrace }),
            ],
        }, cancellationToken);
        return rotated is null ? null : new WebhookCreated(WebhookView.Of(rotated), secret);
    }

    /// <summary>The subscription's attempts, newest first; null when there is no such subscription the caller may see.</summary>
    public async Task<IReadOnlyList<WebhookAttempt>?> DeliveriesAsync(string id, WebhookCaller caller, int max, CancellationToken cancellationToken) =>
        await VisibleAsync(id, caller, cancellationToken) ? await store.GetAttemptsAsync(id, Math.Clamp(max, 1, 1000), cancellationToken) : null;

    // An owner never changes, so what this read says holds for the change that follows.
    private async Task<bool> VisibleAsync(string id, WebhookCaller caller, CancellationToken cancellationToken) =>
        await store.GetAsync(id, cancellationToken) is { } subscription && caller.Sees(subscription);
}
