using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// One delivery to one subscriber, as queued for the sender stage: the webhook-id (stable across retries, the
/// receiver's idempotency key), the event type, the JSON body (signed as it is) and the attempt number.
/// </summary>
public sealed record WebhookDelivery(string SubscriptionId, string WebhookId, string Type, string Body, int Attempt);

/// <summary>
/// Turns the pipeline's events into deliveries: for every enabled subscription whose types and filters match, a
/// message on the delivery queue. The pipeline only enqueues; sending is the sender stage's, so a slow or dead
/// receiver never slows the pipeline. The subscriptions are read for every event, and concurrent events share a read
/// (<see cref="SubscriptionsAsync"/>): one storage query serves the images a host finishes at once.
/// </summary>
/// <param name="apiBase">The public base URL of the HTTP API, for the payload's links (e.g. <c>https://app.example/api</c>).</param>
/// <param name="classes">The model's classes: payloads carry the five-part differential and the other cells apart.</param>
public sealed class WebhookPublisher(IWebhookStore store, IMessageSender deliveries, string apiBase, CellClasses classes, TimeProvider? time = null) : IPipelineEvents, IReviewEvents
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly SemaphoreSlim _reading = new(1, 1);
    private IReadOnlyList<WebhookSubscription> _read = [];
    private long _asked;
    private long _answered;

    public async Task ImageFinalAsync(ImageRow image, CancellationToken cancellationToken)
    {
        var type = image.Status == ImageStatus.Failed ? WebhookEvents.ImageFailed : WebhookEvents.ImageCompleted;
        var (differential, others) = classes.FromCounts(image.Counts);
        var data = new
        {
            imageId = image.ImageId,
            source = image.Source,
            status = image.Status,
            error = image.Error,
            batchId = image.BatchId,
            cells = image.Cells,
            needsReview = image.NeedsReview,
            differential = differential.ToDictionary(d => d.Key, d => d.Value.Count),
            otherCells = others,
            scale = image.Scale,
            links = new { self = $"{apiBase.TrimEnd('/')}/images/{image.ImageId}", annotated = $"{apiBase.TrimEnd('/')}/images/{image.ImageId}/annotated" },
        };
        await PublishAsync(type, $"{image.ImageId}:{image.BlobETag}", data, image.BatchId, image.Source, cancellationToken);
    }

    public async Task BatchCompletedAsync(BatchRow batch, IReadOnlyList<BatchMemberRow> members, CancellationToken cancellationToken)
    {
        var (differential, others) = classes.FromCounts(
            members.SelectMany(m => m.Counts).GroupBy(c => c.Key).ToDictionary(g => g.Key, g => g.Sum(c => c.Value)));
        var data = new
        {
            batchId = batch.BatchId,
            archive = batch.Archive,
            images = members.Count,
            completed = members.Count(m => m.Status == ImageStatus.Completed),
            noLeukocytes = members.Count(m => m.Status == ImageStatus.NoLeukocytes),
            failed = members.Count(m => m.Status == ImageStatus.Failed),
            skipped = batch.Skipped,
            differential = differential.ToDictionary(d => d.Key, d => d.Value.Count),
            otherCells = others,
            links = new { self = $"{apiBase.TrimEnd('/')}/batches/{batch.BatchId}" },
        };
        await PublishAsync(WebhookEvents.BatchCompleted, $"{batch.BatchId}:{batch.Updated.UtcTicks}", data, batch.BatchId, batch.Archive, cancellationToken);
    }

    public async Task BatchFailedAsync(BatchRow batch, CancellationToken cancellationToken)
    {
        var data = new
        {
            batchId = batch.BatchId,
            archive = batch.Archive,
            status = batch.Status,
            error = batch.Error,
            links = new { self = $"{apiBase.TrimEnd('/')}/batches/{batch.BatchId}" },
        };
        await PublishAsync(WebhookEvents.BatchFailed, $"{batch.BatchId}:{batch.Updated.UtcTicks}", data, batch.BatchId, batch.Archive, cancellationToken);
    }

    public async Task SignedOffAsync(ReviewSignedOff review, CancellationToken cancellationToken)
    {
        var image = review.Kind == ReviewState.Image;
        var totals = review.Totals;
        var data = new
        {
            imageId = image ? review.Id : null,
            batchId = review.BatchId,
            source = review.Source,
            reviewedBy = totals.SignedOffBy,
            signedOffAt = totals.SignedOffAt,
            cells = totals.Cells,
            reclassified = totals.Reclassified,
            notCells = totals.NotCells,
            differential = totals.ReviewedDifferential.ToDictionary(d => d.Key, d => d.Value.Count),
            otherCells = totals.ReviewedOtherCells,
            automaticDifferential = totals.Differential.ToDictionary(d => d.Key, d => d.Value.Count),
            automaticOtherCells = totals.OtherCells,
            links = new { self = $"{apiBase.TrimEnd('/')}/{(image ? "images" : "batches")}/{review.Id}", review = $"{apiBase.TrimEnd('/')}/{(image ? "images" : "batches")}/{review.Id}/review" },
        };
        await PublishAsync(image ? WebhookEvents.ImageReviewed : WebhookEvents.BatchReviewed, $"{review.Id}:reviewed:{totals.SignedOffAt?.UtcTicks}", data,
            review.BatchId, review.Source, cancellationToken);
    }

    /// <summary>
    /// The subscriptions as they are now: as read by a query that started after this call did, so a subscription made
    /// before the event always gets it. Callers that arrive while a query runs wait for it and are then answered
    /// together by the next one (a read shared by every event that became final before it started).
    /// </summary>
    private async Task<IReadOnlyList<WebhookSubscription>> SubscriptionsAsync(CancellationToken cancellationToken)
    {
        long ticket = Interlocked.Increment(ref _asked);
        await _reading.WaitAsync(cancellationToken);
        try
        {
            if (_answered >= ticket)
            {
                return _read; // read by a query that started after this call
            }

            long covers = Volatile.Read(ref _asked); // every call up to here asked before the query below starts
            _read = await store.ListAsync(cancellationToken);
            _answered = covers;
            return _read;
        }
        finally
        {
            _reading.Release();
        }
    }

    private async Task PublishAsync(string type, string subject, object data, string? batchId, string source, CancellationToken cancellationToken)
    {
        string? body = null;
        foreach (var subscription in await SubscriptionsAsync(cancellationToken))
        {
            if (!subscription.Enabled || !subscription.Types.Contains(type) ||
                (subscription.BatchId is not null && subscription.BatchId != batchId) ||
                (subscription.SourcePrefix is not null && !source.StartsWith(subscription.SourcePrefix, StringComparison.Ordinal)))
            {
                continue;
            }

            // The Standard Webhooks body: type, timestamp, data (thin: ids, status, counts, links; never image bytes).
            body ??= JsonSerializer.Serialize(new { type, timestamp = _time.GetUtcNow(), data }, PipelineJson.Options);
            var webhookId = "msg_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{subscription.Id}|{type}|{subject}")))[..32];
            var delivery = new WebhookDelivery(subscription.Id, webhookId, type, body, 1);
            await deliveries.SendAsync(
                new OutgoingMessage($"{webhookId}-1", JsonSerializer.SerializeToUtf8Bytes(delivery, PipelineJson.Options), new Dictionary<string, string>()),
                cancellationToken);
        }
    }
}
