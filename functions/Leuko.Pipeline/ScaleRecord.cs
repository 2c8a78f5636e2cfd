using Leuko.Core.Scale;

namespace Leuko.Pipeline;

/// <summary>The physical scale an image was analysed at, as every host reports it (results.json, CSV, the images table, the API).</summary>
/// <param name="MicronsPerPixel">Micrometres per pixel, to 4 decimals.</param>
/// <param name="Source"><c>estimated</c> (from the image's red cells), <c>given</c> (by the user) or <c>default</c> (too few red cells).</param>
/// <param name="RedCells">Isolated round red cells measured in the image.</param>
public sealed record ScaleRecord(double MicronsPerPixel, string Source, int RedCells)
{
    public static ScaleRecord Of(ImageScale scale) =>
        new(Math.Round(scale.MicronsPerPixel, 4), scale.SourceName, scale.RedCellsMeasured);
}
