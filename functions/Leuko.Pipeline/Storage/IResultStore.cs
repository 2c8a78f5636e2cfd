using System.Text.Json.Serialization;

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

    /// <summary>The stored row's version (the table entity's ETag) when it was read; null for a row not yet stored. See <see cref="IResultStore.TryWriteImageAsync"/>.</summary>
    [JsonIgnore]
    public string? ETag { get; init; }
}

/// <summary>One classified cell (table <c>cells</c>: PartitionKey = image id, RowKey = cell index).</summary>
/// <param name="Contour">The cell's outline, simplified, as "x,y x,y ..." in image pixels.</param>
/// <param name="CropBlob">The crop, as <c>crops/NAME</c>.</param>
/// <param name="ReviewReason">Why the cell needs review (see <see cref="Leuko.Core.Classification.ReviewReasons"/>), or null.</param>
/// <param name="BlobETag">The version of the upload the cell was found in: cells of two versions never share a row.</param>
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
    string? ReviewReason = null,
    string? BlobETag = null)
{
    /// <summary>The cell as every host reports it.</summary>
    public CellResult ToResult() => new(Index, Box, Class, Confidence, Probabilities, NeedsReview, Area, ReviewReason);
}

/// <summary>An archive expanded into a batch (table <c>batches</c>).</summary>
/// <param name="Images">Image entries expanded into <c>uploads/</c> (each becomes an image).</param>
/// <param name="Refused">Entries refused by the archive safety rules, each a failed member.</param>
/// <param name="Skipped">How many entries are not images; the list, with their reasons, is the blob <see cref="SkippedBlob"/> (an
/// archive may hold thousands: no table entity could hold them).</param>
/// <param name="ArchiveETag">The version of the archive blob the batch was made from: a new upload under the same name is a new batch.</param>
/// <param name="Note">What was done that the user did not ask for, e.g. an image uploaded to <c>archives/</c> analysed as a batch of one.</param>
public sealed record BatchRow(
    string BatchId,
    string Archive,
    string Status,
    string? Error,
    int Images,
    int Refused,
    int Skipped,
    DateTimeOffset Updated,
    string? Note = null,
    string? ArchiveETag = null)
{
    /// <summary>The archive is being expanded.</summary>
    public const string Expanding = "expanding";

    /// <summary>Every entry was written to uploads/ (its images may still be in progress).</summary>
    public const string Expanded = "expanded";

    /// <summary>Every image is final and <c>batch.completed</c> was announced (by the one writer of this status).</summary>
    public const string Completed = "completed";

    /// <summary>The archive was refused as a whole, or could not be expanded (see Error).</summary>
    public const string Failed = "failed";

    public bool IsFinal => Status is Completed or Failed;

    /// <summary>Where the list of skipped entries is, in <see cref="Containers.Batches"/>: a JSON array of "NAME: REASON".</summary>
    public static string SkippedBlob(string batchId) => $"{batchId}/skipped.json";

    /// <summary>
    /// Made final (completed or failed) and its event not yet known to be announced: the writer that made it so clears
    /// this once the event is queued; a host that died in between leaves it set, and the sweeper announces it.
    /// </summary>
    [JsonIgnore]
    public bool Announcing { get; init; }

    /// <summary>The stored row's version (the table entity's ETag) when it was read; null for a row not yet stored.</summary>
    [JsonIgnore]
    public string? ETag { get; init; }
}

/// <summary>One image of a batch and where it stands, <see cref="BatchMemberRow.Pending"/> until its image is final (table <c>batches</c>, PartitionKey = batch id, RowKey = image id).</summary>
public sealed record BatchMemberRow(string BatchId, string ImageId, string Source, string Status, string? Error, IReadOnlyDictionary<string, int> Counts)
{
    /// <summary>Expanded into uploads/, not yet final.</summary>
    public const string Pending = "pending";
}

/// <summary>
/// Where results live: Azure Table Storage in the cloud and on Azurite, memory for one process. Keys are
/// deterministic ids. Image and batch rows, whose order of writes matters (a final row must never be overwritten by
/// a late writer), are written conditionally: a row carries the version it was read at (<see cref="ImageRow.ETag"/>),
/// and the write succeeds only if the stored row is still that version (or, for a new row, if there is none). The
/// loser of a race reads again and decides anew.
/// </summary>
public interface IResultStore
{
    /// <summary>
    /// Writes the row if the stored row is still the version <paramref name="image"/> was read at (its
    /// <see cref="ImageRow.ETag"/>), or, when that is null, if no row exists. False when another writer came first.
    /// </summary>
    Task<bool> TryWriteImageAsync(ImageRow image, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="TryWriteImageAsync"/>, giving the stored row's new version (its ETag), so that the next writer of
    /// this row (classification, after segmentation) can write If-Match it without reading the row first; null when
    /// another writer came first.
    /// </summary>
    Task<string?> WriteImageAsync(ImageRow image, CancellationToken cancellationToken);

    /// <summary>The row, with its <see cref="ImageRow.ETag"/>, or null.</summary>
    Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken);

    /// <summary>Every image row (the review list). It reads the whole table: a list for people, not for the pipeline.</summary>
    Task<IReadOnlyList<ImageRow>> ListImagesAsync(CancellationToken cancellationToken);

    /// <summary>Every batch row (the review list).</summary>
    Task<IReadOnlyList<BatchRow>> ListBatchesAsync(CancellationToken cancellationToken);

    /// <summary>Images with this status last updated before <paramref name="before"/> (the sweeper's question).</summary>
    Task<IReadOnlyList<ImageRow>> FindImagesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken);

    /// <summary>Writes an image's cells (in transactions of at most 100 where the store has them).</summary>
    Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken);

    /// <summary>The cells found in the upload version <paramref name="blobETag"/> of the image (its row's <see cref="ImageRow.BlobETag"/>), by index.</summary>
    Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken);

    /// <summary>Deletes the image's cells found in the upload version <paramref name="blobETag"/> (a version that was replaced).</summary>
    Task DeleteCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken);

    /// <summary>As <see cref="TryWriteImageAsync"/>, for a batch row.</summary>
    Task<bool> TryWriteBatchAsync(BatchRow batch, CancellationToken cancellationToken);

    /// <summary>The row, with its <see cref="BatchRow.ETag"/>, or null.</summary>
    Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>Batches with this status last updated before <paramref name="before"/> (the sweeper's question).</summary>
    Task<IReadOnlyList<BatchRow>> FindBatchesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken);

    /// <summary>Final batches still <see cref="BatchRow.Announcing"/>, last updated before <paramref name="before"/> (stores with a query for it override this).</summary>
    async Task<IReadOnlyList<BatchRow>> FindAnnouncingBatchesAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        (await FindBatchesAsync(BatchRow.Completed, before, cancellationToken)).Concat(await FindBatchesAsync(BatchRow.Failed, before, cancellationToken))
        .Where(b => b.Announcing).ToList();

    /// <summary>Creates or replaces a member row (archive expansion: the batch's members are the entries it wrote).</summary>
    Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken);

    /// <summary>Replaces a member row that exists; false when there is none (the image is no longer one of the batch's).</summary>
    Task<bool> UpdateBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken);

    Task<IReadOnlyList<BatchMemberRow>> GetBatchMembersAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>
    /// Removes the member rows of the batch but those of <paramref name="except"/> (image ids): every one when a new
    /// version of its archive is expanded afresh, the ones a resumed expansion did not find in its version.
    /// </summary>
    Task DeleteBatchMembersAsync(string batchId, IReadOnlySet<string>? except, CancellationToken cancellationToken);

    /// <summary>One image of a batch, or null (stores with point reads override this).</summary>
    async Task<BatchMemberRow?> GetBatchMemberAsync(string batchId, string imageId, CancellationToken cancellationToken) =>
        (await GetBatchMembersAsync(batchId, cancellationToken)).FirstOrDefault(m => m.ImageId == imageId);

    /// <summary>Whether any image of the batch is still pending (asked after every image: it must not read the whole batch).</summary>
    Task<bool> HasPendingMembersAsync(string batchId, CancellationToken cancellationToken);

    /// <summary>Whether this exact version (name and ETag) of a blob was handled, or given up (the local host's scan receipts).</summary>
    Task<bool> HasReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken);

    /// <summary>
    /// Every blob version of the container recorded as handled (or given up): what a host that starts knows is done,
    /// read in one query rather than a read per blob.
    /// </summary>
    Task<IReadOnlyList<BlobVersion>> ListReceiptsAsync(string container, CancellationToken cancellationToken);

    /// <summary>
    /// Records that these blob versions of the container were handled (or given up), together (in transactions of at
    /// most 100 where the store has them). Written after the work, so a host killed mid-work does it again on
    /// restart (the stages are idempotent) rather than never.
    /// </summary>
    Task AddReceiptsAsync(string container, IReadOnlyCollection<BlobVersion> blobs, CancellationToken cancellationToken);

    /// <summary>Records a failed attempt at a blob version and returns how many attempts at that version have failed.</summary>
    Task<int> AddFailedAttemptAsync(string container, string blobName, string etag, string error, CancellationToken cancellationToken);
}

/// <summary>One version of a blob: its name in its container and its ETag (bare, as <see cref="IBlobStore"/> gives it).</summary>
public sealed record BlobVersion(string Name, string ETag);
