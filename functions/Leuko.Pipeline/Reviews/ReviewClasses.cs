namespace Leuko.Pipeline.Reviews;

/// <summary>
/// The classes a reviewer can give a cell: the model's (the five of the differential, then the other kinds of its
/// card), and <see cref="NotACell"/> for what segmentation took for a leukocyte and is not one (counted in neither).
/// </summary>
public static class ReviewClasses
{
    public const string NotACell = "NOT_A_CELL";

    public static IReadOnlyList<string> Targets(CellClasses classes) => [.. classes.Differential, .. classes.Others, NotACell];

    /// <summary>The differential and the other cells of per-class counts, cells that are not cells left out of both.</summary>
    public static (IReadOnlyDictionary<string, ClassCount> Differential, IReadOnlyDictionary<string, int> Others) Count(
        CellClasses classes, IReadOnlyDictionary<string, int> counts) =>
        classes.FromCounts(counts.Where(c => c.Key != NotACell).ToDictionary(c => c.Key, c => c.Value));
}
