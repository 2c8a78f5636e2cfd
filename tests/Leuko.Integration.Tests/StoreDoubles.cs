using System.Collections.Concurrent;
using Leuko.Pipeline;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Integration.Tests;

/// <summary>What the stages announced, in order.</summary>
internal sealed class RecordingEvents : IPipelineEvents
{
    public ConcurrentQueue<(string Type, string Id, string? Error)> Events { get; } = new();

    public Task ImageFinalAsync(ImageRow image, CancellationToken cancellationToken)
    {
        Events.Enqueue((image.Status == ImageStatus.Failed ? WebhookEvents.ImageFailed : WebhookEvents.ImageCompleted, image.ImageId, image.Error));
        return Task.CompletedTask;
    }

    public Task BatchCompletedAsync(BatchRow batch, IReadOnlyList<BatchMemberRow> members, CancellationToken cancellationToken)
    {
        Events.Enqueue((WebhookEvents.BatchCompleted, batch.BatchId, null));
        return Task.CompletedTask;
    }

    public Task BatchFailedAsync(BatchRow batch, CancellationToken cancellationToken)
    {
        Events.Enqueue((WebhookEvents.BatchFailed, batch.BatchId, batch.Error));
        return Task.CompletedTask;
    }

    public IReadOnlyList<(string Type, string Id, string? Error)> Of(string id) => Events.Where(e => e.Id == id).ToList();
}

/// <summary>
/// The real store, except that the first read of one image returns <paramref name="stale"/>: a writer that read the
/// row just before another finished it (the interleaving of a replayed blob event with classification).
/// </summary>
internal sealed class StaleFirstRead(IResultStore inner, ImageRow stale) : IResultStore
{
    private int _reads;

    public Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken) =>
        imageId == stale.ImageId && Interlocked.Increment(ref _reads) == 1 ? Task.FromResult<ImageRow?>(stale) : inner.GetImageAsync(imageId, cancellationToken);

    public Task<bool> TryWriteImageAsync(ImageRow image, CancellationToken cancellationToken) => inner.TryWriteImageAsync(image, cancellationToken);

    public Task<string?> WriteImageAsync(ImageRow image, CancellationToken cancellationToken) => inner.WriteImageAsync(image, cancellationToken);

    public Task<IReadOnlyList<ImageRow>> ListImagesAsync(CancellationToken cancellationToken) => inner.ListImagesAsync(cancellationToken);

    public Task<IReadOnlyList<BatchRow>> ListBatchesAsync(CancellationToken cancellationToken) => inner.ListBatchesAsync(cancellationToken);

    public Task<IReadOnlyList<ImageRow>> FindImagesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken) => inner.FindImagesAsync(status, before, cancellationToken);

    public Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken) => inner.UpsertCellsAsync(imageId, cells, cancellationToken);

    public Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken) => inner.GetCellsAsync(imageId, blobETag, cancellationToken);

    public Task DeleteCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken) => inner.DeleteCellsAsync(imageId, blobETag, cancellationToken);

    public Task<bool> TryWriteBatchAsync(BatchRow batch, CancellationToken cancellationToken) => inner.TryWriteBatchAsync(batch, cancellationToken);

    public Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken) => inner.GetBatchAsync(batchId, cancellationToken);

    public Task<IReadOnlyList<BatchRow>> FindBatchesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken) => inner.FindBatchesAsync(status, before, cancellationToken);

    public Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken) => inner.UpsertBatchMemberAsync(member, cancellationToken);

    public Task<bool> UpdateBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken) => inner.UpdateBatchMemberAsync(member, cancellationToken);

    public Task<IReadOnlyList<BatchMemberRow>> GetBatchMembersAsync(string batchId, CancellationToken cancellationToken) => inner.GetBatchMembersAsync(batchId, cancellationToken);

    public Task DeleteBatchMembersAsync(string batchId, IReadOnlySet<string>? except, CancellationToken cancellationToken) =>
        inner.DeleteBatchMembersAsync(batchId, except, cancellationToken);

    public Task<bool> HasPendingMembersAsync(string batchId, CancellationToken cancellationToken) => inner.HasPendingMembersAsync(batchId, cancellationToken);

    public Task<bool> HasReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken) => inner.HasReceiptAsync(container, blobName, etag, cancellationToken);

    public Task<IReadOnlyList<BlobVersion>> ListReceiptsAsync(string container, CancellationToken cancellationToken) => inner.ListReceiptsAsync(container, cancellationToken);

    public Task AddReceiptsAsync(string container, IReadOnlyCollection<BlobVersion> blobs, CancellationToken cancellationToken) => inner.AddReceiptsAsync(container, blobs, cancellationToken);

    public Task<int> AddFailedAttemptAsync(string container, string blobName, string etag, string error, CancellationToken cancellationToken) =>
        inner.AddFailedAttemptAsync(container, blobName, etag, error, cancellationToken);
}

/// <summary>The real blobs, except that reading any archive whose name starts with <paramref name="prefix"/> throws: work on that blob always fails.</summary>
internal sealed class FailingArchives(IBlobStore inner, string prefix) : IBlobStore
{
    private bool Fails(string container, string name) => container == Containers.Archives && name.StartsWith(prefix, StringComparison.Ordinal);

    public Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken) =>
        Fails(container, name) ? throw new IOException("the storage account answered 500") : inner.GetAsync(container, name, cancellationToken);

    public Task<BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken) =>
        Fails(container, name) ? throw new IOException("the storage account answered 500") : inner.GetInfoAsync(container, name, cancellationToken);

    public Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken) =>
        Fails(container, name) ? throw new IOException("the storage account answered 500") : inner.OpenReadAsync(container, name, cancellationToken);

    public Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType, IReadOnlyDictionary<string, string>? metadata, CancellationToken cancellationToken) =>
        inner.PutAsync(container, name, content, contentType, metadata, cancellationToken);

    public Task DeleteAsync(string container, string name, CancellationToken cancellationToken) => inner.DeleteAsync(container, name, cancellationToken);

    public IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, CancellationToken cancellationToken) => inner.ListAsync(container, prefix, cancellationToken);
}

/// <summary>The real blob store, counting the blobs read from each container.</summary>
internal sealed class CountingBlobStore(IBlobStore inner) : IBlobStore
{
    public ConcurrentDictionary<string, int> Reads { get; } = new();

    public Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken)
    {
        Reads.AddOrUpdate(container, 1, (_, n) => n + 1);
        return inner.GetAsync(container, name, cancellationToken);
    }

    public Task<BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken) => inner.GetInfoAsync(container, name, cancellationToken);

    public Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken) => inner.OpenReadAsync(container, name, cancellationToken);

    public Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType, IReadOnlyDictionary<string, string>? metadata,
        CancellationToken cancellationToken) => inner.PutAsync(container, name, content, contentType, metadata, cancellationToken);

    public Task DeleteAsync(string container, string name, CancellationToken cancellationToken) => inner.DeleteAsync(container, name, cancellationToken);

    public IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, CancellationToken cancellationToken) => inner.ListAsync(container, prefix, cancellationToken);
}

/// <summary>The real blobs, except that the put after the first <paramref name="puts"/> to <paramref name="container"/> throws: a host that dies there.</summary>
internal sealed class DyingAfterPuts(IBlobStore inner, string container, int puts) : IBlobStore
{
    private int _done;

    public Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken) => inner.GetAsync(container, name, cancellationToken);

    public Task<BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken) => inner.GetInfoAsync(container, name, cancellationToken);

    public Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken) => inner.OpenReadAsync(container, name, cancellationToken);

    public Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType, IReadOnlyDictionary<string, string>? metadata,
        CancellationToken cancellationToken) =>
        container == Container && Interlocked.Increment(ref _done) > puts
            ? throw new IOException("the host died")
            : inner.PutAsync(container, name, content, contentType, metadata, cancellationToken);

    private string Container => container;

    public Task DeleteAsync(string container, string name, CancellationToken cancellationToken) => inner.DeleteAsync(container, name, cancellationToken);

    public IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, CancellationToken cancellationToken) => inner.ListAsync(container, prefix, cancellationToken);
}

/// <summary>Events that throw the first time an image or a batch is announced (a host dying just before), then record.</summary>
internal sealed class DyingOnceEvents : IPipelineEvents
{
    private int _died;

    public RecordingEvents Recorded { get; } = new();

    private void DieOnce()
    {
        if (Interlocked.Exchange(ref _died, 1) == 0)
        {
            throw new IOException("the host died before the event was queued");
        }
    }

    public Task ImageFinalAsync(ImageRow image, CancellationToken cancellationToken)
    {
        DieOnce();
        return Recorded.ImageFinalAsync(image, cancellationToken);
    }

    public Task BatchCompletedAsync(BatchRow batch, IReadOnlyList<BatchMemberRow> members, CancellationToken cancellationToken)
    {
        DieOnce();
        return Recorded.BatchCompletedAsync(batch, members, cancellationToken);
    }

    public Task BatchFailedAsync(BatchRow batch, CancellationToken cancellationToken)
    {
        DieOnce();
        return Recorded.BatchFailedAsync(batch, cancellationToken);
    }
}

/// <summary>The system clock moved by <paramref name="offset"/>.</summary>
internal sealed class ShiftedTime(TimeSpan offset) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
}

/// <summary>A clock that moves on by <paramref name="step"/> each time it is read: work that takes long.</summary>
internal sealed class SteppingTime(TimeSpan step) : TimeProvider
{
    private long _reads;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + (step * Interlocked.Increment(ref _reads));
}
