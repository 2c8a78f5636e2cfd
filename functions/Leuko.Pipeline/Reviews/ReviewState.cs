using System.Text.Json.Serialization;

namespace Leuko.Pipeline.Reviews;

/// <summary>
/// Where the review of one image or batch stands (table <c>reviews</c>, RowKey <see cref="Image"/> or <see cref="Batch"/>):
/// the upload version reviewed, how many cells were reclassified, the reviewed counts per class (every class of the
/// model and <see cref="ReviewClasses.NotACell"/>), and the sign-off. Every change writes it conditionally on the ETag it
/// was read at, so of two reviewers racing one wins and the other reads again: a cell reclassified after a sign-off is
/// refused, never lost.
/// </summary>
/// <param name="BlobETag">The upload version whose cells were reviewed (an image; null for a batch).</param>
/// <param name="Revision">Changes so far: each reclassification and the sign-off add one.</param>
/// <param name="Reclassified">Cells whose reviewed class differs from the automatic one.</param>
/// <param name="ReviewedCounts">Cells per reviewed class (an image's); empty for a batch, whose members' states hold theirs.</param>
public sealed record ReviewState(
    string SubjectId,
    string Kind,
    string? BatchId,
    string? BlobETag,
    int Revision,
    int Reclassified,
    IReadOnlyDictionary<string, int> ReviewedCounts,
    string? SignedOffBy,
    DateTimeOffset? SignedOffAt,
    DateTimeOffset Updated)
{
    public const string Image = "image";
    public const string Batch = "batch";

    public bool IsSignedOff => SignedOffBy is not null;

    /// <summary>The stored row's version when it was read; null for a state not yet stored.</summary>
    [JsonIgnore]
    public string? ETag { get; init; }
}
