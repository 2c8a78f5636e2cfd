using System.Security.Cryptography;

namespace Leuko.Pipeline.Webhooks;

/// <summary>A subscription as the API shows it (never its secrets).</summary>
public sealed record WebhookView(
    string Id, string Url, IReadOnlyList<string> Types, string? BatchId, string? SourcePrefix, bool Enabled, string? DisabledReason, int Failures, DateTimeOffset Created)
{
    public static WebhookView Of(WebhookSubscription s) => new(s.Id, s.Url, s.Types, s.BatchId, s.SourcePrefix, s.Enabled, s.DisabledReason, s.Failures, s.Created);
}

/// <summary>A new subscription, or a rotated one: the only time its secret is shown.</summary>
public sealed record WebhookCreated(WebhookView Subscription, string Secret);

/// <summary>The body of <c>POST /api/webhooks</c>.</summary>
public sealed record WebhookRequest(string? Url, IReadOnlyList<string>? Types, string? BatchId, string? SourcePrefix);

/// <summary>A request the API refuses, with the reason (HTTP 400).</summary>
public sealed class WebhookRequestException(string message) : Exception(message);

/// <summary>The subscription API, shared by the function app and <c>leuko serve</c>.</summary>
public sealed class WebhookService(IWebhookStore store, WebhookSecrets secrets, WebhookOptions options, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <exception cref="WebhookRequestException">Bad URL (not HTTPS, refused address), unknown or no event types.</exception>
    public async Task<WebhookCreated> CreateAsync(WebhookRequest request, CancellationToken cancellationToken)
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
        var subscription = new WebhookSubscription(id, request.Url, types, request.BatchId, request.SourcePrefix, [stored], null, 0, _time.GetUtcNow());
        await store.CreateAsync(subscription, cancellationToken);
        return new WebhookCreated(WebhookView.Of(subscription), secret);
    }

    public async Task<IReadOnlyList<WebhookView>> ListAsync(CancellationToken cancellationToken) =>
        (await store.ListAsync(cancellationToken)).Select(WebhookView.Of).ToList();

    public Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) => store.DeleteAsync(id, cancellationToken);

    /// <summary>A new secret; the current one keeps signing (beside it) for the grace period, so receivers can switch without losing events.</summary>
    public async Task<WebhookCreated?> RotateSecretAsync(string id, CancellationToken cancellationToken)
    {
        if (await store.GetAsync(id, cancellationToken) is null)
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

    public async Task<IReadOnlyList<WebhookAttempt>?> DeliveriesAsync(string id, int max, CancellationToken cancellationToken) =>
        await store.GetAsync(id, cancellationToken) is null ? null : await store.GetAttemptsAsync(id, Math.Clamp(max, 1, 1000), cancellationToken);
}
