namespace Leuko.Pipeline.Reviews;

/// <summary>
/// Where reviews live: Azure Table Storage (table <c>reviews</c>) in the cloud and on Azurite, memory in one process.
/// A change is one conditional write: the state (If-Match the ETag it was read at, or insert where there is none),
/// the cell's reviewed class and the history entry together, so a review never has a half-written step.
/// </summary>
public interface IReviewStore
{
    /// <summary>The review state of an image or batch (<see cref="ReviewState.Image"/>, <see cref="ReviewState.Batch"/>), with its ETag, or null.</summary>
    Task<ReviewState?> GetStateAsync(string subjectId, string kind, CancellationToken cancellationToken);

    /// <summary>Every stored state of a kind (the review list, the export).</summary>
    Task<IReadOnlyList<ReviewState>> ListStatesAsync(string kind, CancellationToken cancellationToken);

    /// <summary>The image states of a batch's members (its reviewed differential).</summary>
    Task<IReadOnlyList<ReviewState>> ListBatchStatesAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>
    /// Writes <paramref name="state"/> if the stored state is still the version it was read at (null ETag: if there is
    /// none), with <paramref name="cell"/> (when given) and <paramref name="entry"/>, all or nothing. False when another
    /// writer came first: read again and decide anew.
    /// </summary>
    Task<bool> TryWriteAsync(ReviewState state, CellReview? cell, ReviewEntry entry, CancellationToken cancellationToken);

    /// <summary>The reviewed cells of the image's upload version <paramref name="blobETag"/>, by index.</summary>
    Task<IReadOnlyList<CellReview>> GetCellReviewsAsync(string imageId, string blobETag, CancellationToken cancellationToken);

    /// <summary>The history of an image's or batch's review, oldest first.</summary>
    Task<IReadOnlyList<ReviewEntry>> GetHistoryAsync(string subjectId, CancellationToken cancellationToken);
}
