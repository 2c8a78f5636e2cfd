using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Reviews;

/// <summary>What there is to review (<c>GET /api/reviews</c>): every image and batch, with the cells that need review and the sign-off.</summary>
public sealed record ReviewList(IReadOnlyList<ReviewImageItem> Images, IReadOnlyList<ReviewBatchItem> Batches);

/// <summary>One image in the review list.</summary>
public sealed record ReviewImageItem(
    string Id, string Source, string? BatchId, string Status, int Cells, int NeedsReview, int Reclassified, string? SignedOffBy, DateTimeOffset? SignedOffAt,
    DateTimeOffset Updated);

/// <summary>One batch in the review list: its images' cells summed.</summary>
public sealed record ReviewBatchItem(
    string Id, string Archive, string Status, int Images, int Cells, int NeedsReview, int Reclassified, string? SignedOffBy, DateTimeOffset? SignedOffAt,
    DateTimeOffset Updated);

/// <summary>
/// An image's or batch's differential before and after review: the automatic one (the model's classes) and the
/// reviewed one (each cell's reviewed class), both with their 95% intervals; cells that are not cells are counted in
/// neither. <paramref name="Counted"/> and <paramref name="ReviewedCounted"/> are the cells each differential is of.
/// </summary>
public sealed record ReviewTotals(
    int Cells, int Reclassified, int NotCells, int Counted, int ReviewedCounted,
    IReadOnlyDictionary<string, ClassCount> Differential, IReadOnlyDictionary<string, int> OtherCells,
    IReadOnlyDictionary<string, ClassCount> ReviewedDifferential, IReadOnlyDictionary<string, int> ReviewedOtherCells,
    string? SignedOffBy, DateTimeOffset? SignedOffAt);

/// <summary>
/// One image or batch to review (<c>GET /api/images/{id}/review</c>, <c>GET /api/batches/{id}/review</c>): every cell
/// with its crop's URL, the images with their annotated image's URL, the classes a cell can be given, and the totals.
/// </summary>
public sealed record ReviewSheet(
    string Kind, string Id, string Source, string Status, IReadOnlyList<string> Classes, IReadOnlyList<string> DifferentialClasses,
    ReviewTotals Totals, IReadOnlyList<ReviewSheetImage> Images, IReadOnlyList<ReviewCellView> Cells);

/// <summary>An image of a review sheet.</summary>
public sealed record ReviewSheetImage(string Id, string Source, int? Width, int? Height, string Annotated, string? SignedOffBy);

/// <summary>A cell to review: the model's class and confidence, its reviewed class (the model's until a reviewer moves it), and who moved it when.</summary>
public sealed record ReviewCellView(
    string ImageId, int Index, string Class, string ReviewedClass, double Confidence, bool NeedsReview, string? ReviewReason, Box Box, string Crop,
    string? ReviewedBy, DateTimeOffset? ReviewedAt);

/// <summary>A reclassified cell, with its image's totals and, for a batch's image, the batch's.</summary>
public sealed record ReclassifyView(ReviewCellView Cell, ReviewTotals Image, ReviewTotals? Batch);

/// <summary>The body of a reclassification: the class to give the cell (<see cref="ReviewClasses.Targets"/>).</summary>
public sealed record ReclassifyRequest(string? Class);

/// <summary>What an image's or batch's sign-off announces (<c>image.reviewed</c>, <c>batch.reviewed</c>).</summary>
public sealed record ReviewSignedOff(string Kind, string Id, string Source, string? BatchId, ReviewTotals Totals);

/// <summary>Why a review request was refused: an HTTP status and what to tell the caller.</summary>
public sealed record ReviewProblem(int Status, string Title, string Detail)
{
    public static ReviewProblem NotFound(string what) => new(404, "not found", $"no {what}");

    public static ReviewProblem Conflict(string detail) => new(409, "conflict", detail);

    public static ReviewProblem Invalid(string detail) => new(400, "invalid request", detail);
}

/// <summary>A review step's answer: its value, or the problem that refused it.</summary>
public sealed record ReviewOutcome<T>(T? Value, ReviewProblem? Problem)
    where T : class
{
    public static implicit operator ReviewOutcome<T>(T value) => new(value, null);

    public static implicit operator ReviewOutcome<T>(ReviewProblem problem) => new(null, problem);
}
