using Leuko.Core.Imaging;
using OpenCvSharp;

namespace Leuko.Core.Scale;

/// <summary>
/// The masks the scale estimate measures: red cells (filled), what cuts a red-cell outline (nuclei, non-smear fill),
/// and CIELAB b* of the lightly smoothed image. Red cells absorb light, so they are the darker of the two populations
/// left once nuclei and non-smear pixels are set aside: Otsu on CIELAB L*, which separates them on pink, lilac and
/// blue-grey stains alike. Owns its images.
/// </summary>
internal sealed class RedCellMasks : IDisposable
{
    /// <summary>How much bluer than the field median (CIELAB b*) counts as nucleus, as in the segmenter: a leukocyte is no red cell.</summary>
    public const double NucleusBlueShift = 20;

    /// <summary>
    /// Pixels darker than this in every channel are not smear: the black fill of a rotated or shifted frame (the Kaggle
    /// frames are such augmentations) or a vignette. Stained nuclei stay above it (their brightest channel is over 90 on BCCD, PBC and DeepBioNet).
    /// </summary>
    private const byte NotSmearBelow = 16;

    private RedCellMasks(Mat red, Mat cut, Mat blueYellow) => (Red, Cut, BlueYellow) = (red, cut, blueYellow);

    public Mat Red { get; }

    public Mat Cut { get; }

    public Mat BlueYellow { get; }

    public static RedCellMasks Of(Mat bgr)
    {
        using var smooth = new Mat();
        Cv2.GaussianBlur(bgr, smooth, new Size(0, 0), 1.0);
        using var lab = new Mat();
        Cv2.CvtColor(smooth, lab, ColorConversionCodes.BGR2Lab);
        using var lightness = lab.ExtractChannel(0);
        var blueYellow = lab.ExtractChannel(2);

        using var brightest = new Mat();
        var channels = Cv2.Split(smooth);
        try
        {
            Cv2.Max(channels[0], channels[1], brightest);
            Cv2.Max(brightest, channels[2], brightest);
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }

        // The smear, less a 3-px band along any non-smear fill: the fill's anti-aliased edge is a dark line that Otsu
        // would otherwise take for the red cells' population.
        using var smear = new Mat();
        Cv2.Threshold(brightest, smear, NotSmearBelow, 255, ThresholdTypes.Binary);
        using (var kernel = Cv2.GetStructuringElement(MorphShapes.Rect, new Size(3, 3)))
        {
            Cv2.Erode(smear, smear, kernel, iterations: 3, borderType: BorderTypes.Constant, borderValue: Scalar.All(255));
        }
        using var nucleus = new Mat();
        Cv2.Threshold(blueYellow, nucleus, Histograms.Median(blueYellow, smear) - NucleusBlueShift, 255, ThresholdTypes.BinaryInv);
        Cv2.BitwiseAnd(nucleus, smear, nucleus);

        using var candidates = new Mat();
        Cv2.Subtract(smear, nucleus, candidates); // binary masks: smear AND NOT nucleus
        var red = new Mat();
        Cv2.Threshold(lightness, red, Histograms.Otsu(lightness, candidates), 255, ThresholdTypes.BinaryInv);
        Cv2.BitwiseAnd(red, candidates, red);
        FillHoles(red);
        using (var kernel = Cv2.GetStructuringElement(MorphShapes.Ellipse, new Size(3, 3)))
        {
            Cv2.MorphologyEx(red, red, MorphTypes.Open, kernel);
        }

        // Outlines that touch a nucleus or the non-smear fill are cut by them: grown by two pixels, what meets them is not measured.
        var cut = new Mat();
        Cv2.BitwiseNot(smear, cut);
        Cv2.BitwiseOr(cut, nucleus, cut);
        using (var kernel = Cv2.GetStructuringElement(MorphShapes.Rect, new Size(3, 3)))
        {
            Cv2.Dilate(cut, cut, kernel, iterations: 2);
        }

        return new RedCellMasks(red, cut, blueYellow);
    }

    public void Dispose()
    {
        Red.Dispose();
        Cut.Dispose();
        BlueYellow.Dispose();
    }

    /// <summary>Fills each red cell's pale centre (central pallor) where its ring closes around it.</summary>
    private static void FillHoles(Mat mask)
    {
        Cv2.FindContours(mask, out Point[][] contours, out HierarchyIndex[] hierarchy, RetrievalModes.CComp, ContourApproximationModes.ApproxSimple);
        for (int i = 0; i < contours.Length; i++)
        {
            if (hierarchy[i].Parent >= 0)
            {
                Cv2.DrawContours(mask, [contours[i]], 0, Scalar.All(255), thickness: -1); // one contour: OpenCvSharp copies every contour given on each call
            }
        }
    }
}
