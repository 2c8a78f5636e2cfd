using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// A batch's progress, decided by conditional writes of its row: once an image is final its member row follows and
/// its event is announced; the writer whose write turns the batch <see cref="BatchRow.Completed"/> (or
/// <see cref="BatchRow.Failed"/>) is the one that announces it, so each batch is announced exactly once.
/// </summary>
public static class BatchProgress
{
    /// <summary>After the caller's conditional write made <paramref name="row"/> final: member row, image event, batch completion.</summary>
    public static async Task RecordAsync(IResultStore results, ImageRow row, IPipelineEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!row.IsFinal)
        {
            return;
        }

        if (row.BatchId is not null)
        {
            // Only a member row that exists: an image of an archive's earlier version is no longer one of its batch's.
            await results.UpdateBatchMemberAsync(new BatchMemberRow(row.BatchId, row.ImageId, row.Source, row.Status, row.Error, row.Counts), cancellationToken);
        }

        await events.ImageFinalAsync(row, cancellationToken);
        if (row.BatchId is not null)
        {
            await CheckCompletedAsync(results, row.BatchId, events, time, cancellationToken);
        }
    }

    /// <summary>
    /// Completes the batch when it is expanded and none of its images is pending: the row goes from expanded to
    /// completed by a conditional write, and only the writer that made it announces <c>batch.completed</c>. Two images
    /// finishing at once both get here; one wins, the other reads the completed row and stops.
    /// </summary>
    public static async Task CheckCompletedAsync(IResultStore results, string batchId, IPipelineEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            var batch = await results.GetBatchAsync(batchId, cancellationToken);
            if (batch is not { Status: BatchRow.Expanded } || await results.HasPendingMembersAsync(batchId, cancellationToken))
            {
                return;
            }

            var completed = batch with { Status = BatchRow.Completed, Updated = time.GetUtcNow(), Announcing = true };
            if (await results.TryWriteBatchAsync(completed, cancellationToken))
            {
                await AnnounceAsync(results, completed, events, cancellationToken);
                return;
            }
        }
    }

    /// <summary>
    /// Fails the batch with <paramref name="reason"/> unless it is final already, and announces <c>batch.failed</c>
    /// when this write made it so. <paramref name="batch"/> is the row as read (its ETag is the write's condition); false
    /// when another writer changed it first (read it again to decide).
    /// </summary>
    public static async Task<bool> TryFailAsync(IResultStore results, BatchRow batch, string reason, IPipelineEvents events, TimeProvider time, CancellationToken cancellationToken)
    {
        var failed = batch with { Status = BatchRow.Failed, Error = reason, Updated = time.GetUtcNow(), Announcing = true };
        if (!await results.TryWriteBatchAsync(failed, cancellationToken))
        {
            return false;
        }

        await AnnounceAsync(results, failed, events, cancellationToken);
        return true;
    }

    /// <summary>
    /// Announces a batch that a write made final (<see cref="BatchRow.Announcing"/>), then clears the mark, its
    /// <c>Updated</c> unchanged, so an announcement made again by the sweeper, after a host died between the two, has the
    /// same webhook-id. Where the row moved on meanwhile, the mark is left to whoever moved it.
    /// </summary>
    public static async Task AnnounceAsync(IResultStore results, BatchRow batch, IPipelineEvents events, CancellationToken cancellationToken)
    {
        if (batch.Status == BatchRow.Completed)
        {
            await events.BatchCompletedAsync(batch, await results.GetBatchMembersAsync(batch.BatchId, cancellationToken), cancellationToken);
        }
        else
        {
            await events.BatchFailedAsync(batch, cancellationToken);
        }

        if (await results.GetBatchAsync(batch.BatchId, cancellationToken) is { Announcing: true } current
            && current.Status == batch.Status && current.Updated == batch.Updated)
        {
            await results.TryWriteBatchAsync(current with { Announcing = false }, cancellationToken);
        }
    }
}
