namespace Leuko.Pipeline.Reviews;

/// <summary>
/// A cell's reviewed class, as it stands (table <c>reviews</c>, PartitionKey = image id, one row per cell of the upload
/// version reviewed): the class the model gave, the class the reviewer gave, who (the API client) and when.
/// </summary>
public sealed record CellReview(string ImageId, string BlobETag, int Index, string OriginalClass, string ReviewedClass, string Reviewer, DateTimeOffset At);
