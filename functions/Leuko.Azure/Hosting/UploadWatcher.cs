using System.Diagnostics;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The local host's stand-in for blob triggers (<c>leuko serve</c>): scans <c>archives/</c> and <c>uploads/</c> for
/// blob versions without a receipt and runs the archive or segmentation stage on each, as a task of its own (at most
/// <c>parallel</c> at once), so one slow or failing blob never holds up the others. The receipt is written after the
/// work, so nothing is processed twice across restarts and nothing is lost when the host dies mid-work. A blob whose
/// work fails is tried again on a later scan; after <c>maxAttempts</c> failed attempts (counted in the receipts
/// table) it is given up, as the Functions blob trigger's poison handling gives up: its image or batch is failed
/// with the reason and the receipt written. The blob versions known to have a receipt are remembered, so each scan
/// reads the receipts table only for versions it has not seen done: a container of N finished blobs costs a listing
/// per scan, not N table reads (about 150 bytes of memory per blob in the containers).
/// </summary>
public sealed class UploadWatcher(
    IBlobStore blobs, IResultStore results, SegmentationStage segmentation, ArchiveStage archives, ILogger<UploadWatcher> logger,
    TimeSpan? interval = null, int parallel = 0, int maxAttempts = 5) : BackgroundService
{
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(1);
    private readonly SemaphoreSlim _slots = new(parallel > 0 ? parallel : Environment.ProcessorCount);
    private readonly Dictionary<(string Container, string Name, string ETag), Task> _running = [];
    private readonly HashSet<(string Container, string Name, string ETag)> _done = [];
    private readonly Lock _doneLock = new();
    private int _waiting;

    /// <summary>A scan's time is at most 1 in this many of the watcher's: the rest it waits.</summary>
    private const int ListingDutyFactor = 10;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                (int Found, TimeSpan Listing) scan = (0, TimeSpan.Zero);
                try
                {
                    scan = await ScanOnceAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "listing failed; retrying");
                }

                // Listing is O(blobs in the containers) and the storage's costliest call (on Azurite, on the same cores):
                // after a scan that found nothing (a listing and nothing else), the next is spaced so that listing takes
                // at most a tenth of the time, whatever the containers hold.
                var pause = scan.Found > 0 ? _interval : TimeSpan.FromTicks(Math.Max(_interval.Ticks, scan.Listing.Ticks * (ListingDutyFactor - 1)));

                // Work found waits for a slot, not for the next listing; while some is still waiting, another listing
                // would only find work to queue behind it, so the next scan also waits until the slots are about to be free.
                do
                {
                    await Task.Delay(pause, stoppingToken);
                }
                while (Volatile.Read(ref _waiting) > 0);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(_running.Values);
    }

    /// <summary>
    /// One pass over both containers: queues the work on every new blob version (each waits for one of the slots);
    /// returns how many, and the time the listing itself took (not the receipts read).
    /// </summary>
    private async Task<(int Found, TimeSpan Listing)> ScanOnceAsync(CancellationToken cancellationToken)
    {
        foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
        {
            _running.Remove(done);
        }

        int found = 0;
        long started = Stopwatch.GetTimestamp();
        var receipts = TimeSpan.Zero;
        var listed = new HashSet<(string, string, string)>();
        foreach (var container in new[] { Containers.Archives, Containers.Uploads })
        {
            await foreach (var blob in blobs.ListAsync(container, null, cancellationToken))
            {
                var key = (container, blob.Name, blob.ETag);
                listed.Add(key);
                if (_running.ContainsKey(key) || IsDone(key))
                {
                    continue;
                }

                long asked = Stopwatch.GetTimestamp();
                bool done = await results.HasReceiptAsync(container, blob.Name, blob.ETag, cancellationToken);
                receipts += Stopwatch.GetElapsedTime(asked);
                if (done)
                {
                    MarkDone(key);
                    continue;
                }

                found++;
                Interlocked.Increment(ref _waiting);
                _running[key] = Task.Run(async () =>
                {
                    try
                    {
                        await _slots.WaitAsync(cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    finally
                    {
                        Interlocked.Decrement(ref _waiting);
                    }

                    await HandleAsync(container, blob, cancellationToken);
                }, CancellationToken.None);
            }
        }

        // Versions deleted or overwritten since are forgotten: the memory follows the containers, not their history.
        lock (_doneLock)
        {
            _done.IntersectWith(listed);
        }

        return (found, Stopwatch.GetElapsedTime(started) - receipts);
    }

    /// <summary>The work on one blob version, isolated: whatever it throws is counted against this blob alone.</summary>
    private async Task HandleAsync(string container, BlobListing blob, CancellationToken cancellationToken)
    {
        try
        {
            if (container == Containers.Archives)
            {
                var batch = await archives.ExpandAsync(blob.Name, cancellationToken);
                logger.LogInformation("archive {Name}: batch {Batch} {Status}, {Images} images", blob.Name, batch.BatchId, batch.Status, batch.Images);
            }
            else
            {
                var row = await segmentation.ProcessAsync(blob.Name, null, cancellationToken);
                logger.LogDebug("upload {Name}: image {Id} {Status}", blob.Name, row.ImageId, row.Status);
            }

            await results.AddReceiptAsync(container, blob.Name, blob.ETag, cancellationToken);
            MarkDone((container, blob.Name, blob.ETag));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            await GiveUpOrRetryAsync(container, blob, e, cancellationToken);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task GiveUpOrRetryAsync(string container, BlobListing blob, Exception error, CancellationToken cancellationToken)
    {
        try
        {
            int attempts = await results.AddFailedAttemptAsync(container, blob.Name, blob.ETag, error.Message, cancellationToken);
            if (attempts < maxAttempts)
            {
                logger.LogWarning(error, "{Container}/{Name}: attempt {Attempt} of {Max} failed; retrying", container, blob.Name, attempts, maxAttempts);
                return;
            }

            var reason = $"gave up after {attempts} attempts: {error.Message}";
            if (container == Containers.Archives)
            {
                await archives.FailAsync(blob.Name, blob.ETag, reason, cancellationToken);
            }
            else
            {
                await segmentation.FailAsync(blob.Name, blob.ETag, reason, cancellationToken);
            }

            await results.AddReceiptAsync(container, blob.Name, blob.ETag, cancellationToken);
            MarkDone((container, blob.Name, blob.ETag));
            logger.LogError(error, "{Container}/{Name}: {Reason}", container, blob.Name, reason);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(e, "{Container}/{Name}: the failure could not be recorded; the blob is tried again", container, blob.Name);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private bool IsDone((string, string, string) key)
    {
        lock (_doneLock)
        {
            return _done.Contains(key);
        }
    }

    private void MarkDone((string, string, string) key)
    {
        lock (_doneLock)
        {
            _done.Add(key);
        }
    }
}
