using System.Collections.Concurrent;

namespace Leuko.Pipeline.Webhooks;

/// <summary>Subscriptions and attempts in memory, for one process and tests.</summary>
public sealed class InMemoryWebhookStore : IWebhookStore
{
    private readonly ConcurrentDictionary<string, WebhookSubscription> _subscriptions = new();
    private readonly ConcurrentQueue<WebhookAttempt> _attempts = new();

    private long _version;

    public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        if (!_subscriptions.TryAdd(subscription.Id, subscription with { ETag = NextVersion() }))
        {
            throw new InvalidOperationException($"subscription {subscription.Id} exists");
        }

        return Task.CompletedTask;
    }

    public Task<bool> TryUpdateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) =>
        Task.FromResult(_subscriptions.TryGetValue(subscription.Id, out var current) && current.ETag == subscription.ETag &&
                        _subscriptions.TryUpdate(subscription.Id, subscription with { ETag = NextVersion() }, current));

    private string NextVersion() => $"\"{Interlocked.Increment(ref _version)}\"";

    public Task<WebhookSubscription?> GetAsync(string id, CancellationToken cancellationToken) =>
        Task.FromResult(_subscriptions.TryGetValue(id, out var s) ? s : null);

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookSubscription>>(_subscriptions.Values.OrderBy(s => s.Created).ToList());

    public Task<IReadOnlyList<WebhookSubscription>> ListByOwnerAsync(string owner, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookSubscription>>(_subscriptions.Values.Where(s => s.Owner == owner).OrderBy(s => s.Created).ToList());

    public Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) => Task.FromResult(_subscriptions.TryRemove(id, out _));

    public Task AddAttemptAsync(WebhookAttempt attempt, CancellationToken cancellationToken)
    {
        _attempts.Enqueue(attempt);
        return Task.CompletedTask;
    }

    public Task<bool> WasDeliveredAsync(string subscriptionId, string webhookId, CancellationToken cancellationToken) =>
        Task.FromResult(_attempts.Any(a => a.SubscriptionId == subscriptionId && a.WebhookId == webhookId && a.Outcome == WebhookAttempt.Delivered));

    public Task<IReadOnlyList<WebhookAttempt>> GetAttemptsAsync(string subscriptionId, int max, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookAttempt>>(_attempts.Where(a => a.SubscriptionId == subscriptionId).Reverse().Take(max).ToList());
}
