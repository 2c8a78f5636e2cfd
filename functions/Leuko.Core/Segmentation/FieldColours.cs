using Leuko.Core.Scale;
using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>
/// The colours of a field's two references, the signature of a microscope's stain, lamp and camera whatever cells the
/// field holds: its glass and plasma (the lamp, the camera's white balance) and its red cells (eosin and haemoglobin:
/// how strongly and in what hue the smear took the stain). Each is the per-channel median of the raw pixels under the
/// scale estimate's masks (<see cref="RedCellMasks"/>: red cells are the darker of the two populations left once nuclei
/// and the non-smear fill are set aside, glass and plasma the brighter). models/training/stain.py reads them from the
/// fields.tsv that <c>leuko segment --dataset</c> writes.
/// </summary>
public sealed record FieldColours(double[] WhiteBgr, int WhitePixels, double[] RedBgr, int RedPixels)
{
    /// <summary>The card's name for <see cref="Fingerprint"/>'s figures (<see cref="Classification.StainDomain.Features"/>).</summary>
    public const string Features = "field-lab-white-red";

    public const int Length = 6;

    /// <summary>Fewer background or red-cell pixels than this and a field's colours are not measured (no fingerprint).</summary>
    public const int MinPixels = 200;

    /// <summary>The colours of <paramref name="bgr"/> (8-bit BGR).</summary>
    public static FieldColours Of(Mat bgr)
    {
        ArgumentNullException.ThrowIfNull(bgr);
        using var masks = RedCellMasks.Of(bgr);
        return Of(bgr, masks);
    }

    internal static FieldColours Of(Mat bgr, RedCellMasks masks)
    {
        // One pass over the pixels into six 256-bin histograms (measured: OpenCV's split and masked histograms cost
        // 3.5 ms of a 640x480 field, this well under one); medians as Histograms.Median takes them.
        using var image = bgr.IsContinuous() ? null : bgr.Clone();
        var pixels = (image ?? bgr).AsSpan<byte>();
        var red = masks.Red.AsSpan<byte>();
        var cut = masks.Cut.AsSpan<byte>();
        var white = new int[3 * 256];
        var reds = new int[3 * 256];
        int whiteCount = 0, redCount = 0;
        for (int i = 0, p = 0; i < red.Length; i++, p += 3)
        {
            var hist = red[i] != 0 ? reds : cut[i] == 0 ? white : null;
            if (hist is null)
            {
                continue;
            }

            hist[pixels[p]]++;
            hist[256 + pixels[p + 1]]++;
            hist[512 + pixels[p + 2]]++;
            if (red[i] != 0)
            {
                redCount++;
            }
            else
            {
                whiteCount++;
            }
        }

        return new FieldColours(Medians(white, whiteCount), whiteCount, Medians(reds, redCount), redCount);
    }

    /// <summary>Per channel the least value with at least half of the pixels at or below it (255 for none), as <see cref="Histograms.Median"/>.</summary>
    private static double[] Medians(int[] hist, int count)
    {
        var medians = new double[3];
        for (int c = 0; c < 3; c++)
        {
            double half = count / 2.0, seen = 0;
            int v = 0;
            for (; v < 255; v++)
            {
                seen += hist[(c * 256) + v];
                if (seen >= half)
                {
                    break;
                }
            }

            medians[c] = v;
        }

        return medians;
    }

    /// <summary>
    /// Six CIELAB figures (OpenCV's 8-bit conversion, as stain.py's): L*, a*, b* of the background, then of the red
    /// cells. Null where either has fewer than <see cref="MinPixels"/> pixels.
    /// </summary>
    public double[]? Fingerprint()
    {
        if (WhitePixels < MinPixels || RedPixels < MinPixels || WhiteBgr is not { Length: 3 } || RedBgr is not { Length: 3 })
        {
            return null;
        }

        using var bgr = new Mat(1, 2, MatType.CV_8UC3);
        bgr.Set(0, 0, new Vec3b(Byte(WhiteBgr[0]), Byte(WhiteBgr[1]), Byte(WhiteBgr[2])));
        bgr.Set(0, 1, new Vec3b(Byte(RedBgr[0]), Byte(RedBgr[1]), Byte(RedBgr[2])));
        using var lab = new Mat();
        Cv2.CvtColor(bgr, lab, ColorConversionCodes.BGR2Lab);
        var w = lab.At<Vec3b>(0, 0);
        var r = lab.At<Vec3b>(0, 1);
        return [w.Item0, w.Item1, w.Item2, r.Item0, r.Item1, r.Item2];
    }

    private static byte Byte(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);
}
