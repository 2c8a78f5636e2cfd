using OpenCvSharp;

namespace Leuko.Core.Tests;

/// <summary>
/// Draws smear-like fields with the colours of a Wright-stained BCCD field (measured there: plasma L*~195 near-neutral,
/// red cells pink a*~137, nuclei blue-purple b*~80), at any scale of the 640x480 reference field.
/// </summary>
internal sealed class SyntheticSmear : IDisposable
{
    public static readonly Scalar Plasma = new(200, 196, 196);     // BGR
    public static readonly Scalar RedCell = new(178, 163, 204);
    public static readonly Scalar Cytoplasm = new(215, 196, 206);
    public static readonly Scalar Nucleus = new(190, 90, 122);

    public SyntheticSmear(double scale)
    {
        Scale = scale;
        Image = new Mat(new Size((int)Math.Round(640 * scale), (int)Math.Round(480 * scale)), MatType.CV_8UC3, Plasma);
    }

    public double Scale { get; }

    public Mat Image { get; }

    public Point At(int x, int y) => new((int)Math.Round(x * Scale), (int)Math.Round(y * Scale));

    private int Len(double v) => (int)Math.Round(v * Scale);

    /// <summary>A red cell of about 7.5 µm (100 reference px) with its paler centre.</summary>
    public SyntheticSmear RedCellAt(int x, int y)
    {
        Image.Circle(At(x, y), Len(48), RedCell, -1, LineTypes.AntiAlias);
        Image.Circle(At(x, y), Len(18), new Scalar(190, 180, 205), -1, LineTypes.AntiAlias);
        return this;
    }

    /// <summary>A lymphocyte-like cell: a round nucleus in a thin rim of cytoplasm.</summary>
    public SyntheticSmear RoundCellAt(int x, int y, int nucleusRadius = 45)
    {
        Image.Circle(At(x, y), Len(nucleusRadius + 15), Cytoplasm, -1, LineTypes.AntiAlias);
        Image.Circle(At(x, y), Len(nucleusRadius), Nucleus, -1, LineTypes.AntiAlias);
        return this;
    }

    /// <summary>A neutrophil-like cell: three separate nuclear lobes, gaps of 8 reference px, in pale cytoplasm.</summary>
    public SyntheticSmear LobedCellAt(int x, int y)
    {
        Image.Circle(At(x, y), Len(80), Cytoplasm, -1, LineTypes.AntiAlias);
        foreach (int dx in new[] { -48, 0, 48 })
        {
            Image.Circle(At(x + dx, y), Len(20), Nucleus, -1, LineTypes.AntiAlias);
        }

        return this;
    }

    /// <summary>
    /// A cell whose nucleus lies in two pieces too far apart for the lobe closing (a gap of 21 reference px): a
    /// horseshoe open to the right, and a round piece inside its bend (each larger than a platelet).
    /// </summary>
    public SyntheticSmear BrokenNucleusCellAt(int x, int y)
    {
        Image.Circle(At(x, y), Len(95), Cytoplasm, -1, LineTypes.AntiAlias);
        Image.Ellipse(At(x, y), new Size(Len(65), Len(65)), 0, 45, 315, Nucleus, Len(20), LineTypes.AntiAlias);
        Image.Circle(At(x, y), Len(34), Nucleus, -1, LineTypes.AntiAlias);
        return this;
    }

    /// <summary>A platelet: a purple body of 2.5 µm (about 32 reference px across).</summary>
    public SyntheticSmear PlateletAt(int x, int y)
    {
        Image.Circle(At(x, y), Len(16), Nucleus, -1, LineTypes.AntiAlias);
        return this;
    }

    public void Dispose() => Image.Dispose();
}
