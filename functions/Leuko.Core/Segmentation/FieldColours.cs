using Leuko.Core.Imaging;
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
        using var white = new Mat();
        Cv2.BitwiseOr(masks.Cut, masks.Red, white);
        Cv2.BitwiseNot(white, white);
        var channels = Cv2.Split(bgr);
        try
        {
            return new FieldColours(
                [.. channels.Select(c => Histograms.Median(c, white))], Cv2.CountNonZero(white),
                [.. channels.Select(c => Histograms.Median(c, masks.Red))], Cv2.CountNonZero(masks.Red));
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
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
