using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Leuko.Pipeline.Storage;

/// <summary>Blobs in memory, for one process (<c>leuko analyze</c>) and tests.</summary>
public sealed class InMemoryBlobStore : IBlobStore
{
    private readonly ConcurrentDictionary<(string Container, string Name), StoredBlob> _blobs = new();
    private long _version;

    public Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken) =>
        Task.FromResult(_blobs.TryGetValue((container, name), out var blob) ? blob : null);

    public Task<BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken) =>
        Task.FromResult(_blobs.TryGetValue((container, name), out var blob) ? new BlobInfo(blob.ETag, blob.Content.Length, blob.Metadata) : null);

    public Task DeleteAsync(string container, string name, CancellationToken cancellationToken)
    {
        Delete(container, name);
        return Task.CompletedTask;
    }

    public Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken) =>
        Task.FromResult<Stream?>(_blobs.TryGetValue((container, name), out var blob) ? new MemoryStream(blob.Content.ToArray(), writable: false) : null);

    public Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType,
        IReadOnlyDictionary<string, string>? metadata, CancellationToken cancellationToken)
    {
        var etag = $"\"{Interlocked.Increment(ref _version)}\"";
        _blobs[(container, name)] = new StoredBlob(name, content.ToArray(), etag, metadata ?? new Dictionary<string, string>());
        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var blob in _blobs.Where(b => b.Key.Container == container && b.Key.Name.StartsWith(prefix ?? "", StringComparison.Ordinal))
                     .OrderBy(b => b.Key.Name, StringComparer.Ordinal))
        {
            yield return new BlobListing(blob.Key.Name, blob.Value.ETag, blob.Value.Content.Length);
        }

        await Task.CompletedTask;
    }

    /// <summary>Removes one blob (the local run frees each image once it is final).</summary>
    public void Delete(string container, string name) => _blobs.TryRemove((container, name), out _);

    /// <summary>Blobs held, in every container.</summary>
    public int Count => _blobs.Count;

    /// <summary>Removes every blob of a container whose name starts with <paramref name="prefix"/>.</summary>
    public void DeletePrefix(string container, string prefix)
    {
        foreach (var key in _blobs.Keys.Where(k => k.Container == container && k.Name.StartsWith(prefix, StringComparison.Ordinal)))
        {
            _blobs.TryRemove(key, out _);
        }
    }
}

/// <summary>Results in memory, for one process and tests. Row versions are counters, checked as the tables check ETags.</summary>
public sealed class InMemoryResultStore : IResultStore
{
    private readonly ConcurrentDictionary<string, ImageRow> _images = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<(string? BlobETag, int Index), CellRow>> _cells = new();
    private readonly ConcurrentDictionary<string, BatchRow> _batches = new();
    private readonly ConcurrentDictionary<(string BatchId, string ImageId), BatchMemberRow> _members = new();
    private readonly ConcurrentDictionary<(string, string), string> _receipts = new();
    private readonly ConcurrentDictionary<(string, string, string), int> _attempts = new();
    private readonly Lock _write = new();
    private long _version;

    public async Task<bool> TryWriteImageAsync(ImageRow image, CancellationToken cancellationToken) =>
        await WriteImageAsync(image, cancellationToken) is not null;

    public Task<string?> WriteImageAsync(ImageRow image, CancellationToken cancellationToken) =>
        Task.FromResult(TryWrite(_images, image.ImageId, image.ETag, e => image with { ETag = e }, r => r.ETag));

    public Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken) =>
        Task.FromResult(_images.TryGetValue(imageId, out var row) ? row : null);

    public Task<IReadOnlyList<ImageRow>> ListImagesAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ImageRow>>(_images.Values.OrderBy(r => r.ImageId, StringComparer.Ordinal).ToList());

    public Task<IReadOnlyList<BatchRow>> ListBatchesAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<BatchRow>>(_batches.Values.OrderBy(r => r.BatchId, StringComparer.Ordinal).ToList());

    public Task<IReadOnlyList<ImageRow>> FindImagesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ImageRow>>(_images.Values.Where(r => r.Status == status && r.Updated < before).ToList());

    public Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken)
    {
        var rows = _cells.GetOrAdd(imageId, _ => new ConcurrentDictionary<(string?, int), CellRow>());
        foreach (var cell in cells)
        {
            rows[(cell.BlobETag, cell.Index)] = cell;
        }

        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<CellRow>>(_cells.TryGetValue(imageId, out var rows) ? rows.Values.Where(c => c.BlobETag == blobETag).OrderBy(c => c.Index).ToList() : []);

    public Task DeleteCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken)
    {
        if (_cells.TryGetValue(imageId, out var rows))
        {
            foreach (var cell in rows.Values.Where(c => c.BlobETag == blobETag))
            {
                rows.TryRemove((cell.BlobETag, cell.Index), out _);
            }
        }

        return Task.CompletedTask;
    }

    public Task<bool> TryWriteBatchAsync(BatchRow batch, CancellationToken cancellationToken) =>
        Task.FromResult(TryWrite(_batches, batch.BatchId, batch.ETag, e => batch with { ETag = e }, r => r.ETag) is not null);

    public Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken) =>
        Task.FromResult(_batches.TryGetValue(batchId, out var row) ? row : null);

    public Task<IReadOnlyList<BatchRow>> FindBatchesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<BatchRow>>(_batches.Values.Where(r => r.Status == status && r.Updated < before).ToList());

    public Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken)
    {
        _members[(member.BatchId, member.ImageId)] = member;
        return Task.CompletedTask;
    }

    public Task<bool> UpdateBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            if (!_members.ContainsKey((member.BatchId, member.ImageId)))
            {
                return Task.FromResult(false);
            }

            _members[(member.BatchId, member.ImageId)] = member;
            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlyList<BatchMemberRow>> GetBatchMembersAsync(string batchId, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<BatchMemberRow>>(_members.Where(m => m.Key.BatchId == batchId).OrderBy(m => m.Key.ImageId, StringComparer.Ordinal).Select(m => m.Value).ToList());

    public Task DeleteBatchMembersAsync(string batchId, IReadOnlySet<string>? except, CancellationToken cancellationToken)
    {
        foreach (var key in _members.Keys.Where(k => k.BatchId == batchId && except?.Contains(k.ImageId) != true))
        {
            _members.TryRemove(key, out _);
        }

        return Task.CompletedTask;
    }

    public Task<bool> HasPendingMembersAsync(string batchId, CancellationToken cancellationToken) =>
        Task.FromResult(_members.Any(m => m.Key.BatchId == batchId && m.Value.Status == BatchMemberRow.Pending));

    public Task<bool> HasReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken) =>
        Task.FromResult(_receipts.TryGetValue((container, blobName), out var existing) && existing == etag);

    public Task<IReadOnlyList<BlobVersion>> ListReceiptsAsync(string container, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<BlobVersion>>(_receipts.Where(r => r.Key.Item1 == container).Select(r => new BlobVersion(r.Key.Item2, r.Value)).ToList());

    public Task AddReceiptsAsync(string container, IReadOnlyCollection<BlobVersion> blobs, CancellationToken cancellationToken)
    {
        foreach (var blob in blobs)
        {
            _receipts[(container, blob.Name)] = blob.ETag;
        }

        return Task.CompletedTask;
    }

    /// <summary>Removes an image's row and its cells (the local run frees each image once it is final and reported).</summary>
    public void DeleteImage(string imageId)
    {
        _images.TryRemove(imageId, out _);
        _cells.TryRemove(imageId, out _);
    }

    /// <summary>Rows held, in every table.</summary>
    public int Count => _images.Count + _cells.Count + _batches.Count + _members.Count + _receipts.Count + _attempts.Count;

    public Task<int> AddFailedAttemptAsync(string container, string blobName, string etag, string error, CancellationToken cancellationToken) =>
        Task.FromResult(_attempts.AddOrUpdate((container, blobName, etag), 1, (_, n) => n + 1));

    /// <summary>The row's new version, or null when the stored row is not <paramref name="expected"/>.</summary>
    private string? TryWrite<T>(ConcurrentDictionary<string, T> rows, string key, string? expected, Func<string, T> versioned, Func<T, string?> versionOf)
    {
        lock (_write)
        {
            var current = rows.TryGetValue(key, out var row) ? versionOf(row) : null;
            if (current != expected)
            {
                return null;
            }

            var version = $"\"{++_version}\"";
            rows[key] = versioned(version);
            return version;
        }
    }
}
