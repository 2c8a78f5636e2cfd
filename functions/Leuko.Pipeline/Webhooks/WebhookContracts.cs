namespace Leuko.Pipeline.Webhooks;

/// <summary>The events a subscriber can ask for.</summary>
public static class WebhookEvents
{
    /// <summary>An image is analysed (status <c>completed</c> or <c>no-leukocytes</c>).</summary>
    public const string ImageCompleted = "image.completed";

    /// <summary>An image failed (not an image, corrupt, or classification failed after its attempts).</summary>
    public const string ImageFailed = "image.failed";

    /// <summary>Every image of an archive's batch is final.</summary>
    public const string BatchCompleted = "batch.completed";

    /// <summary>An archive's batch failed as a whole (refused archive, no images, expansion given up or stuck); its error says why.</summary>
    public const string BatchFailed = "batch.failed";

    /// <summary>A technologist signed an image off: its reviewed differential, who and when.</summary>
    public const string ImageReviewed = "image.reviewed";

    /// <summary>A technologist signed a batch off (and with it its images): the batch's reviewed differential, who and when.</summary>
    public const string BatchReviewed = "batch.reviewed";

    public static readonly IReadOnlyList<string> All = [ImageCompleted, ImageFailed, BatchCompleted, BatchFailed, ImageReviewed, BatchReviewed];
}

/// <summary>
/// A signing secret as stored: sealed by envelope encryption (<see cref="WebhookSecrets"/>), never the secret itself, and
/// valid until <paramref name="ExpiresAt"/> (null: current).
/// </summary>
public sealed record WebhookSecret(
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    Leuko.Pipeline.Secrets.SealedSecret? Sealed,
    DateTimeOffset? ExpiresAt)
{
    /// <summary>
    /// The secret in plain text, as versions before encryption stored it (their field <c>Value</c>). Every host seals
    /// these at start-up (<see cref="WebhookSecrets.SealPlainTextAsync"/>); one written meanwhile by an older host still
    /// signs until then. Nothing new is ever written here.
    /// </summary>
    [System.Text.Json.Serialization.JsonPropertyName("Value")]
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? PlainText { get; init; }
}

/// <summary>A subscriber (table <c>webhooks</c>).</summary>
/// <param name="Types">Event types wanted (<see cref="WebhookEvents"/>).</param>
/// <param name="BatchId">Only events of this batch, when set.</param>
/// <param name="SourcePrefix">Only events of images whose source starts with this, when set.</param>
/// <param name="Secrets">The current secret, and during a rotation's grace period the previous one, sealed.</param>
/// <param name="DisabledReason">Why deliveries stopped (410 Gone from the receiver), or null while active.</param>
/// <param name="Failures">Deliveries that exhausted their retries.</param>
public sealed record WebhookSubscription(
    string Id,
    string Url,
    IReadOnlyList<string> Types,
    string? BatchId,
    string? SourcePrefix,
    IReadOnlyList<WebhookSecret> Secrets,
    string? DisabledReason,
    int Failures,
    DateTimeOffset Created)
{
    public bool Enabled => DisabledReason is null;

    /// <summary>
    /// The API client that created it, who alone (with an admin) may see and change it. Null on subscriptions made
    /// before subscriptions had owners: those are an admin's alone.
    /// </summary>
    public string? Owner { get; init; }

    /// <summary>The stored subscription's version (the entity's ETag) when it was read: updates are conditional on it.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? ETag { get; init; }
}

/// <summary>One delivery attempt (table <c>webhookdeliveries</c>), for <c>GET /api/webhooks/{id}/deliveries</c>.</summary>
/// <param name="StatusCode">The receiver's HTTP status, or null when no response came (refused, timeout, network).</param>
/// <param name="Outcome"><c>delivered</c>, <c>retry</c>, <c>disabled</c> (410), <c>failed</c> (gave up or refused).</param>
public sealed record WebhookAttempt(
    string SubscriptionId, string WebhookId, string Type, int Attempt, int? StatusCode, string Outcome, string? Error, double LatencyMs, DateTimeOffset At)
{
    /// <summary>The outcome of an attempt the receiver answered 2xx.</summary>
    public const string Delivered = "delivered";
}

/// <summary>Subscriptions and the record of attempts: Table Storage in the cloud and on Azurite, memory in one process.</summary>
public interface IWebhookStore
{
    /// <summary>Stores a new subscription.</summary>
    Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the subscription if it is still the version it was read at (its <see cref="WebhookSubscription.ETag"/>);
    /// false when it changed or was deleted since. Use <see cref="WebhookSubscriptions.UpdateAsync"/>.
    /// </summary>
    Task<bool> TryUpdateAsync(WebhookSubscription subscription, CancellationToken cancellationToken);

    Task<WebhookSubscription?> GetAsync(string id, CancellationToken cancellationToken);

    Task<IReadOnlyList<WebhookSubscription>> ListAsync(CancellationToken cancellationToken);

    /// <summary>The subscriptions <paramref name="owner"/> created, oldest first.</summary>
    Task<IReadOnlyList<WebhookSubscription>> ListByOwnerAsync(string owner, CancellationToken cancellationToken);

    /// <summary>False when there was no such subscription.</summary>
    Task<bool> DeleteAsync(string id, CancellationToken cancellationToken);

    /// <summary>Records an attempt; one with the outcome <c>delivered</c> also marks its webhook-id delivered to the subscription (<see cref="WasDeliveredAsync"/>).</summary>
    Task AddAttemptAsync(WebhookAttempt attempt, CancellationToken cancellationToken);

    /// <summary>Whether an attempt of <paramref name="webhookId"/> was delivered to the subscription (answered 2xx).</summary>
    Task<bool> WasDeliveredAsync(string subscriptionId, string webhookId, CancellationToken cancellationToken);

    /// <summary>A subscription's attempts, newest first.</summary>
    Task<IReadOnlyList<WebhookAttempt>> GetAttemptsAsync(string subscriptionId, int max, CancellationToken cancellationToken);
}

/// <summary>The one way subscriptions change: read, change, write if unchanged since, else read again.</summary>
public static class WebhookSubscriptions
{
    /// <summary>
    /// Applies <paramref name="change"/> to the current subscription, so a concurrent change (a secret rotation, a
    /// delete, another sender's count) is never undone; null when the subscription does not exist (or no longer).
    /// </summary>
    public static async Task<WebhookSubscription?> UpdateAsync(
        this IWebhookStore store, string id, Func<WebhookSubscription, WebhookSubscription> change, CancellationToken cancellationToken)
    {
        while (true)
        {
            var current = await store.GetAsync(id, cancellationToken);
            if (current is null)
            {
                return null;
            }

            var changed = change(current) with { ETag = current.ETag };
            if (await store.TryUpdateAsync(changed, cancellationToken))
            {
                return changed;
            }
        }
    }
}
