using Leuko.Pipeline.Archives;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// An archive uploaded to <c>archives/</c> is read entry by entry under the archive safety rules
/// (<see cref="ImageArchive"/>) and each image is written to <c>uploads/BATCHID/ENTRY</c>, where segmentation picks
/// it up like any upload. The batch row and one member row per image (pending until the image is final) make its
/// progress readable. Refused entries are failed members; skipped entries are listed on the batch.
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

        await using var stream = await blobs.OpenReadAsync(Containers.Archives, archiveName, cancellationToken);
        if (stream is null)
        {
            return existing ?? new BatchRow(batchId, source, BatchRow.Failed, "the archive no longer exists", 0, 0, [], _time.GetUtcNow());
        }

        var batch = new BatchRow(batchId, source, BatchRow.Expanding, null, 0, 0, [], _time.GetUtcNow());
        await results.UpsertBatchAsync(batch, cancellationToken);
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
            foreach (var entry in archive.Entries)
            {
                var entrySource = $"{source}!{entry.Name}";
                if (entry.Kind == ArchiveEntryKind.Skipped)
                {
                    skipped.Add($"{entry.Name}: {entry.Reason}");
                    continue;
                }

                var uploadName = $"{batchId}/{(entry.Kind == ArchiveEntryKind.Image ? entry.Name.Replace('\\', '/') : $"entry-{entry.Index}")}";
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
                var metadata = new Dictionary<string, string> { [Containers.BatchIdKey] = batchId, [Containers.SourceKey] = Uri.EscapeDataString(entrySource) };
                await blobs.PutAsync(Containers.Uploads, uploadName, data, "application/octet-stream", metadata, cancellationToken);
                images++;
            }

            batch = batch with { Status = BatchRow.Expanded, Images = images, Refused = refused, Skipped = skipped, Updated = _time.GetUtcNow() };
            await results.UpsertBatchAsync(batch, cancellationToken);

            // Its images may all be final already (or there were none): then the batch is complete now.
            await BatchProgress.CheckCompletedAsync(results, batchId, _events, cancellationToken);
            return batch;
        }
    }
}
