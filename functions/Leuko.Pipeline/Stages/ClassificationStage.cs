using System.Diagnostics;
using System.Text.Json;
using Leuko.Core.Classification;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using OpenCvSharp;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// Second stage: a classification message carries (or names) an image's manifest; its crops are classified in one batch, the
/// cells written (table <c>cells</c>) and the image completed with its differential (table <c>images</c>).
/// A message is for one version of an upload (its manifest's): when the image's row is of another version by now
/// (the upload was replaced) the message is stale and changes nothing; when the row is final for that version (a
/// redelivery) neither. The image row is written only if it is still the row segmentation wrote (If-Match the ETag
/// the message carries; on a redelivery, or a message without one, the row is read first and checked before
/// classifying), so a late or duplicate message never overwrites a newer row: a write that loses reads the row and
/// decides as above. A message that cannot succeed is dead-lettered at
/// once; one that keeps failing is dead-lettered after <paramref name="maxAttempts"/> deliveries; either way its
/// image is marked failed with the reason.
/// </summary>
/// <param name="handOff">Crops segmentation wrote in this process, taken from memory rather than read back (<see cref="CropHandOff"/>).</param>
/// <param name="modelCalls">Model calls at once: the crops of the images this stage handles concurrently are classified
/// together (<see cref="CellBatcher"/>), in at most this many calls at a time.</param>
public sealed class ClassificationStage(
    IBlobStore blobs, IResultStore results, LeukocyteClassifier classifier, int maxAttempts = 5, IPipelineEvents? events = null, TimeProvider? time = null,
    int modelCalls = 1, CropHandOff? handOff = null)
{
    private readonly CellBatcher _batcher = new(classifier, modelCalls);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly IPipelineEvents _events = events ?? NoPipelineEvents.Instance;

    public int MaxAttempts => maxAttempts;

    /// <summary>Lost writes of the final row in a row (each means another writer moved the row on; it is read again).</summary>
    private const int MaxWriteConflicts = 5;

    /// <summary>The model's classes.</summary>
    public IReadOnlyList<string> Classes => classifier.Card.Classes;

    /// <summary>The <see cref="MessageHandler"/> of the classification consumer.</summary>
    public async Task<MessageResult> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        ActivityContext.TryParse(message.Properties.GetValueOrDefault(PipelineTelemetry.TraceParent), null, out var parent);
        using var activity = PipelineTelemetry.Source.StartActivity("classify", ActivityKind.Consumer, parent);
        var trace = PipelineTelemetry.TraceParentOf(activity, parent);

        ClassificationMessage? request;
        try
        {
            request = JsonSerializer.Deserialize<ClassificationMessage>(message.Body.Span, PipelineJson.Options);
        }
        catch (JsonException e)
        {
            return new MessageResult(MessageOutcome.DeadLetter, $"malformed message: {e.Message}");
        }

        if (request is null || string.IsNullOrEmpty(request.ImageId) || string.IsNullOrEmpty(request.Manifest))
        {
            return new MessageResult(MessageOutcome.DeadLetter, "malformed message: imageId and manifest are required");
        }

        activity?.SetTag("leuko.image_id", request.ImageId);
        try
        {
            var manifest = await ReadManifestAsync(request, cancellationToken);
            if (manifest is null)
            {
                var reason = $"classification failed: manifest '{request.Manifest}' not found";
                return await FailAsync(request, reason, trace, cancellationToken)
                    ? new MessageResult(MessageOutcome.DeadLetter, reason)
                    : new MessageResult(MessageOutcome.Complete, "stale: the upload was replaced");
            }

            // Only a first delivery trusts the message's ETag: a redelivery may be for a row finished meanwhile, and
            // reading it first spares classifying it again.
            return await ClassifyAsync(manifest, message.DeliveryCount <= 1 ? request.RowETag : null, trace, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            if (message.DeliveryCount < maxAttempts)
            {
                return new MessageResult(MessageOutcome.Retry, e.Message);
            }

            var reason = $"classification failed after {message.DeliveryCount} attempts: {e.Message}";
            await FailAsync(request, reason, trace, cancellationToken);
            return new MessageResult(MessageOutcome.DeadLetter, reason);
        }
    }

    private async Task<CropManifest?> ReadManifestAsync(ClassificationMessage request, CancellationToken cancellationToken)
    {
        if (request.Contents is { } contents)
        {
            return contents;
        }

        var (container, name) = Split(request.Manifest);
        var blob = await blobs.GetAsync(container, name, cancellationToken);
        return blob is null ? null : JsonSerializer.Deserialize<CropManifest>(blob.Content.Span, PipelineJson.Options);
    }

    /// <param name="rowETag">The row's ETag as segmentation wrote it; null: the row is read, and checked, first.</param>
    private async Task<MessageResult> ClassifyAsync(CropManifest manifest, string? rowETag, string? trace, CancellationToken cancellationToken)
    {
        if (rowETag is null)
        {
            var current = await results.GetImageAsync(manifest.ImageId, cancellationToken);
            if (current is null || current.BlobETag != manifest.BlobETag)
            {
                return new MessageResult(MessageOutcome.Complete, "stale: the upload was replaced");
            }

            if (current.IsFinal)
            {
                // A redelivery of a version that is done: the host that finished it may have died before its event was
                // queued, so it is recorded and announced again (the same webhook-id: a receiver that saw it drops it).
                await BatchProgress.RecordAsync(results, current, _events, _time, cancellationToken);
                return MessageResult.Completed;
            }

            rowETag = current.ETag;
        }

        var crops = new List<Mat>();
        try
        {
            foreach (var cell in manifest.Cells)
            {
                var (container, name) = Split(cell.Crop);
                var content = handOff?.Take(cell.Crop) is { } taken
                    ? taken
                    : (await blobs.GetAsync(container, name, cancellationToken))?.Content ?? throw new InvalidDataException($"crop '{cell.Crop}' not found");
                var crop = Cv2.ImDecode(content.Span, ImreadModes.Color);
                if (crop.Empty())
                {
                    crop.Dispose();
                    throw new InvalidDataException($"crop '{cell.Crop}' is not an image");
                }

                crops.Add(crop);
            }

            var (classified, classifyMs) = await _batcher.ClassifyAsync(crops, manifest.Field);
            var names = classifier.Card.Classes;
            var cells = manifest.Cells.Select((entry, i) =>
            {
                var c = classified[i];
                var probabilities = new Dictionary<string, double>(StringComparer.Ordinal);
                for (int k = 0; k < names.Count; k++)
                {
                    probabilities[names[k]] = Math.Round(c.Probabilities[k], 4);
                }

                return new CellRow(
                    manifest.ImageId, entry.Index, c.Label, probabilities[c.Label], probabilities, c.NeedsReview, entry.Box, entry.Area, entry.Contour, entry.Crop,
                    c.ReviewReason, manifest.BlobETag);
            }).ToList();

            await results.UpsertCellsAsync(manifest.ImageId, cells, cancellationToken);
            var counts = names.ToDictionary(n => n, n => cells.Count(c => c.Class == n));
            var row = new ImageRow(
                manifest.ImageId, manifest.Source, manifest.Upload, manifest.BatchId, ImageStatus.Completed, null, manifest.Width, manifest.Height,
                cells.Count, cells.Count(c => c.NeedsReview), counts,
                classifier.Card.Version, manifest.SegmentMs, Math.Round(classifyMs, 1), trace, manifest.BlobETag, _time.GetUtcNow(), manifest.Scale, manifest.Orientation);
            for (int conflicts = 0; ; conflicts++)
            {
                if (await results.TryWriteImageAsync(row with { ETag = rowETag }, cancellationToken))
                {
                    await BatchProgress.RecordAsync(results, row, _events, _time, cancellationToken);
                    return MessageResult.Completed;
                }

                // The row is not the one segmentation wrote (or was read at). Replaced by a new upload: these cells are no one's.
                var now = await results.GetImageAsync(manifest.ImageId, cancellationToken);
                if (now is null || now.BlobETag != manifest.BlobETag)
                {
                    await results.DeleteCellsAsync(manifest.ImageId, manifest.BlobETag, cancellationToken);
                    return new MessageResult(MessageOutcome.Complete, "stale: the upload was replaced");
                }

                if (now.IsFinal)
                {
                    return MessageResult.Completed; // finished meanwhile (a duplicate message): it is the only writer announcing it
                }

                // This version's row, still classifying, written again meanwhile (a replayed upload event): these cells are its.
                if (conflicts == MaxWriteConflicts)
                {
                    return new MessageResult(MessageOutcome.Retry, "the image's row kept changing while it was classified");
                }

                rowETag = now.ETag;
            }
        }
        finally
        {
            foreach (var crop in crops)
            {
                crop.Dispose();
            }
        }
    }

    /// <summary>
    /// Fails the image of the message's version with the reason, unless its row is final or of another version (the
    /// upload was replaced: the message is stale). False when the message was stale.
    /// </summary>
    private async Task<bool> FailAsync(ClassificationMessage request, string reason, string? trace, CancellationToken cancellationToken)
    {
        while (true)
        {
            var existing = await results.GetImageAsync(request.ImageId, cancellationToken);
            if (existing?.BlobETag is { } etag && PipelineIds.Manifest(existing.ImageId, etag) != request.Manifest)
            {
                return false;
            }

            if (existing is { IsFinal: true })
            {
                return true;
            }

            var row = existing is null
                ? new ImageRow(request.ImageId, request.ImageId, "", null, ImageStatus.Failed, reason, null, null, 0, 0,
                    classifier.Card.Classes.ToDictionary(c => c, _ => 0), null, null, null, trace, null, _time.GetUtcNow())
                : existing with { Status = ImageStatus.Failed, Error = reason, TraceParent = trace ?? existing.TraceParent, Updated = _time.GetUtcNow() };
            if (await results.TryWriteImageAsync(row, cancellationToken))
            {
                await BatchProgress.RecordAsync(results, row, _events, _time, cancellationToken);
                return true;
            }
        }
    }

    private static (string Container, string Name) Split(string reference)
    {
        int slash = reference.IndexOf('/');
        if (slash <= 0)
        {
            throw new InvalidDataException($"'{reference}' is not a container/name blob reference");
        }

        return (reference[..slash], reference[(slash + 1)..]);
    }
}
