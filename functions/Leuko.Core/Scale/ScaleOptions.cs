namespace Leuko.Core.Scale;

/// <summary>Parameters of the red-cell scale estimate.</summary>
public sealed record ScaleOptions
{
    public static ScaleOptions Default { get; } = new();

    /// <summary>
    /// Diameter of a normal erythrocyte on a dried, stained smear: 7.5-8 µm (haematology texts; the discocyte of a wet
    /// preparation is 7.5-8.7 µm and shrinks a little on drying). The lower end, because the thresholded disc loses its
    /// pale rim to the background.
    /// </summary>
    public double RedCellDiameterMicrons { get; init; } = 7.5;

    /// <summary>
    /// Fewer isolated round red cells than this and the estimate is not trusted (one or two round shapes may be anything);
    /// the image gets the default scale (<see cref="DefaultFieldMicrons"/>) or the scale the user gave.
    /// </summary>
    public int MinRedCells { get; init; } = 3;

    /// <summary>
    /// Where an image has too few red cells and no scale was given, it is taken for what such images mostly are: a
    /// single-cell image exported by an analyser, the cell in the middle of a frame this many µm across (the PBC
    /// analyser's 360-px frames at 0.10 µm/px, measured from their red cells). So a 120-px export gets 0.3 µm/px and a
    /// 400-px one 0.09: a fixed default would make the one cell of a small export too small to find and split the
    /// lobes of a large one.
    /// </summary>
    public double DefaultFieldMicrons { get; init; } = 36;

    /// <summary>The default scale of an image of <paramref name="width"/> x <paramref name="height"/> (see <see cref="DefaultFieldMicrons"/>).</summary>
    public double DefaultMicronsPerPixel(int width, int height) =>
        Math.Clamp(DefaultFieldMicrons / Math.Max(1, Math.Max(width, height)), ImageScale.MinMicronsPerPixel, ImageScale.MaxMicronsPerPixel);

    /// <summary>Roundness 4πA/P² a red cell must reach to be measured: overlapping pairs and rouleaux fall below it.</summary>
    public double MinCircularity { get; init; } = 0.75;

    /// <summary>Area over convex-hull area a red cell must reach: a cell whose outline is bitten by a neighbour is not measured.</summary>
    public double MinSolidity { get; init; } = 0.92;

    /// <summary>
    /// How far from the median diameter (as a fraction of it) a measured outline may be and still count as a red cell
    /// alike the others; at least <see cref="MinRedCells"/> and half of the outlines must be.
    /// </summary>
    public double SizeTolerance { get; init; } = 0.25;

    /// <summary>
    /// With this many isolated red cells alike, their diameter is the scale even where the outline estimate of a packed
    /// field disagrees (on the Olympus BX53 fields, 30-40 isolated cells a field, the outlines of touching cells read
    /// flatter arcs); with fewer, a disagreement means the few round shapes were debris (seen on BCCD).
    /// </summary>
    public int TrustedRedCells { get; init; } = 10;

    /// <summary>Smallest outline measured, in pixels across: below it a shape is stain debris at any magnification a smear is photographed at.</summary>
    public double MinDiameterPixels { get; init; } = 8;
}
