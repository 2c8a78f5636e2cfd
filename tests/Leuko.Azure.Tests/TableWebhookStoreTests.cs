using Leuko.Azure.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>The webhook store's record of attempts on Azurite's tables.</summary>
[Collection("Azurite")]
public class TableWebhookStoreTests
{
    [Fact]
    public async Task ADeliveredWebhookIdIsMarkedAndTheAttemptsStillListNewestFirstWithoutTheMarks()
    {
        await Azurite.RequireAsync();
        var store = new TableWebhookStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var subscription = "wh_" + Azurite.Unique("marks").Replace("-", "", StringComparison.Ordinal);
        var at = DateTimeOffset.UtcNow;
        WebhookAttempt Attempt(string id, int n, string outcome, int seconds) =>
            new(subscription, id, WebhookEvents.ImageCompleted, n, outcome == WebhookAttempt.Delivered ? 200 : 500, outcome, null, 3, at.AddSeconds(seconds));

        await store.AddAttemptAsync(Attempt("msg_a", 1, "retry", 0), CancellationToken.None);
        Assert.False(await store.WasDeliveredAsync(subscription, "msg_a", CancellationToken.None));
        await store.AddAttemptAsync(Attempt("msg_a", 2, WebhookAttempt.Delivered, 1), CancellationToken.None);
        await store.AddAttemptAsync(Attempt("msg_b", 1, "failed", 2), CancellationToken.None);

        Assert.True(await store.WasDeliveredAsync(subscription, "msg_a", CancellationToken.None));
        Assert.False(await store.WasDeliveredAsync(subscription, "msg_b", CancellationToken.None));
        Assert.False(await store.WasDeliveredAsync("wh_other", "msg_a", CancellationToken.None));
        var attempts = await store.GetAttemptsAsync(subscription, 10, CancellationToken.None);
        Assert.Equal([("msg_b", 1), ("msg_a", 2), ("msg_a", 1)], attempts.Select(a => (a.WebhookId, a.Attempt)));
    }
}
