namespace Leuko.Pipeline.Reviews;

/// <summary>
/// One step of a review's history, kept for good (table <c>reviews</c>, after the image's or batch's rows): a cell moved
/// (<see cref="Reclassify"/>: from which class to which) or a sign-off. The audit trail: nothing here is ever rewritten.
/// </summary>
public sealed record ReviewEntry(
    string SubjectId, string Action, int? Cell, string? OriginalClass, string? FromClass, string? ToClass, string Reviewer, DateTimeOffset At)
{
    public const string Reclassify = "reclassify";
    public const string SignOff = "sign-off";
}
