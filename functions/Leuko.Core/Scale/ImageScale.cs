namespace Leuko.Core.Scale;

/// <summary>How an image's physical scale was obtained.</summary>
public enum ScaleSource
{
    /// <summary>Measured from the image's own red cells (<see cref="RedCellScaleEstimator"/>).</summary>
    Estimated,

    /// <summary>Said by the user (a command-line option, a setting, blob metadata).</summary>
    Given,

    /// <summary>Too few red cells to measure and none given: <see cref="ScaleOptions.DefaultMicronsPerPixel"/> (a single-cell image's frame).</summary>
    Default,
}

/// <summary>The physical size of one pixel of an image, and where that figure came from.</summary>
/// <param name="MicronsPerPixel">Micrometres per pixel.</param>
/// <param name="Source">How it was obtained.</param>
/// <param name="RedCellsMeasured">Isolated round red cells measured (0 unless <see cref="ScaleSource.Estimated"/> or a failed estimate).</param>
public sealed record ImageScale(double MicronsPerPixel, ScaleSource Source, int RedCellsMeasured = 0)
{
    /// <summary>Smallest and largest scale accepted from a user or an estimate: from a 2,000-px field at 100x (~0.03) to a 320x240 frame at 10x (~1.5).</summary>
    public const double MinMicronsPerPixel = 0.01, MaxMicronsPerPixel = 5;

    public double PixelsPerMicron => 1 / MicronsPerPixel;

    /// <summary>The scale a user gave, validated.</summary>
    public static ImageScale Given(double micronsPerPixel)
    {
        if (!double.IsFinite(micronsPerPixel) || micronsPerPixel < MinMicronsPerPixel || micronsPerPixel > MaxMicronsPerPixel)
        {
            throw new ArgumentOutOfRangeException(
                nameof(micronsPerPixel), micronsPerPixel,
                $"microns per pixel must be between {MinMicronsPerPixel} and {MaxMicronsPerPixel}");
        }

        return new ImageScale(micronsPerPixel, ScaleSource.Given);
    }

    /// <summary>The lower-case word used for <see cref="Source"/> in results, tables and the API.</summary>
    public string SourceName => Source.ToString().ToLowerInvariant();
}
