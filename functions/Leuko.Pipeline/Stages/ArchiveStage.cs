using System.Text.Json;
using Leuko.Core.Imaging;
using Leuko.Pipeline.Archives;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// An archive uploaded to <c>archives/</c> is read entry by entry under the archive safety rules
/// (<see cref="ImageArchive"/>) and each image is written to <c>uploads/BATCHID/ENTRY</c>, where segmentation picks
/// it up like any upload. The batch row and one member row per image (pending until the image is final) make its
/// progress readable. Refused entries are failed members with failed image rows and <c>image.failed</c> events;
/// skipped entries are listed in a blob (<see cref="BatchRow.SkippedBlob"/>). A batch is of one version of its
/// archive: a new upload under the same name is expanded afresh, its members replacing the old version's. Archive or
/// image is decided by content: an image uploaded here is analysed as a batch of one, with a note saying so; an
/// archive with no image in it fails with that reason, announced as <c>batch.failed</c>.
/// </summary>
/// <param name="lease">
/// How long an expansion's batch row, <c>expanding</c>, stays its host's: the host writes the row again (its
/// <c>Updated</c>) every third of it, and another host that finds the row older than this takes the expansion over,
/// resuming it; one that finds it fresh leaves it (<see cref="ExpandAsync"/> returns the row still expanding).
/// </param>
public sealed class ArchiveStage(
    IBlobStore blobs, IResultStore results, ArchiveLimits? limits = null, IPipelineEvents? events = null, TimeProvider? time = null, TimeSpan? lease = null)
{
    /// <summary>The default <c>lease</c>: long beside the milliseconds an entry takes, short beside a host's restart.</summary>
    public static readonly TimeSpan DefaultLease = TimeSpan.FromSeconds(30);

    private readonly TimeSpan _lease = lease ?? DefaultLease;

    private static readonly IReadOnlyDictionary<string, int> NoCounts = new Dictionary<string, int>();
    private readonly IPipelineEvents _events = events ?? NoPipelineEvents.Instance;
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ArchiveLimits _limits = limits ?? ArchiveLimits.Default;

    public async Task<BatchRow> ExpandAsync(string archiveName, CancellationToken cancellationToken)
    {
        var batchId = PipelineIds.Batch(archiveName);
        var source = $"{Containers.Archives}/{archiveName}";
        var existing = await results.GetBatchAsync(batchId, cancellationToken);
        var info = await blobs.GetInfoAsync(Containers.Archives, archiveName, cancellationToken);
        if (info is null)
        {
            return existing ?? new BatchRow(batchId, source, BatchRow.Failed, "the archive no longer exists", 0, 0, 0, _time.GetUtcNow());
        }

        if (existing is not null && existing.ArchiveETag == info.ETag && existing.Status != BatchRow.Expanding)
        {
            return existing; // a replayed event: this version's images are already on their way
        }

        if (existing is { Status: BatchRow.Expanding } && existing.ArchiveETag == info.ETag && _time.GetUtcNow() - existing.Updated < _lease)
        {
            return existing; // another host is expanding this version (its row is fresh): left to it, to look at again later
        }

        // This version's batch starts now: the row says so (if no one else moved it on), and a previous version's members go.
        if (!await results.TryWriteBatchAsync(
                new BatchRow(batchId, source, BatchRow.Expanding, null, 0, 0, 0, _time.GetUtcNow(), ArchiveETag: info.ETag) { ETag = existing?.ETag },
                cancellationToken))
        {
            return await results.GetBatchAsync(batchId, cancellationToken) ?? throw new InvalidOperationException($"batch {batchId} vanished");
        }

        var batch = (await results.GetBatchAsync(batchId, cancellationToken))!;

        // An expansion of this version that a host did not finish (it died: its row went stale): what it wrote stays, so
        // its images are neither written again (a new blob version, analysed and announced again) nor made pending again.
        bool resuming = existing is { Status: BatchRow.Expanding } && existing.ArchiveETag == info.ETag;
        if (existing is not null && !resuming)
        {
            await results.DeleteBatchMembersAsync(batchId, null, cancellationToken);
        }

        // Read from the version whose ETag is recorded: a newer upload during the expansion is a new event.
        var format = await SniffImageAsync(archiveName, cancellationToken);
        await using var stream = await blobs.OpenReadAsync(Containers.Archives, archiveName, cancellationToken);
        if (stream is null)
        {
            return await FailAsync(batch, "the archive no longer exists", cancellationToken);
        }

        if (format is { } imageFormat)
        {
            return await ExpandImageAsync(batch, archiveName, imageFormat, cancellationToken);
        }

        ImageArchive archive;
        try
        {
            archive = ImageArchive.Open(stream, _limits, leaveOpen: true);
        }
        catch (ArchiveRejectedException e)
        {
            return await FailAsync(batch, $"archive refused: {e.Message}", cancellationToken);
        }

        using (archive)
        {
            int images = 0, refused = 0;
            var skipped = new List<string>();
            var members = new HashSet<string>(StringComparer.Ordinal);
            var names = new OutputNames(); // as the CLI names them: two entries of one name are both analysed
            foreach (var entry in archive.Entries)
            {
                if (_time.GetUtcNow() - batch.Updated >= _lease / 3)
                {
                    // The lease renewed; a row moved on meanwhile (taken over, or a newer version) is no longer this expansion's.
                    if (!await results.TryWriteBatchAsync(batch with { Updated = _time.GetUtcNow() }, cancellationToken))
                    {
                        return await results.GetBatchAsync(batchId, cancellationToken) ?? throw new InvalidOperationException($"batch {batchId} vanished");
                    }

                    batch = (await results.GetBatchAsync(batchId, cancellationToken))!;
                }

                var entrySource = SourceOf(source, entry.Name);
                if (entry.Kind == ArchiveEntryKind.Skipped)
                {
                    skipped.Add($"{entry.Name}: {entry.Reason}");
                    continue;
                }

                var uploadName = $"{batchId}/{names.Add(entry.Kind == ArchiveEntryKind.Image ? entry.Name : $"entry-{entry.Index}")}";
                var imageId = PipelineIds.Image(uploadName);
                members.Add(imageId);
                if (entry.Kind == ArchiveEntryKind.Refused)
                {
                    refused++;
                    await RefuseAsync(batch, imageId, uploadName, entrySource, entry.Reason!, cancellationToken);
                    continue;
                }

                if (resuming && await WrittenByAsync(uploadName, info.ETag, cancellationToken))
                {
                    images++;
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
                    await RefuseAsync(batch, imageId, uploadName, entrySource, e.Message, cancellationToken);
                    continue;
                }

                // The member row before the blob: the image may be final before the next line runs.
                await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, imageId, entrySource, BatchMemberRow.Pending, null, NoCounts), cancellationToken);
                await blobs.PutAsync(Containers.Uploads, uploadName, data, "application/octet-stream", UploadMetadata(batchId, info.ETag, entrySource, info.Metadata), cancellationToken);
                images++;
            }

            if (resuming)
            {
                // The rows of a previous version that the interrupted expansion had not yet removed.
                await results.DeleteBatchMembersAsync(batchId, members, cancellationToken);
            }

            if (skipped.Count > 0)
            {
                // A list that grows with the archive lives in a blob: no table entity could hold 20,000 names.
                await blobs.PutAsync(Containers.Batches, BatchRow.SkippedBlob(batchId), JsonSerializer.SerializeToUtf8Bytes(skipped), "application/json", null, cancellationToken);
            }

            return await ExpandedAsync(batch with { Images = images, Refused = refused, Skipped = skipped.Count }, cancellationToken);
        }
    }

    /// <summary>
    /// Fails the batch of the archive version <paramref name="etag"/> with <paramref name="reason"/> (a host gave up on
    /// it after its attempts) unless it is final already; announced as <c>batch.failed</c>.
    /// </summary>
    public async Task<BatchRow> FailAsync(string archiveName, string etag, string reason, CancellationToken cancellationToken)
    {
        var batchId = PipelineIds.Batch(archiveName);
        while (true)
        {
            var batch = await results.GetBatchAsync(batchId, cancellationToken)
                        ?? new BatchRow(batchId, $"{Containers.Archives}/{archiveName}", BatchRow.Expanding, null, 0, 0, 0, _time.GetUtcNow(), ArchiveETag: etag);
            if (batch.ArchiveETag == etag && batch.IsFinal)
            {
                return batch;
            }

            if (await BatchProgress.TryFailAsync(results, batch with { ArchiveETag = etag }, reason, _events, _time, cancellationToken))
            {
                return (await results.GetBatchAsync(batchId, cancellationToken))!;
            }
        }
    }

    /// <summary>Fails this expansion's batch (its row as read); when another writer moved the row on, that row stands.</summary>
    private async Task<BatchRow> FailAsync(BatchRow batch, string reason, CancellationToken cancellationToken)
    {
        await BatchProgress.TryFailAsync(results, batch, reason, _events, _time, cancellationToken);
        return (await results.GetBatchAsync(batch.BatchId, cancellationToken))!;
    }

    /// <summary>Whether the upload <paramref name="uploadName"/> is there, expanded from the archive version <paramref name="archiveETag"/>.</summary>
    private async Task<bool> WrittenByAsync(string uploadName, string archiveETag, CancellationToken cancellationToken) =>
        await blobs.GetInfoAsync(Containers.Uploads, uploadName, cancellationToken) is { } upload
        && upload.Metadata.TryGetValue(Containers.ArchiveVersionKey, out var version) && version == archiveETag;

    /// <summary>Marks the expansion done (if the row is still this expansion's) and completes the batch if its images are all final.</summary>
    private async Task<BatchRow> ExpandedAsync(BatchRow batch, CancellationToken cancellationToken)
    {
        if (await results.TryWriteBatchAsync(batch with { Status = BatchRow.Expanded, Updated = _time.GetUtcNow() }, cancellationToken))
        {
            // Its images may all be final already: then the batch is complete now.
            await BatchProgress.CheckCompletedAsync(results, batch.BatchId, _events, _time, cancellationToken);
        }

        return (await results.GetBatchAsync(batch.BatchId, cancellationToken))!;
    }

    /// <summary>
    /// An entry refused by the safety rules is a member like any other: a failed member row, a failed image row
    /// (<c>GET /api/images/{id}</c> answers with the reason) and its <c>image.failed</c> event, once per archive version.
    /// </summary>
    private async Task RefuseAsync(BatchRow batch, string imageId, string uploadName, string entrySource, string reason, CancellationToken cancellationToken)
    {
        await results.UpsertBatchMemberAsync(new BatchMemberRow(batch.BatchId, imageId, entrySource, ImageStatus.Failed, reason, NoCounts), cancellationToken);
        var existing = await results.GetImageAsync(imageId, cancellationToken);
        if (existing is { IsFinal: true } && existing.BlobETag == batch.ArchiveETag)
        {
            // This archive version's entry was refused before, by an expansion that a host did not finish: it may have
            // died before the event was queued, so it is announced again (the same webhook-id).
            await _events.ImageFinalAsync(existing, cancellationToken);
            return;
        }

        var row = new ImageRow(
            imageId, entrySource, uploadName, batch.BatchId, ImageStatus.Failed, reason, null, null, 0, 0, NoCounts, null, null, null, null,
            batch.ArchiveETag, _time.GetUtcNow()) { ETag = existing?.ETag };
        if (await results.TryWriteImageAsync(row, cancellationToken))
        {
            await _events.ImageFinalAsync(row, cancellationToken);
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
    /// An archive image's upload metadata: its batch, the archive's scale (<c>micronsperpixel</c>) where it has one and,
    /// where it fits in blob metadata, its source. A longer source
    /// is left out, and segmentation reads it from the image's batch member row, written before the blob.
    /// </summary>
    private static Dictionary<string, string> UploadMetadata(string batchId, string archiveETag, string source, IReadOnlyDictionary<string, string> archiveMetadata)
    {
        var metadata = new Dictionary<string, string> { [Containers.BatchIdKey] = batchId, [Containers.ArchiveVersionKey] = archiveETag };
        if (archiveMetadata.TryGetValue(Containers.MicronsPerPixelKey, out var scale))
        {
            metadata[Containers.MicronsPerPixelKey] = scale; // the archive's calibration is each of its images' (one microscope, one scale)
        }

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
    private async Task<BatchRow> ExpandImageAsync(BatchRow batch, string archiveName, ImageFormat format, CancellationToken cancellationToken)
    {
        var blob = await blobs.GetAsync(Containers.Archives, archiveName, cancellationToken);
        if (blob is null)
        {
            return await FailAsync(batch, "the archive no longer exists", cancellationToken);
        }

        var fileName = archiveName[(archiveName.LastIndexOf('/') + 1)..];
        var uploadName = $"{batch.BatchId}/{OutputNames.Shorten(fileName)}";
        var imageId = PipelineIds.Image(uploadName);
        if (!await WrittenByAsync(uploadName, blob.ETag, cancellationToken)) // else an expansion that a host did not finish wrote it
        {
            await results.UpsertBatchMemberAsync(
                new BatchMemberRow(batch.BatchId, imageId, batch.Archive, BatchMemberRow.Pending, null, NoCounts), cancellationToken);
            var metadata = UploadMetadata(batch.BatchId, blob.ETag, batch.Archive, blob.Metadata);
            await blobs.PutAsync(Containers.Uploads, uploadName, blob.Content, "application/octet-stream", metadata, cancellationToken);
        }

        return await ExpandedAsync(
            batch with { Images = 1, Note = $"{batch.Archive} is a {format.ToString().ToUpperInvariant()} image, not a zip archive: analysed as a batch of one image" },
            cancellationToken);
    }
}
