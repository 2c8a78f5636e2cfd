namespace Leuko.Pipeline;

/// <summary>What happened to one image.</summary>
public static class ImageStatus
{
    /// <summary>Analysed; at least one leukocyte found and classified.</summary>
    public const string Completed = "completed";

    /// <summary>Analysed; no leukocyte in the image.</summary>
    public const string NoLeukocytes = "no-leukocytes";

    /// <summary>Not analysed: the reason is in <see cref="ImageResult.Error"/>.</summary>
    public const string Failed = "failed";
}

/// <summary>The analysis of one image: the record every host (CLI, Functions) reports.</summary>
/// <param name="Source">Where the image came from: a path, or <c>archive.zip!entry</c>.</param>
/// <param name="Status">One of <see cref="ImageStatus"/>.</param>
/// <param name="Error">Why the image failed; null otherwise.</param>
/// <param name="Cells">The leukocytes, largest first (empty unless completed).</param>
/// <param name="Differential">Count and percentage per class of the differential over <paramref name="Cells"/> (every class of it listed; other cells left out).</param>
/// <param name="OtherCells">Cells reported apart from the differential, per kind (immature granulocytes, erythroblasts, platelets).</param>
/// <param name="Scale">The physical scale the image was analysed at and how it was obtained; null when it was not decoded.</param>
/// <param name="Orientation">The EXIF orientation (1-8) applied when the image was decoded, 1 for none; null when it was not decoded.
/// Width, height, boxes and outlines are of the picture turned so, as viewers show it.</param>
public sealed record ImageResult(
    string Source,
    string Status,
    string? Error,
    int? Width,
    int? Height,
    IReadOnlyList<CellResult> Cells,
    IReadOnlyDictionary<string, ClassCount> Differential,
    IReadOnlyDictionary<string, int> OtherCells,
    ScaleRecord? Scale,
    int? Orientation = null)
{
    public static ImageResult Failure(string source, string error, CellClasses classes) =>
        new(source, ImageStatus.Failed, error, null, null, [], classes.Count([]), classes.CountOthers([]), null);
}

/// <summary>One classified leukocyte.</summary>
/// <param name="Index">Position in the image's list (0 = largest cell).</param>
/// <param name="Box">Bounding box of the cell region in image pixels.</param>
/// <param name="Class">The model's class.</param>
/// <param name="Confidence">Calibrated probability of <paramref name="Class"/>.</param>
/// <param name="Probabilities">Calibrated probability of every class, in the model's class order.</param>
/// <param name="NeedsReview">True when the confidence is below the model card's review threshold: a person should look.</param>
/// <param name="Area">Pixels in the cell region.</param>
/// <param name="ReviewReason">Why a person should look (<c>other-cell</c>, <c>possible-other-cell</c>, <c>unfamiliar-stain</c>, <c>low-resolution</c>, <c>low-confidence</c>, <c>atypical</c>); null when accepted.</param>
public sealed record CellResult(
    int Index,
    Box Box,
    string Class,
    double Confidence,
    IReadOnlyDictionary<string, double> Probabilities,
    bool NeedsReview,
    int Area,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.Never)] string? ReviewReason = null);

/// <summary>An axis-aligned box in image pixels.</summary>
public sealed record Box(int X, int Y, int Width, int Height);

/// <summary>
/// How many cells of one class, their share of all cells counted in percent (0 when there are none), and the exact
/// 95% confidence interval of that share (<see cref="BinomialInterval"/>): with 100 cells a 10% class lies anywhere
/// from 4.9% to 17.6%.
/// </summary>
public sealed record ClassCount(int Count, double Percent, double PercentLow, double PercentHigh)
{
    /// <summary>Fewer cells than a manual differential counts (100): the interval is wide, and reports say so.</summary>
    public const int ReferenceCount = 100;

    /// <summary><paramref name="count"/> cells of <paramref name="total"/>, percentages rounded to 0.1.</summary>
    public static ClassCount Of(int count, int total)
    {
        var (low, high) = BinomialInterval.Percent(count, total);
        return new ClassCount(count, total == 0 ? 0 : Math.Round(100.0 * count / total, 1), Math.Round(low, 1), Math.Round(high, 1));
    }
}
