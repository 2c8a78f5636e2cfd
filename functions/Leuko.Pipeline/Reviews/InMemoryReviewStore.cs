namespace Leuko.Pipeline.Reviews;

/// <summary>Reviews in memory, for tests and one process. State versions are counters, checked as the table checks ETags.</summary>
public sealed class InMemoryReviewStore : IReviewStore
{
    private readonly Dictionary<(string, string), ReviewState> _states = new();
    private readonly Dictionary<(string, string, int), CellReview> _cells = new();
    private readonly List<ReviewEntry> _history = [];
    private readonly Lock _write = new();
    private long _version;

    public Task<ReviewState?> GetStateAsync(string subjectId, string kind, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            return Task.FromResult(_states.GetValueOrDefault((subjectId, kind)));
        }
    }

    public Task<IReadOnlyList<ReviewState>> ListStatesAsync(string kind, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            return Task.FromResult<IReadOnlyList<ReviewState>>(_states.Values.Where(s => s.Kind == kind).OrderBy(s => s.SubjectId, StringComparer.Ordinal).ToList());
        }
    }

    public Task<IReadOnlyList<ReviewState>> ListBatchStatesAsync(string batchId, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            return Task.FromResult<IReadOnlyList<ReviewState>>(_states.Values.Where(s => s.Kind == ReviewState.Image && s.BatchId == batchId).ToList());
        }
    }

    public Task<bool> TryWriteAsync(ReviewState state, CellReview? cell, ReviewEntry entry, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            var current = _states.GetValueOrDefault((state.SubjectId, state.Kind))?.ETag;
            if (current != state.ETag)
            {
                return Task.FromResult(false);
            }

            _states[(state.SubjectId, state.Kind)] = state with { ETag = $"\"{++_version}\"" };
            if (cell is not null)
            {
                _cells[(cell.ImageId, cell.BlobETag, cell.Index)] = cell;
            }

            _history.Add(entry);
            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlyList<CellReview>> GetCellReviewsAsync(string imageId, string blobETag, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            return Task.FromResult<IReadOnlyList<CellReview>>(
                _cells.Values.Where(c => c.ImageId == imageId && c.BlobETag == blobETag).OrderBy(c => c.Index).ToList());
        }
    }

    public Task<IReadOnlyList<ReviewEntry>> GetHistoryAsync(string subjectId, CancellationToken cancellationToken)
    {
        lock (_write)
        {
            return Task.FromResult<IReadOnlyList<ReviewEntry>>(_history.Where(e => e.SubjectId == subjectId).ToList());
        }
    }
}
