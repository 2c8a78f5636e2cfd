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
/// work, so nothing is lost when the host dies mid-work (a restart does again only what has no receipt yet). A blob whose
/// work fails is tried again on a later scan; after <c>maxAttempts</c> failed attempts (counted in the receipts
/// table) it is given up, as the Functions blob trigger's poison handling gives up: its image or batch is failed
/// with the reason and the receipt written. The receipts are read once, in one query per container, when the watcher
/// starts; from then on it knows every version done (about 150 bytes of memory per blob in the containers), so a scan
/// costs a listing and no table reads, and a version it has not seen done is new. Receipts are written together,
/// one request for all the versions finished since the last (at each scan, a quarter second apart while there is work):
/// a host killed in between does those versions again on restart, which the stages' idempotence makes harmless.
/// </summary>
public sealed class UploadWatcher(
    IBlobStore blobs, IResultStore results, SegmentationStage segmentation, ArchiveStage archives, ILogger<UploadWatcher> logger,
    TimeSpan? interval = null, int parallel = 0, int maxAttempts = 5) : BackgroundService
{
    /// <summary>
    /// Between scans: a new upload waits half of it on average before it is seen (measured on bursts of 72 BCCD fields
    /// against Azurite: 2.8 s from the first upload to the last final row with 1 s and the queue's 0.5-4 s polling,
    /// 2.1-2.3 s with 0.25 s and the queue woken by its own sends), for about 3% of a core more while idle (Azurite 8.8%
    /// against 7.1% of a core, <c>leuko serve</c> 2.5% against 1.6%, 584 blobs in the container).
    /// </summary>
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromMilliseconds(250);
    private readonly SemaphoreSlim _slots = new(parallel > 0 ? parallel : Environment.ProcessorCount);
    private readonly Dictionary<(string Container, string Name, string ETag), Task> _running = [];
    private readonly HashSet<(string Container, string Name, string ETag)> _done = [];
    private readonly Lock _doneLock = new();
    private List<(string Container, BlobVersion Blob)> _receipts = [];
    private bool _receiptsRead;
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
                    await WriteReceiptsAsync(stoppingToken);
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
                    await WriteReceiptsAsync(stoppingToken);
                }
                while (Volatile.Read(ref _waiting) > 0);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(_running.Values);
        await WriteReceiptsAsync(CancellationToken.None);
    }

    /// <summary>Writes the receipts of the versions finished since the last call; on failure they are kept for the next.</summary>
    private async Task WriteReceiptsAsync(CancellationToken cancellationToken)
    {
        List<(string Container, BlobVersion Blob)> receipts;
        lock (_doneLock)
        {
            (receipts, _receipts) = (_receipts, []);
        }

        try
        {
            foreach (var container in receipts.GroupBy(r => r.Container))
            {
                await results.AddReceiptsAsync(container.Key, container.Select(r => r.Blob).ToList(), cancellationToken);
            }
        }
        catch (Exception e)
        {
            lock (_doneLock)
            {
                _receipts.InsertRange(0, receipts);
            }

            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            logger.LogWarning(e, "{Count} receipts could not be written; trying again", receipts.Count);
        }
    }

    /// <summary>
    /// One pass over both containers: queues the work on every new blob version (each waits for one of the slots);
    /// returns how many, and the time the listing took. The first pass reads the receipts first.
    /// </summary>
    private async Task<(int Found, TimeSpan Listing)> ScanOnceAsync(CancellationToken cancellationToken)
    {
        foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
        {
            _running.Remove(done);
        }

        if (!_receiptsRead)
        {
            foreach (var container in new[] { Containers.Archives, Containers.Uploads })
            {
                foreach (var receipt in await results.ListReceiptsAsync(container, cancellationToken))
                {
                    MarkDone((container, receipt.Name, receipt.ETag));
                }
            }

            _receiptsRead = true;
        }

        int found = 0;
        long started = Stopwatch.GetTimestamp();
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

        return (found, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>The work on one blob version, isolated: whatever it throws is counted against this blob alone.</summary>
    private async Task HandleAsync(string container, BlobListing blob, CancellationToken cancellationToken)
    {
        try
        {
            if (container == Containers.Archives)
            {
                var batch = await archives.ExpandAsync(blob.Name, cancellationToken);
                if (batch.Status == BatchRow.Expanding)
                {
                    // Another host is expanding it: no receipt, so a later scan looks again, and takes it over if that host died.
                    logger.LogDebug("archive {Name}: batch {Batch} being expanded by another host", blob.Name, batch.BatchId);
                    return;
                }

                logger.LogInformation("archive {Name}: batch {Batch} {Status}, {Images} images", blob.Name, batch.BatchId, batch.Status, batch.Images);
            }
            else
            {
                var row = await segmentation.ProcessAsync(blob.Name, null, cancellationToken);
                logger.LogDebug("upload {Name}: image {Id} {Status}", blob.Name, row.ImageId, row.Status);
            }

            AddReceipt(container, blob);
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

            AddReceipt(container, blob);
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

    /// <summary>Done: not handled again by this host, and its receipt written with the next ones.</summary>
    private void AddReceipt(string container, BlobListing blob)
    {
        lock (_doneLock)
        {
            _done.Add((container, blob.Name, blob.ETag));
            _receipts.Add((container, new BlobVersion(blob.Name, blob.ETag)));
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
