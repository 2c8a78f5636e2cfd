using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Azure.Storage;

/// <summary>
/// Webhook subscriptions and delivery attempts in Table Storage: <c>webhooks</c> (PartitionKey "webhook", RowKey =
/// subscription id) and <c>webhookdeliveries</c> (PartitionKey = subscription id, RowKey = reversed time, so the
/// newest attempts come first; after them a row <c>~delivered-WEBHOOKID</c> for each webhook-id delivered). Secrets are stored sealed (<see cref="WebhookSecrets"/>), never in plain text. Updates are conditional on the
/// ETag the subscription was read at (If-Match), so no writer undoes another's change.
/// </summary>
public sealed class TableWebhookStore(TableServiceClient service) : IWebhookStore
{
    public const string WebhooksTable = "webhooks";
    public const string DeliveriesTable = "webhookdeliveries";
    private const string Partition = "webhook";

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await service.CreateTableIfNotExistsAsync(WebhooksTable, cancellationToken);
        await service.CreateTableIfNotExistsAsync(DeliveriesTable, cancellationToken);
    }

    public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) =>
        service.GetTableClient(WebhooksTable).AddEntityAsync(Entity(subscription), cancellationToken);

    public async Task<bool> TryUpdateAsync(WebhookSubscription subscription, CancellationToken cancellationToken)
    {
        try
        {
            await service.GetTableClient(WebhooksTable).UpdateEntityAsync(
                Entity(subscription), subscription.ETag is { } etag ? new ETag(etag) : throw new ArgumentException("a subscription as read (with its ETag) is updated"),
                TableUpdateMode.Replace, cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 412 or 404)
        {
            return false; // changed or deleted since it was read
        }
    }

    private static TableEntity Entity(WebhookSubscription s) =>
        new(Partition, s.Id)
        {
            ["Url"] = s.Url,
            ["Types"] = JsonSerializer.Serialize(s.Types),
            ["BatchId"] = s.BatchId,
            ["SourcePrefix"] = s.SourcePrefix,
            ["Secrets"] = JsonSerializer.Serialize(s.Secrets),
            ["DisabledReason"] = s.DisabledReason,
            ["Failures"] = s.Failures,
            ["Created"] = s.Created,
            ["Owner"] = s.Owner,
        };

    public async Task<WebhookSubscription?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var response = await service.GetTableClient(WebhooksTable).GetEntityIfExistsAsync<TableEntity>(Partition, id, cancellationToken: cancellationToken);
        return response.HasValue ? From(response.Value!) : null;
    }

    public Task<IReadOnlyList<WebhookSubscription>> ListAsync(CancellationToken cancellationToken) =>
        QueryAsync(TableClient.CreateQueryFilter($"PartitionKey eq {Partition}"), cancellationToken);

    /// <summary>A client's own, by the <c>Owner</c> column (the API client that created each; none on rows older than owners).</summary>
    public Task<IReadOnlyList<WebhookSubscription>> ListByOwnerAsync(string owner, CancellationToken cancellationToken) =>
        QueryAsync(TableClient.CreateQueryFilter($"PartitionKey eq {Partition} and Owner eq {owner}"), cancellationToken);

    private async Task<IReadOnlyList<WebhookSubscription>> QueryAsync(string filter, CancellationToken cancellationToken)
    {
        var list = new List<WebhookSubscription>();
        await foreach (var e in service.GetTableClient(WebhooksTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            list.Add(From(e));
        }

        return list.OrderBy(s => s.Created).ToList();
    }

    private static WebhookSubscription From(TableEntity e) => new(
        e.RowKey, e.GetString("Url"), JsonSerializer.Deserialize<List<string>>(e.GetString("Types") ?? "[]")!, e.GetString("BatchId"),
        e.GetString("SourcePrefix"), JsonSerializer.Deserialize<List<WebhookSecret>>(e.GetString("Secrets") ?? "[]")!, e.GetString("DisabledReason"),
        e.GetInt32("Failures") ?? 0, e.GetDateTimeOffset("Created") ?? DateTimeOffset.MinValue)
    {
        ETag = e.ETag.ToString(),
        Owner = e.GetString("Owner"),
    };

    public async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        if (await GetAsync(id, cancellationToken) is null)
        {
            return false;
        }

        try
        {
            await service.GetTableClient(WebhooksTable).DeleteEntityAsync(Partition, id, ETag.All, cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return false;
        }
    }

    public async Task AddAttemptAsync(WebhookAttempt a, CancellationToken cancellationToken)
    {
        var attempt = new TableEntity(a.SubscriptionId, $"{DateTimeOffset.MaxValue.UtcTicks - a.At.UtcTicks:D19}-{a.WebhookId}-{a.Attempt}")
        {
            ["WebhookId"] = a.WebhookId,
            ["Type"] = a.Type,
            ["Attempt"] = a.Attempt,
            ["StatusCode"] = a.StatusCode,
            ["Outcome"] = a.Outcome,
            ["Error"] = a.Error,
            ["LatencyMs"] = a.LatencyMs,
            ["At"] = a.At,
        };
        var table = service.GetTableClient(DeliveriesTable);
        if (a.Outcome != WebhookAttempt.Delivered)
        {
            await table.UpsertEntityAsync(attempt, TableUpdateMode.Replace, cancellationToken);
            return;
        }

        // The attempt and the mark of its webhook-id delivered, in one transaction (one partition: the subscription's).
        await table.SubmitTransactionAsync(
            [
                new TableTransactionAction(TableTransactionActionType.UpsertReplace, attempt),
                new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(a.SubscriptionId, DeliveredKey(a.WebhookId)) { ["At"] = a.At }),
            ],
            cancellationToken);
    }

    public async Task<bool> WasDeliveredAsync(string subscriptionId, string webhookId, CancellationToken cancellationToken) =>
        (await service.GetTableClient(DeliveriesTable).GetEntityIfExistsAsync<TableEntity>(subscriptionId, DeliveredKey(webhookId), ["At"], cancellationToken)).HasValue;

    /// <summary>
    /// The row that marks a webhook-id delivered: after every attempt's row in the partition ('~' sorts after the
    /// attempts' reversed-time digits), so the newest attempts are still read first.
    /// </summary>
    private static string DeliveredKey(string webhookId) => $"{DeliveredPrefix}{webhookId}";

    private const string DeliveredPrefix = "~delivered-";

    public async Task<IReadOnlyList<WebhookAttempt>> GetAttemptsAsync(string subscriptionId, int max, CancellationToken cancellationToken)
    {
        var list = new List<WebhookAttempt>();
        await foreach (var e in service.GetTableClient(DeliveriesTable).QueryAsync<TableEntity>(x => x.PartitionKey == subscriptionId, maxPerPage: max, cancellationToken: cancellationToken))
        {
            if (e.RowKey.StartsWith(DeliveredPrefix, StringComparison.Ordinal))
            {
                break; // the marks of delivered webhook-ids come after every attempt
            }

            list.Add(new WebhookAttempt(subscriptionId, e.GetString("WebhookId"), e.GetString("Type"), e.GetInt32("Attempt") ?? 0, e.GetInt32("StatusCode"),
                e.GetString("Outcome"), e.GetString("Error"), e.GetDouble("LatencyMs") ?? 0, e.GetDateTimeOffset("At") ?? DateTimeOffset.MinValue));
            if (list.Count >= max)
            {
                break;
            }
        }

        return list;
    }
}
