using System.Collections.Concurrent;

namespace Leuko.Pipeline.Webhooks;

/// <summary>Subscriptions and attempts in memory, for one process and tests.</summary>
public sealed class InMemoryWebhookStore : IWebhookStore
{
    private readonly ConcurrentDictionary<string, WebhookSubscription> _subscriptions = new();
    private readonly ConcurrentQueue<WebhookAttempt> _attempts = new();

    public Task UpsertAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        _subscriptions[subscription.Id] = subscription;
        return Task.CompletedTask;
    }

    public Task<WebhookSubscription?> GetAsync(string id, CancellationToken cancellationToken) =>
        Task.FromResult(_subscriptions.TryGetValue(id, out var s) ? s : null);

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookSubscription>>(_subscriptions.Values.OrderBy(s => s.Created).ToList());

    public Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) => Task.FromResult(_subscriptions.TryRemove(id, out _));

    public Task AddAttemptAsync(WebhookAttempt attempt, CancellationToken cancellationToken)
    {
        _attempts.Enqueue(attempt);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<WebhookAttempt>> GetAttemptsAsync(string subscriptionId, int max, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<WebhookAttempt>>(_attempts.Where(a => a.SubscriptionId == subscriptionId).Reverse().Take(max).ToList());
}
