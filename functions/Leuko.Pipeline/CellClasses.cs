using Leuko.Core.Classification;

namespace Leuko.Pipeline;

/// <summary>
/// The model's classes as a laboratory reports them: every class, the differential (the five-part differential), and
/// the cells counted apart from it. The one place that turns a model card's classes into differentials.
/// </summary>
public sealed record CellClasses(IReadOnlyList<string> All, IReadOnlyList<string> Differential, IReadOnlyList<string> Others)
{
    public static CellClasses Of(ModelCard card) => new(card.Classes, card.Differential, card.Others);

    /// <summary>The differential of <paramref name="labels"/>: cells of the other kinds left out.</summary>
    public IReadOnlyDictionary<string, ClassCount> Count(IEnumerable<string> labels) => Leuko.Pipeline.Differential.Count(labels, Differential, Others);

    /// <summary>The other cells among <paramref name="labels"/>, per kind.</summary>
    public IReadOnlyDictionary<string, int> CountOthers(IEnumerable<string> labels) => Leuko.Pipeline.Differential.OtherCells(labels, Others);

    /// <summary>Both, from per-class counts (a row's or a batch's <c>Counts</c>).</summary>
    public (IReadOnlyDictionary<string, ClassCount> Differential, IReadOnlyDictionary<string, int> Others) FromCounts(IReadOnlyDictionary<string, int> counts)
    {
        var labels = counts.SelectMany(c => Enumerable.Repeat(c.Key, c.Value)).ToList();
        return (Count(labels), CountOthers(labels));
    }
}
