namespace Leuko.Pipeline.Storage;

/// <summary>
/// One image's row (table <c>images</c>): where it stands, its differential and timings. Status is one of
/// <see cref="ImageStatus"/> or <see cref="ImageRow.Classifying"/> while its cells wait for classification.
/// <paramref name="Source"/> is what the user gave (<c>uploads/NAME</c>, or <c>archives/NAME!entry</c>);
/// <paramref name="Upload"/> is the blob analysed, in <c>uploads/</c>. <paramref name="BlobETag"/> is the version of the upload it describes: a replayed event for that version changes nothing.
/// <paramref name="Counts"/> holds every class of the model, the other-cell kinds included. <paramref name="Scale"/> is the physical scale it was segmented at.
/// <paramref name="Orientation"/> is the EXIF orientation applied when it was decoded (1: none; null: not decoded): its size, boxes and
/// outlines are those of the picture as viewers show it.
/// </summary>
public sealed record ImageRow(
    string ImageId,
    string Source,
    string Upload,
    string? BatchId,
    string Status,
    string? Error,
    int? Width,
    int? Height,
    int Cells,
    int NeedsReview,
    IReadOnlyDictionary<string, int> Counts,
    string? ModelVersion,
    double? SegmentMs,
    double? ClassifyMs,
    string? TraceParent,
    string? BlobETag,
    DateTimeOffset Updated,
    ScaleRecord? Scale = null,
    int? Orientation = null)
{
    /// <summary>Segmented; the cells are queued for classification.</summary>
    public const string Classifying = "classifying";

    public bool IsFinal => Status is ImageStatus.Completed or ImageStatus.NoLeukocytes or ImageStatus.Failed;
}

/// <summary>One classified cell (table <c>cells</c>: PartitionKey = image id, RowKey = cell index).</summary>
/// <param name="Contour">The cell's outline, simplified, as "x,y x,y ..." in image pixels.</param>
/// <param name="CropBlob">The crop, as <c>crops/NAME</c>.</param>
/// <param name="ReviewReason">Why the cell needs review (see <see cref="Leuko.Core.Classification.ReviewReasons"/>), or null.</param>
public sealed record CellRow(
    string ImageId,
    int Index,
    string Class,
    double Confidence,
    IReadOnlyDictionary<string, double> Probabilities,
    bool NeedsReview,
    Box Box,
    int Area,
    string Contour,
    string CropBlob,
    string? ReviewReason = null)
{
    /// <summary>The cell as every host reports it.</summary>
    public CellResult ToResult() => new(Index, Box, Class, Confidence, Probabilities, NeedsReview, Area, ReviewReason);
}

/// <summary>An archive expanded into a batch (table <c>batches</c>).</summary>
/// <param name="Images">Image entries expanded into <c>uploads/</c> (each becomes an image).</param>
/// <param name="Refused">Entries refused by the archive safety rules, each a failed member.</param>
/// <param name="Skipped">Entries that are not images, with their reasons.</param>
/// <param name="Note">What was done that the user did not ask for, e.g. an image uploaded to <c>archives/</c> analysed as a batch of one.</param>
public sealed record BatchRow(
    string BatchId,
    string Archive,
    string Status,
    string? Error,
    int Images,
    int Refused,
    IReadOnlyList<string> Skipped,
    DateTimeOffset Updated,
    string? Note = null)
{
    /// <summary>The archive is being expanded.</summary>
    public const string Expanding = "expanding";

    /// <summary>Every entry was written to uploads/ (its images may still be in progress).</summary>
    public const string Expanded = "expanded";

    /// <summary>The archive was refused as a whole (see Error).</summary>
    public const string Failed = "failed";
}

/// <summary>One image of a batch and where it stands, <see cref="BatchMemberRow.Pending"/> until its image is final (table <c>batches</c>, PartitionKey = batch id, RowKey = image id).</summary>
public sealed record BatchMemberRow(string BatchId, string ImageId, string Source, string Status, string? Error, IReadOnlyDictionary<string, int> Counts)
{
    /// <summary>Expanded into uploads/, not yet final.</summary>
    public const string Pending = "pending";
}

/// <summary>
/// Where results live: Azure Table Storage in the cloud and on Azurite, memory for one process. Every write is an
/// upsert keyed by deterministic ids, so replays change nothing.
/// </summary>
public interface IResultStore
{
    Task UpsertImageAsync(ImageRow image, CancellationToken cancellationToken);

    Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken);

    /// <summary>Writes an image's cells (in transactions of at most 100 where the store has them).</summary>
    Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken);

    Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, CancellationToken cancellationToken);

    Task UpsertBatchAsync(BatchRow batch, CancellationToken cancellationToken);

    Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken);

    Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken);

    Task<IReadOnlyList<BatchMemberRow>> GetBatchMembersAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>One image of a batch, or null (stores with point reads override this).</summary>
    async Task<BatchMemberRow?> GetBatchMemberAsync(string batchId, string imageId, CancellationToken cancellationToken) =>
        (await GetBatchMembersAsync(batchId, cancellationToken)).FirstOrDefault(m => m.ImageId == imageId);

    /// <summary>Whether any image of the batch is still pending (asked after every image: it must not read the whole batch).</summary>
    Task<bool> HasPendingMembersAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>Whether this exact version (name and ETag) of a blob was handled (the local host's scan receipts).</summary>
    Task<bool> HasReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken);

    /// <summary>
    /// Records that a blob version was handled. Written after the work, so a host killed mid-work does it again on
    /// restart (the stages are idempotent) rather than never.
    /// </summary>
    Task AddReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken);
}
