using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Stages;

/// <summary>
/// Finds what is stuck and settles it, so that nothing stays in progress forever whatever was lost (a message, a
/// host, an event): an image in <c>classifying</c>, or a batch in <c>expanding</c>, not updated for
/// <paramref name="stuckAfter"/> is failed with a reason saying so, and announced; a batch <c>expanded</c> that long
/// is completed if none of its images is pending (a completion check that never ran). Every write is conditional on
/// the row as the sweeper read it, so a row that moved on meanwhile is left as it is, and sweepers on several hosts
/// never announce anything twice.
/// </summary>
public sealed class PipelineSweeper(IResultStore results, TimeSpan stuckAfter, IPipelineEvents? events = null, TimeProvider? time = null)
{
    private readonly IPipelineEvents _events = events ?? NoPipelineEvents.Instance;
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public TimeSpan StuckAfter => stuckAfter;

    /// <summary>How long a final batch may stay unannounced before the sweeper announces it.</summary>
    public TimeSpan AnnounceAfter => stuckAfter < TimeSpan.FromMinutes(1) ? stuckAfter : TimeSpan.FromMinutes(1);

    /// <summary>One pass; returns how many images and batches it failed.</summary>
    public async Task<int> SweepOnceAsync(CancellationToken cancellationToken)
    {
        var before = _time.GetUtcNow() - stuckAfter;
        int failed = 0;
        foreach (var image in await results.FindImagesAsync(ImageRow.Classifying, before, cancellationToken))
        {
            var row = image with
            {
                Status = ImageStatus.Failed,
                Error = $"stuck in {ImageRow.Classifying} since {image.Updated:u} (more than {stuckAfter}): classification never finished",
                Updated = _time.GetUtcNow(),
            };
            if (await results.TryWriteImageAsync(row, cancellationToken))
            {
                await BatchProgress.RecordAsync(results, row, _events, _time, cancellationToken);
                failed++;
            }
        }

        // An expansion's host renews its row every third of its lease, and another host takes over a row older than the
        // lease: only one older than twice that, whatever the bound, is stuck.
        var expandingBound = stuckAfter > 2 * ArchiveStage.DefaultLease ? stuckAfter : 2 * ArchiveStage.DefaultLease;
        foreach (var batch in await results.FindBatchesAsync(BatchRow.Expanding, _time.GetUtcNow() - expandingBound, cancellationToken))
        {
            var reason = $"stuck in {BatchRow.Expanding} since {batch.Updated:u} (more than {expandingBound}): the archive's expansion never finished";
            failed += await BatchProgress.TryFailAsync(results, batch, reason, _events, _time, cancellationToken) ? 1 : 0;
        }

        foreach (var batch in await results.FindBatchesAsync(BatchRow.Expanded, before, cancellationToken))
        {
            await BatchProgress.CheckCompletedAsync(results, batch.BatchId, _events, _time, cancellationToken);
        }

        // A batch made final by a host that died before its event was queued: announced now, with the webhook-id it
        // would have had. A writer takes milliseconds between the two, so a minute (or the stuck bound, if shorter)
        // never takes a live one's turn.
        foreach (var batch in await results.FindAnnouncingBatchesAsync(_time.GetUtcNow() - AnnounceAfter, cancellationToken))
        {
            await BatchProgress.AnnounceAsync(results, batch, _events, cancellationToken);
        }

        return failed;
    }
}
