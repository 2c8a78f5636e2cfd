using Leuko.Core.Imaging;
using Leuko.Pipeline.Archives;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// An archive uploaded to <c>archives/</c> is read entry by entry under the archive safety rules
/// (<see cref="ImageArchive"/>) and each image is written to <c>uploads/BATCHID/ENTRY</c>, where segmentation picks
/// it up like any upload. The batch row and one member row per image (pending until the image is final) make its
/// progress readable. Refused entries are failed members; skipped entries are listed on the batch. Archive or image is
/// decided by content: an image uploaded here is analysed as a batch of one, with a note saying so; an archive with
/// no image in it fails with that reason.
/// </summary>
public sealed class ArchiveStage(
    IBlobStore blobs, IResultStore results, ArchiveLimits? limits = null, IPipelineEvents? events = null, TimeProvider? time = null)
{
    private readonly IPipelineEvents _events = events ?? NoPipelineEvents.Instance;
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ArchiveLimits _limits = limits ?? ArchiveLimits.Default;

    public async Task<BatchRow> ExpandAsync(string archiveName, CancellationToken cancellationToken)
    {
        var batchId = PipelineIds.Batch(archiveName);
        var source = $"{Containers.Archives}/{archiveName}";
        var existing = await results.GetBatchAsync(batchId, cancellationToken);
        if (existing is { Status: BatchRow.Expanded or BatchRow.Failed })
        {
            return existing; // a replayed event: the images are already on their way
        }

        var gone = existing ?? new BatchRow(batchId, source, BatchRow.Failed, "the archive no longer exists", 0, 0, [], _time.GetUtcNow());
        var format = await SniffImageAsync(archiveName, cancellationToken);
        await using var stream = await blobs.OpenReadAsync(Containers.Archives, archiveName, cancellationToken);
        if (stream is null)
        {
            return gone;
        }

        var batch = new BatchRow(batchId, source, BatchRow.Expanding, null, 0, 0, [], _time.GetUtcNow());
        await results.UpsertBatchAsync(batch, cancellationToken);
        if (format is { } imageFormat)
        {
            return await ExpandImageAsync(batch, archiveName, imageFormat, cancellationToken) ?? gone;
        }

        ImageArchive archive;
        try
        {
            archive = ImageArchive.Open(stream, _limits, leaveOpen: true);
        }
        catch (ArchiveRejectedException e)
        {
            batch = batch with { Status = BatchRow.Failed, Error = $"archive refused: {e.Message}", Updated = _time.GetUtcNow() };
            await results.UpsertBatchAsync(batch, cancellationToken);
            return batch;
        }

        using (archive)
        {
            int images = 0, refused = 0;
            var skipped = new List<string>();
            var empty = new Dictionary<string, int>();
            var names = new OutputNames(); // as the CLI names them: two entries of one name are both analysed
            foreach (var entry in archive.Entries)
            {
                var entrySource = SourceOf(source, entry.Name);
                if (entry.Kind == ArchiveEntryKind.Skipped)
                {
                    skipped.Add($"{entry.Name}: {entry.Reason}");
                    continue;
                }

                var uploadName = $"{batchId}/{names.Add(entry.Kind == ArchiveEntryKind.Image ? entry.Name : $"entry-{entry.Index}")}";
                var imageId = PipelineIds.Image(uploadName);
                if (entry.Kind == ArchiveEntryKind.Refused)
                {
                    refused++;
                    await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, imageId, entrySource, ImageStatus.Failed, entry.Reason, empty), cancellationToken);
                    continue;
                }

                byte[] data;
                try
                {
                    data = archive.Read(entry);
                }
                catch (ArchiveEntryException e)
                {
                    refused++;
                    await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, imageId, entrySource, ImageStatus.Failed, e.Message, empty), cancellationToken);
                    continue;
                }

                // The member row before the blob: the image may be final before the next line runs.
                await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, imageId, entrySource, BatchMemberRow.Pending, null, empty), cancellationToken);
                await blobs.PutAsync(Containers.Uploads, uploadName, data, "application/octet-stream", UploadMetadata(batchId, entrySource), cancellationToken);
                images++;
            }

            batch = batch with { Status = BatchRow.Expanded, Images = images, Refused = refused, Skipped = skipped, Updated = _time.GetUtcNow() };
            await results.UpsertBatchAsync(batch, cancellationToken);

            // Its images may all be final already: then the batch is complete now.
            await BatchProgress.CheckCompletedAsync(results, batchId, _events, cancellationToken);
            return batch;
        }
    }

    /// <summary>Longest source kept whole in the results (Table Storage holds strings of up to 32K characters).</summary>
    public const int MaxSourceLength = 16_000;

    /// <summary>Longest source carried in an upload's metadata (all of a blob's metadata must fit in 8 KiB).</summary>
    public const int MaxMetadataSource = 2_048;

    /// <summary>
    /// <c>archives/NAME!ENTRY</c>, the entry's name as stored. A zip entry's name may be up to 64 KiB: one longer than
    /// <see cref="MaxSourceLength"/> characters (no file system has paths that long) is kept as its first characters,
    /// its length and its SHA-256.
    /// </summary>
    public static string SourceOf(string archiveSource, string entryName)
    {
        var source = $"{archiveSource}!{entryName}";
        if (source.Length <= MaxSourceLength)
        {
            return source;
        }

        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(source)));
        var cut = char.IsHighSurrogate(source[MaxSourceLength - 101]) ? MaxSourceLength - 101 : MaxSourceLength - 100;
        return $"{source[..cut]}... ({source.Length:N0} characters, SHA-256 {hash})";
    }

    /// <summary>
    /// An archive image's upload metadata: its batch and, where it fits in blob metadata, its source. A longer source
    /// is left out, and segmentation reads it from the image's batch member row, written before the blob.
    /// </summary>
    private static Dictionary<string, string> UploadMetadata(string batchId, string source)
    {
        var metadata = new Dictionary<string, string> { [Containers.BatchIdKey] = batchId };
        var escaped = Uri.EscapeDataString(source);
        if (escaped.Length <= MaxMetadataSource)
        {
            metadata[Containers.SourceKey] = escaped;
        }

        return metadata;
    }

    /// <summary>The image format the upload's first bytes announce when they are not a zip's, else null (an archive, or neither: refused as an archive).</summary>
    private async Task<ImageFormat?> SniffImageAsync(string archiveName, CancellationToken cancellationToken)
    {
        await using var stream = await blobs.OpenReadAsync(Containers.Archives, archiveName, cancellationToken);
        if (stream is null)
        {
            return null;
        }

        var head = new byte[16];
        int read = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        return ImageArchive.IsZip(head.AsSpan(0, read)) ? null : ImageHeader.Sniff(head.AsSpan(0, read));
    }

    /// <summary>
    /// An image uploaded to <c>archives/</c>: the client waits for a batch, so it gets one, of this one image, which
    /// goes to <c>uploads/BATCHID/NAME</c> like an archive's entry; the batch's note says what happened.
    /// </summary>
    private async Task<BatchRow?> ExpandImageAsync(BatchRow batch, string archiveName, ImageFormat format, CancellationToken cancellationToken)
    {
        var blob = await blobs.GetAsync(Containers.Archives, archiveName, cancellationToken);
        if (blob is null)
        {
            return null;
        }

        var fileName = archiveName[(archiveName.LastIndexOf('/') + 1)..];
        var uploadName = $"{batch.BatchId}/{OutputNames.Shorten(fileName)}";
        var imageId = PipelineIds.Image(uploadName);
        await results.UpsertBatchMemberAsync(
            new BatchMemberRow(batch.BatchId, imageId, batch.Archive, BatchMemberRow.Pending, null, new Dictionary<string, int>()), cancellationToken);
        var metadata = UploadMetadata(batch.BatchId, batch.Archive);
        if (blob.Metadata.TryGetValue(Containers.MicronsPerPixelKey, out var scale))
        {
            metadata[Containers.MicronsPerPixelKey] = scale; // the image's own calibration, as on any upload
        }

        await blobs.PutAsync(Containers.Uploads, uploadName, blob.Content, "application/octet-stream", metadata, cancellationToken);
        batch = batch with
        {
            Status = BatchRow.Expanded,
            Images = 1,
            Note = $"{batch.Archive} is a {format.ToString().ToUpperInvariant()} image, not a zip archive: analysed as a batch of one image",
            Updated = _time.GetUtcNow(),
        };
        await results.UpsertBatchAsync(batch, cancellationToken);
        await BatchProgress.CheckCompletedAsync(results, batch.BatchId, _events, cancellationToken);
        return batch;
    }
}
