using System.Diagnostics;
using System.Text.Json;
using System.Globalization;
using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;
using Leuko.Pipeline.Archives;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using OpenCvSharp;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// First stage: an image uploaded to <c>uploads/</c> is decoded and segmented; each leukocyte's crop is written to
/// <c>crops/</c> (lossless PNG) with a manifest, and one message per image asks for classification. An image without
/// leukocytes completes here; a file that is not a usable image fails here, on the first try, with its reason.
/// Idempotent: a replayed event for an upload already final changes nothing.
/// </summary>
/// <param name="cropFormat">How crops are stored, losslessly: <see cref="CropFormat.Png"/> in blob storage (compact, viewable);
/// <see cref="CropFormat.Bmp"/> in memory, where compressing costs more than it saves (measured: PNG took 3.9 ms of
/// the local run's 20 ms per field).</param>
/// <param name="handOff">Where the crops written are kept for classification in this process (<see cref="CropHandOff"/>); null: nowhere.</param>
/// <param name="scale">The scale of every image (the <c>Leuko:MicronsPerPixel</c> setting, or <c>--microns-per-pixel</c>);
/// an upload's <see cref="Containers.MicronsPerPixelKey"/> metadata overrides it; null: estimated per image.</param>
/// <param name="decoded">Called with each image decoded (oriented as viewers show it), keyed by its image id, for a host
/// that draws it afterwards (<see cref="LocalPipeline"/>) without decoding it again; the image is lent: the stage
/// disposes it once segmented, so a caller that keeps it keeps a clone.</param>
public sealed class SegmentationStage(
    IBlobStore blobs, IResultStore results, IMessageSender sender, LeukocyteSegmenter segmenter, IReadOnlyList<string> classes,
    CropFormat cropFormat = CropFormat.Png, IPipelineEvents? events = null, TimeProvider? time = null, ImageScale? scale = null,
    int maxInlineManifestBytes = SegmentationStage.MaxInlineManifestBytes, CropHandOff? handOff = null, Action<string, Mat>? decoded = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly IPipelineEvents _events = events ?? NoPipelineEvents.Instance;

    /// <summary>Conditional writes lost in a row before giving up (each loss means another writer moved the row on; it is read again).</summary>
    private const int MaxWriteConflicts = 5;

    /// <summary>
    /// The largest manifest carried in the classification message itself (UTF-8 JSON bytes), saving its blob's write
    /// and read: a Storage Queue message holds 64 KiB, and the storage-queue transport's envelope carries the body in
    /// base64 (4/3 of it) with the message id and trace context. About 600 bytes a cell on BCCD fields (more for large cells,
    /// whose outlines have more points): fields of up to ~50 such cells go in the message, larger manifests by a blob. Service Bus (256 KiB on the standard tier) takes either.
    /// </summary>
    public const int MaxInlineManifestBytes = 32 * 1024;

    /// <param name="uploadName">The blob's name in <c>uploads/</c>.</param>
    /// <param name="traceParent">The W3C trace context of the upload event, when the host has one.</param>
    public async Task<ImageRow> ProcessAsync(string uploadName, string? traceParent, CancellationToken cancellationToken)
    {
        ActivityContext.TryParse(traceParent, null, out var parent);
        using var activity = PipelineTelemetry.Source.StartActivity("segment", ActivityKind.Consumer, parent);
        var imageId = PipelineIds.Image(uploadName);
        activity?.SetTag("leuko.image_id", imageId);
        var trace = PipelineTelemetry.TraceParentOf(activity, parent);
        for (int conflicts = 0; ; conflicts++)
        {
            // The first pass writes the row as new without reading it (most uploads are new); a pass after a lost write
            // reads it first, as a replay or a new version of the upload needs.
            if (await ProcessOnceAsync(uploadName, imageId, trace, activity, readRow: conflicts > 0, cancellationToken) is { } row)
            {
                return row;
            }

            if (conflicts == MaxWriteConflicts)
            {
                throw new InvalidOperationException($"image {imageId}: its row kept changing while {uploadName} was segmented");
            }
        }
    }

    /// <summary>
    /// One pass: the row it wrote, or the row that makes writing unnecessary; null when its write lost a race. Without
    /// <paramref name="readRow"/> the row is not read: it is written as a new row, which loses where one exists.
    /// </summary>
    private async Task<ImageRow?> ProcessOnceAsync(string uploadName, string imageId, string trace, Activity? activity, bool readRow, CancellationToken cancellationToken)
    {
        var blob = await blobs.GetAtMostAsync(Containers.Uploads, uploadName, ImageFile.MaxBytes, cancellationToken);
        if (blob is null)
        {
            // Deleted between the event and now: nothing to analyse, and nothing to report under a new row.
            return await results.GetImageAsync(imageId, cancellationToken) ?? Row(imageId, $"{Containers.Uploads}/{uploadName}", uploadName, null,
                ImageStatus.Failed, "the upload no longer exists", null, null, trace, null);
        }

        var batchId = PipelineIds.BatchOf(blob.Metadata);
        var source = blob.Metadata.TryGetValue(Containers.SourceKey, out var escaped)
            ? Uri.UnescapeDataString(escaped)
            : batchId is not null && await results.GetBatchMemberAsync(batchId, imageId, cancellationToken) is { } member
                ? member.Source // an archive entry whose name is too long for blob metadata
                : $"{Containers.Uploads}/{uploadName}";
        var existing = readRow ? await results.GetImageAsync(imageId, cancellationToken) : null;
        if (existing is { IsFinal: true } && existing.BlobETag == blob.ETag)
        {
            // A replayed event, or this version again after a host died. A row that segmentation made final (not an
            // image, no leukocytes) has no message to be redelivered, so it is recorded and announced again here (the
            // same webhook-id); a completed one is classification's, whose redelivery does the same.
            if (existing.Status != ImageStatus.Completed)
            {
                await BatchProgress.RecordAsync(results, existing, _events, _time, cancellationToken);
            }

            return existing;
        }

        long start = Stopwatch.GetTimestamp();
        Mat image;
        int orientation;
        ImageScale? given;
        try
        {
            if (blob.Length > ImageFile.MaxBytes)
            {
                ImageFile.Check(blob.Length); // not read: no image file is this long (the reason says so, as for a file)
            }

            given = GivenScale(blob.Metadata);
            if (ImageArchive.IsZip(blob.Content.Span))
            {
                // Known by its content, as images are; the reason says where an archive goes (an entry's is not expanded).
                throw new InvalidImageException(batchId is null
                    ? $"a zip archive, not an image: upload archives to {Containers.Archives}/, where each image in them is analysed as a batch"
                    : "a zip archive inside an archive: nested archives are not expanded");
            }

            image = ImageDecoder.Decode(blob.Content.Span, out orientation);
        }
        catch (InvalidImageException e)
        {
            return await FinishAsync(Row(imageId, source, uploadName, batchId, ImageStatus.Failed, e.Message, null, null, trace, blob.ETag), existing, cancellationToken);
        }

        using (image)
        {
            decoded?.Invoke(imageId, image);
            using var segmentation = segmenter.Segment(image, given);
            double segmentMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var scaleRecord = ScaleRecord.Of(segmentation.Scale);
            if (segmentation.Leukocytes.Count == 0)
            {
                return await FinishAsync(
                    Row(imageId, source, uploadName, batchId, ImageStatus.NoLeukocytes, null, image.Width, image.Height, trace, blob.ETag) with
                    {
                        SegmentMs = Math.Round(segmentMs, 1), Scale = scaleRecord, Orientation = orientation,
                    },
                    existing, cancellationToken);
            }

            var folder = PipelineIds.CropFolder(imageId, blob.ETag);
            var entries = new List<CropEntry>();
            for (int i = 0; i < segmentation.Leukocytes.Count; i++)
            {
                var cell = segmentation.Leukocytes[i];
                var (extension, contentType) = cropFormat == CropFormat.Png ? (".png", "image/png") : (".bmp", "image/bmp");
                var crop = $"{folder}{i}{extension}";
                Cv2.ImEncode(extension, cell.Crop, out var encoded);
                await blobs.PutAsync(Containers.Crops, crop, encoded, contentType, null, cancellationToken);
                if (handOff is not null)
                {
                    // Held as BMP, the same pixels as the PNG blob: classification decodes it without inflating the
                    // PNG again (measured with perf: PNG decoding was 1.7% of leuko serve's CPU in a burst).
                    byte[] held = encoded;
                    if (cropFormat == CropFormat.Png)
                    {
                        Cv2.ImEncode(".bmp", cell.Crop, out held);
                    }

                    handOff.Put($"{Containers.Crops}/{crop}", held);
                }
                entries.Add(new CropEntry(i, new Box(cell.Box.X, cell.Box.Y, cell.Box.Width, cell.Box.Height), cell.Area, Contours.Format(cell.Contour), $"{Containers.Crops}/{crop}"));
            }

            var manifest = new CropManifest(imageId, source, uploadName, batchId, blob.ETag, image.Width, image.Height, Math.Round(segmentMs, 1), entries, scaleRecord, orientation) { Field = segmentation.Field };
            var manifestName = PipelineIds.Manifest(imageId, blob.ETag);
            var manifestJson = JsonSerializer.SerializeToUtf8Bytes(manifest, PipelineJson.Options);
            bool inline = manifestJson.Length <= maxInlineManifestBytes;
            if (!inline)
            {
                await blobs.PutAsync(Containers.Crops, manifestName[(Containers.Crops.Length + 1)..], manifestJson, "application/json", null, cancellationToken);
            }

            // The row first, then the message: classification may finish before this method returns.
            var row = Row(imageId, source, uploadName, batchId, ImageRow.Classifying, null, image.Width, image.Height, trace, blob.ETag) with
            {
                Cells = entries.Count,
                SegmentMs = Math.Round(segmentMs, 1),
                Scale = scaleRecord,
                ETag = existing?.ETag,
                Orientation = orientation,
            };
            var rowETag = await results.WriteImageAsync(row, cancellationToken);
            if (rowETag is null)
            {
                // Another writer moved the row on. When the upload itself changed meanwhile, these crops are no one's.
                if ((await blobs.GetInfoAsync(Containers.Uploads, uploadName, cancellationToken))?.ETag != blob.ETag)
                {
                    await DeleteCropsAsync(folder, cancellationToken);
                }

                return null;
            }

            await RemovePreviousVersionAsync(existing, blob.ETag, cancellationToken);
            var properties = new Dictionary<string, string> { [PipelineTelemetry.TraceParent] = trace };
            var body = JsonSerializer.SerializeToUtf8Bytes(
                new ClassificationMessage(imageId, manifestName) { Contents = inline ? manifest : null, RowETag = rowETag }, PipelineJson.Options);
            await sender.SendAsync(new OutgoingMessage(PipelineIds.Message(imageId, blob.ETag), body, properties), cancellationToken);
            activity?.SetTag("leuko.cells", entries.Count);
            return row;
        }
    }

    /// <summary>
    /// Fails the upload version <paramref name="etag"/> with <paramref name="reason"/> (a host gave up on it after its
    /// attempts) unless it is final already; announces it like any final image.
    /// </summary>
    public async Task<ImageRow> FailAsync(string uploadName, string etag, string reason, CancellationToken cancellationToken)
    {
        var imageId = PipelineIds.Image(uploadName);
        for (int conflicts = 0; ; conflicts++)
        {
            var existing = await results.GetImageAsync(imageId, cancellationToken);
            if (existing is { IsFinal: true } && existing.BlobETag == etag)
            {
                return existing;
            }

            var metadata = (await blobs.GetInfoAsync(Containers.Uploads, uploadName, cancellationToken))?.Metadata ?? new Dictionary<string, string>();
            var source = metadata.TryGetValue(Containers.SourceKey, out var escaped) ? Uri.UnescapeDataString(escaped) : $"{Containers.Uploads}/{uploadName}";
            var row = Row(imageId, source, uploadName, PipelineIds.BatchOf(metadata), ImageStatus.Failed, reason, null, null, existing?.TraceParent, etag);
            if (await FinishAsync(row, existing, cancellationToken) is not null || conflicts == MaxWriteConflicts)
            {
                return await results.GetImageAsync(imageId, cancellationToken) ?? row;
            }
        }
    }

    /// <summary>The upload's own scale (metadata), else the stage's; a malformed value fails the image with its reason.</summary>
    private ImageScale? GivenScale(IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(Containers.MicronsPerPixelKey, out var text))
        {
            return scale;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            || !double.IsFinite(value) || value < ImageScale.MinMicronsPerPixel || value > ImageScale.MaxMicronsPerPixel)
        {
            throw new InvalidImageException(
                $"metadata {Containers.MicronsPerPixelKey}='{text}' is not a scale: give micrometres per pixel between {ImageScale.MinMicronsPerPixel} and {ImageScale.MaxMicronsPerPixel}, e.g. 0.1");
        }

        return ImageScale.Given(value);
    }

    private ImageRow Row(string imageId, string source, string upload, string? batchId, string status, string? error, int? width, int? height, string? trace, string? etag) =>
        new(imageId, source, upload, batchId, status, error, width, height, 0, 0, classes.ToDictionary(c => c, _ => 0), null, null, null, trace, etag, _time.GetUtcNow());

    /// <summary>Writes a final row over <paramref name="existing"/> (the row as read) and announces it; null when another writer came first.</summary>
    private async Task<ImageRow?> FinishAsync(ImageRow row, ImageRow? existing, CancellationToken cancellationToken)
    {
        if (!await results.TryWriteImageAsync(row with { ETag = existing?.ETag }, cancellationToken))
        {
            return null;
        }

        await RemovePreviousVersionAsync(existing, row.BlobETag, cancellationToken);
        await BatchProgress.RecordAsync(results, row, _events, _time, cancellationToken);
        return row;
    }

    /// <summary>
    /// After this version's row replaced <paramref name="existing"/>: the replaced version's cells and crops go, so
    /// the results of an upload are exactly its current version's. Only that version's: a newer one is never touched.
    /// </summary>
    private async Task RemovePreviousVersionAsync(ImageRow? existing, string? etag, CancellationToken cancellationToken)
    {
        if (existing?.BlobETag is { } previous && previous != etag)
        {
            await results.DeleteCellsAsync(existing.ImageId, previous, cancellationToken);
            await DeleteCropsAsync(PipelineIds.CropFolder(existing.ImageId, previous), cancellationToken);
        }
    }

    private async Task DeleteCropsAsync(string folder, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await foreach (var crop in blobs.ListAsync(Containers.Crops, folder, cancellationToken))
        {
            names.Add(crop.Name);
        }

        foreach (var name in names)
        {
            await blobs.DeleteAsync(Containers.Crops, name, cancellationToken);
        }
    }
}

/// <summary>Lossless formats for crops between the stages.</summary>
public enum CropFormat
{
    Png,
    Bmp,
}

/// <summary>Contours as compact text: "x,y x,y ..." after simplification (1 px tolerance).</summary>
public static class Contours
{
    public static string Format(Point[] contour)
    {
        var simplified = Cv2.ApproxPolyDP(contour, 1.0, closed: true);
        return string.Join(' ', simplified.Select(p => $"{p.X},{p.Y}"));
    }

    public static Point[] Parse(string text) =>
        string.IsNullOrWhiteSpace(text)
            ? []
            : text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p =>
            {
                var xy = p.Split(',');
                return new Point(int.Parse(xy[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(xy[1], System.Globalization.CultureInfo.InvariantCulture));
            }).ToArray();
}
