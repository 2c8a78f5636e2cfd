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
/// with the reason and the receipt written.
/// </summary>
public sealed class UploadWatcher(
    IBlobStore blobs, IResultStore results, SegmentationStage segmentation, ArchiveStage archives, ILogger<UploadWatcher> logger,
    TimeSpan? interval = null, int parallel = 0, int maxAttempts = 5) : BackgroundService
{
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(1);
    private readonly SemaphoreSlim _slots = new(parallel > 0 ? parallel : Environment.ProcessorCount);
    private readonly Dictionary<(string Container, string Name, string ETag), Task> _running = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                int started;
                try
                {
                    started = await ScanOnceAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "listing failed; retrying");
                    started = 0;
                }

                if (started == 0)
                {
                    await Task.Delay(_interval, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await Task.WhenAll(_running.Values);
    }

    /// <summary>One pass over both containers: starts the work on every new blob version; returns how many were started.</summary>
    private async Task<int> ScanOnceAsync(CancellationToken cancellationToken)
    {
        foreach (var done in _running.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToList())
        {
            _running.Remove(done);
        }

        int started = 0;
        foreach (var container in new[] { Containers.Archives, Containers.Uploads })
        {
            await foreach (var blob in blobs.ListAsync(container, null, cancellationToken))
            {
                var key = (container, blob.Name, blob.ETag);
                if (_running.ContainsKey(key) || await results.HasReceiptAsync(container, blob.Name, blob.ETag, cancellationToken))
                {
                    continue;
                }

                await _slots.WaitAsync(cancellationToken);
                _running[key] = Task.Run(() => HandleAsync(container, blob, cancellationToken), CancellationToken.None);
                started++;
            }
        }

        return started;
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
}
