using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The local host's stand-in for blob triggers (<c>leuko serve</c>): scans <c>archives/</c> and <c>uploads/</c> for
/// blob versions without a receipt, runs the archive or segmentation stage on each, and writes the receipt after the
/// work, so nothing is processed twice across restarts and nothing is lost when the host dies mid-work.
/// </summary>
public sealed class UploadWatcher(
    IBlobStore blobs, IResultStore results, SegmentationStage segmentation, ArchiveStage archives, ILogger<UploadWatcher> logger,
    TimeSpan? interval = null, int parallel = 0) : BackgroundService
{
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(1);
    private readonly int _parallel = parallel > 0 ? parallel : Environment.ProcessorCount;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                int handled = await ScanOnceAsync(stoppingToken);
                if (handled == 0)
                {
                    await Task.Delay(_interval, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "scan failed; retrying");
                await Task.Delay(_interval, stoppingToken);
            }
        }
    }

    /// <summary>One pass over both containers; returns how many blob versions were handled.</summary>
    public async Task<int> ScanOnceAsync(CancellationToken cancellationToken)
    {
        int handled = 0;
        await foreach (var archive in blobs.ListAsync(Containers.Archives, null, cancellationToken))
        {
            if (!await results.HasReceiptAsync(Containers.Archives, archive.Name, archive.ETag, cancellationToken))
            {
                var batch = await archives.ExpandAsync(archive.Name, cancellationToken);
                logger.LogInformation("archive {Name}: batch {Batch} {Status}, {Images} images", archive.Name, batch.BatchId, batch.Status, batch.Images);
                await results.AddReceiptAsync(Containers.Archives, archive.Name, archive.ETag, cancellationToken);
                handled++;
            }
        }

        var pending = new List<BlobListing>();
        await foreach (var upload in blobs.ListAsync(Containers.Uploads, null, cancellationToken))
        {
            if (!await results.HasReceiptAsync(Containers.Uploads, upload.Name, upload.ETag, cancellationToken))
            {
                pending.Add(upload);
            }
        }

        await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = _parallel, CancellationToken = cancellationToken }, async (upload, ct) =>
        {
            var row = await segmentation.ProcessAsync(upload.Name, null, ct);
            logger.LogDebug("upload {Name}: image {Id} {Status}", upload.Name, row.ImageId, row.Status);
            await results.AddReceiptAsync(Containers.Uploads, upload.Name, upload.ETag, ct);
        });
        return handled + pending.Count;
    }
}
