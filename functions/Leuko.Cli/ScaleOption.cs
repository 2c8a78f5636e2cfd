using System.CommandLine;
using Leuko.Core.Scale;

namespace Leuko.Cli;

/// <summary>The one <c>--microns-per-pixel</c> option of the commands that segment (segment, analyze, evaluate).</summary>
internal static class ScaleOption
{
    public static Option<double?> Create()
    {
        var option = new Option<double?>("--microns-per-pixel")
        {
            Description = "The images' physical scale in µm per pixel, where known from the microscope's calibration " +
                          "(default: estimated from each image's red cells; where it has too few, the image is taken for a single-cell export " +
                          $"{ScaleOptions.Default.DefaultFieldMicrons} µm across).",
        };
        option.Validators.Add(r =>
        {
            if (r.TryGetValue<double?>(out var given) && given is { } v && (!double.IsFinite(v) || v < ImageScale.MinMicronsPerPixel || v > ImageScale.MaxMicronsPerPixel))
            {
                r.AddError($"--microns-per-pixel must be between {ImageScale.MinMicronsPerPixel} and {ImageScale.MaxMicronsPerPixel}");
            }
        });
        return option;
    }

    /// <summary>The given scale, or null to estimate each image's own.</summary>
    public static ImageScale? Of(double? micronsPerPixel) => micronsPerPixel is { } v ? ImageScale.Given(v) : null;
}
