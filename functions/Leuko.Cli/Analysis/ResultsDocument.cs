using System.Text.Json.Serialization;
using Leuko.Core.Classification;
using Leuko.Pipeline;

namespace Leuko.Cli.Analysis;

/// <summary>
/// The shape of <c>results.json</c> of <c>leuko analyze</c>, which <see cref="Reports.JsonReport"/> writes piece by piece as images finish. Version 2 (five-part differential with other cells apart, each image's scale, review reasons); the layout is documented in README.md ("results.json") and
/// <see cref="SchemaVersion"/> is raised on any incompatible change.
/// </summary>
internal sealed record ResultsDocument(
    int SchemaVersion,
    ModelRecord Model,
    IReadOnlyList<ImageRecord> Images,
    IReadOnlyList<SkippedInput> Skipped,
    RunSummary Summary)
{
    public const int CurrentVersion = 2;
}

/// <param name="Classes">Every class the model gives.</param>
/// <param name="DifferentialClasses">The classes counted in the differential.</param>
/// <param name="OtherClasses">The cells counted apart from it (always flagged for review).</param>
internal sealed record ModelRecord(
    string Name, string Version, IReadOnlyList<string> Classes, IReadOnlyList<string> DifferentialClasses, IReadOnlyList<string> OtherClasses,
    double ReviewThreshold);

/// <summary>One input image: <see cref="ImageResult"/> with the path of its annotated copy (relative to the output folder).</summary>
internal sealed record ImageRecord(
    string Source,
    string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Error,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Width,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Height,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Annotated,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ScaleRecord? Scale,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Orientation,
    IReadOnlyList<CellResult> Cells,
    IReadOnlyDictionary<string, ClassCount> Differential,
    IReadOnlyDictionary<string, int> OtherCells)
{
    public static ImageRecord From(ImageResult r, string? annotated) =>
        new(r.Source, r.Status, r.Error, r.Width, r.Height, annotated, r.Scale, r.Orientation, r.Cells, r.Differential, r.OtherCells);
}

/// <summary>The run: counts by status, the differential over every cell, and speed.</summary>
internal sealed record RunSummary(
    int Images,
    int Completed,
    int NoLeukocytes,
    int Failed,
    int Skipped,
    int NotAnalysed,
    int Cells,
    int NeedsReview,
    int UnfamiliarStain,
    int LowResolution,
    IReadOnlyDictionary<string, ClassCount> Differential,
    IReadOnlyDictionary<string, int> OtherCells,
    double Seconds,
    double ImagesPerSecond,
    int Parallel,
    StageSeconds StageSeconds);

/// <summary>
/// The run's counts, added to as each image is written: the summary of a run of any size without holding its images.
/// </summary>
internal sealed class RunTotals(CellClasses classes)
{
    private readonly Dictionary<string, int> _counts = classes.All.ToDictionary(c => c, _ => 0, StringComparer.Ordinal);
    private int _images, _completed, _noLeukocytes, _failed, _cells, _needsReview, _unfamiliarStain, _lowResolution;

    public void Add(ImageRecord image)
    {
        _images++;
        _completed += image.Status == ImageStatus.Completed ? 1 : 0;
        _noLeukocytes += image.Status == ImageStatus.NoLeukocytes ? 1 : 0;
        _failed += image.Status == ImageStatus.Failed ? 1 : 0;
        foreach (var cell in image.Cells)
        {
            _cells++;
            _needsReview += cell.NeedsReview ? 1 : 0;
            _unfamiliarStain += cell.ReviewReason == ReviewReasons.UnfamiliarStain ? 1 : 0;
            _lowResolution += cell.ReviewReason == ReviewReasons.LowResolution ? 1 : 0;
            _counts[cell.Class]++;
        }
    }

    public RunSummary Summary(int skipped, TimeSpan elapsed, int parallel, StageSeconds stages, int notAnalysed = 0)
    {
        var (differential, others) = classes.FromCounts(_counts);
        return new RunSummary(
            _images, _completed, _noLeukocytes, _failed, skipped, notAnalysed, _cells, _needsReview, _unfamiliarStain, _lowResolution, differential, others,
            Math.Round(elapsed.TotalSeconds, 3),
            Math.Round(_images / Math.Max(elapsed.TotalSeconds, 1e-6), 2),
            parallel,
            stages);
    }
}
