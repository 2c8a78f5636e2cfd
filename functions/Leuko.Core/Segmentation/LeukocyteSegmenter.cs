using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>
/// Finds leukocytes in a stained blood-smear photograph by the method of Anand et al. (BMC Medical Imaging 2024):
/// background subtraction, an erythrocyte mask and a leukocyte mask, noise removal, and contours.
/// Lengths are physical: each image's scale comes from its own red cells (<see cref="RedCellScaleEstimator"/>) unless
/// the caller gives it. Pure: an 8-bit BGR image in, a <see cref="SegmentationResult"/> out. Thread-safe.
/// </summary>
public sealed class LeukocyteSegmenter(SegmentationOptions? options = null)
{
    /// <summary>
    /// Red cells more than this (CIELAB b*) bluer than the field median are taken for blue-grey red cells, and the nucleus
    /// threshold moves below them; pink red cells sit within a few units of the median (BCCD, PBC: measured) and leave
    /// the field median as the reference, where it was designed.
    /// </summary>
    private const double BlueRedCells = 5;

    public SegmentationOptions Options { get; } = options ?? SegmentationOptions.Default;

    /// <summary>
    /// Pays the first call's costs once, on a small synthetic field (red cells and one nucleus on glass), so that a host
    /// can pay them while it does something else, such as loading the model: OpenCV's native library and its lazily
    /// built colour-conversion tables (the first CIELAB conversion alone took 84-107 ms), and the compilation of the code
    /// this class runs. Changes nothing any image's result depends on.
    /// </summary>
    public static void WarmUp()
    {
        using var field = new Mat(120, 160, MatType.CV_8UC3, new Scalar(232, 226, 238));
        foreach (var (x, y) in new[] { (20, 20), (60, 22), (130, 30), (25, 95), (135, 100) })
        {
            Cv2.Circle(field, new Point(x, y), 12, new Scalar(178, 158, 214), thickness: -1);
        }

        Cv2.Circle(field, new Point(80, 70), 18, new Scalar(196, 170, 210), thickness: -1);
        Cv2.Circle(field, new Point(80, 70), 11, new Scalar(150, 70, 110), thickness: -1);
        using var result = new LeukocyteSegmenter().Segment(field);
    }

    /// <summary>
    /// Segments <paramref name="bgr"/> at the <paramref name="given"/> scale, or at the scale estimated from its red cells
    /// when null. <paramref name="field"/>: the image's <see cref="FieldColours"/> where the caller has them
    /// (<see cref="RedCellScaleEstimator.EstimateWithField"/>), else they are measured here, from the masks of the scale estimate.
    /// <paramref name="masks"/>: also make the background and erythrocyte masks of the method (<c>leuko segment --masks</c>);
    /// the cells do not depend on them, so without it they are not made (null), which saves a morphological opening and
    /// a contour pass over the whole image.
    /// </summary>
    public SegmentationResult Segment(Mat bgr, ImageScale? given = null, FieldColours? field = null, bool masks = false)
    {
        ArgumentNullException.ThrowIfNull(bgr);
        if (bgr.Empty() || bgr.Type() != MatType.CV_8UC3)
        {
            throw new ArgumentException("expected a non-empty 8-bit, 3-channel BGR image", nameof(bgr));
        }

        ImageScale imageScale;
        if (given is not null && field is not null)
        {
            imageScale = given;
        }
        else
        {
            using var redCells = RedCellMasks.Of(bgr); // the scale's and the field colours' masks, made once
            imageScale = given ?? new RedCellScaleEstimator(Options.Scale).Estimate(bgr, redCells);
            field ??= FieldColours.Of(bgr, redCells);
        }

        return imageScale.MicronsPerPixel < Options.FinestMicronsPerPixel
            ? SegmentResampled(bgr, imageScale, field, masks)
            : SegmentAt(bgr, imageScale, field, masks);
    }

    /// <summary>
    /// An image finer than <see cref="SegmentationOptions.FinestMicronsPerPixel"/>: the method on a copy resampled to that
    /// scale (pixel areas averaged), its cells' boxes, areas, centroids, contours and masks mapped back to the image's
    /// pixels; the crops stay at the working scale (the same µm window, more pixels than the classifier takes).
    /// </summary>
    private SegmentationResult SegmentResampled(Mat bgr, ImageScale imageScale, FieldColours field, bool masks)
    {
        double factor = imageScale.MicronsPerPixel / Options.FinestMicronsPerPixel;
        using var small = new Mat();
        Cv2.Resize(bgr, small, new Size(Math.Max(1, (int)Math.Round(bgr.Width * factor)), Math.Max(1, (int)Math.Round(bgr.Height * factor))),
            interpolation: InterpolationFlags.Area);
        double sx = (double)bgr.Width / small.Width, sy = (double)bgr.Height / small.Height;
        using var found = SegmentAt(small, imageScale with { MicronsPerPixel = imageScale.MicronsPerPixel * sx }, field, masks);

        Rect Box(Rect r)
        {
            int x = (int)Math.Floor(r.X * sx), y = (int)Math.Floor(r.Y * sy);
            int right = Math.Min(bgr.Width, (int)Math.Ceiling(r.Right * sx)), bottom = Math.Min(bgr.Height, (int)Math.Ceiling(r.Bottom * sy));
            return new Rect(x, y, right - x, bottom - y);
        }

        // A pixel centre of the copy, in the image's pixel coordinates.
        double X(double x) => ((x + 0.5) * sx) - 0.5;
        double Y(double y) => ((y + 0.5) * sy) - 0.5;
        Point Pixel(Point p) => new(Math.Clamp((int)Math.Round(X(p.X)), 0, bgr.Width - 1), Math.Clamp((int)Math.Round(Y(p.Y)), 0, bgr.Height - 1));

        Mat Native(Mat mask)
        {
            var native = new Mat();
            Cv2.Resize(mask, native, bgr.Size(), interpolation: InterpolationFlags.Nearest);
            return native;
        }

        var leukocytes = found.Leukocytes
            .Select(c => c with
            {
                Box = Box(c.Box),
                Area = (int)Math.Round(c.Area * sx * sy),
                NucleusArea = (int)Math.Round(c.NucleusArea * sx * sy),
                Centroid = new Point2d(X(c.Centroid.X), Y(c.Centroid.Y)),
                Contour = [.. c.Contour.Select(Pixel)],
                Crop = c.Crop.Clone(),
            })
            .ToList();
        return new SegmentationResult(
            leukocytes, imageScale, found.BackgroundMask is { } b ? Native(b) : null, found.ErythrocyteMask is { } e ? Native(e) : null,
            Native(found.LeukocyteMask), found.Field);
    }

    /// <summary>The method at the image's own scale.</summary>
    private SegmentationResult SegmentAt(Mat bgr, ImageScale imageScale, FieldColours field, bool masks)
    {
        double scale = imageScale.PixelsPerMicron; // pixels per µm: multiplies every length of the options
        using var smooth = new Mat();
        Cv2.GaussianBlur(bgr, smooth, new Size(0, 0), Options.SmoothingSigma * scale);

        using var lab = new Mat();
        Cv2.CvtColor(smooth, lab, ColorConversionCodes.BGR2Lab);
        using var nucleus = NucleusMask(lab, scale);
        var leukocytes = new List<Leukocyte>();
        var leukocyteMask = new Mat(bgr.Size(), MatType.CV_8UC1, Scalar.All(0));

        // The background mask serves only the masks asked for and the colour a crop is filled with where it leaves the
        // image: without masks it is made when a crop first needs that colour (measured: the mask and its masked mean
        // were 4% of a leuko analyze run's CPU on DeepBioNet, whose crops lie inside their fields).
        var background = masks ? BackgroundMask(smooth, lab) : null;
        Scalar? backgroundColour = null;
        Scalar BackgroundColour()
        {
            if (backgroundColour is null)
            {
                using var made = background is null ? BackgroundMask(smooth, lab) : null;
                backgroundColour = Cv2.Mean(bgr, background ?? made!);
            }

            return backgroundColour.Value;
        }

        using var labels = new Mat();
        using var stats = new Mat();
        using var centroids = new Mat();
        int count = Cv2.ConnectedComponentsWithStats(nucleus, labels, stats, centroids, PixelConnectivity.Connectivity8);
        double minArea = Options.MinNucleusArea * scale * scale;
        double minBorderArea = Options.MinBorderNucleusArea * scale * scale;
        var nuclei = new List<(int Label, Rect Box, int Area)>();
        for (int label = 1; label < count; label++)
        {
            int area = stats.At<int>(label, (int)ConnectedComponentsTypes.Area);
            if (area < minArea)
            {
                continue; // platelets and stain debris
            }

            var box = new Rect(
                stats.At<int>(label, (int)ConnectedComponentsTypes.Left),
                stats.At<int>(label, (int)ConnectedComponentsTypes.Top),
                stats.At<int>(label, (int)ConnectedComponentsTypes.Width),
                stats.At<int>(label, (int)ConnectedComponentsTypes.Height));
            bool cutByBorder = box.X == 0 || box.Y == 0 || box.Right >= bgr.Width || box.Bottom >= bgr.Height;
            if (cutByBorder && area < minBorderArea)
            {
                continue; // too little of the cell is in the field to be recognised
            }

            nuclei.Add((label, box, area));
        }

        foreach (var region in CellRegions(labels, nuclei))
        {
            using (region)
            {
                leukocytes.Add(region.ToLeukocyte(leukocyteMask, SquareCrop(bgr, region.Box, scale, BackgroundColour)));
            }
        }

        leukocytes.Sort((a, b) => b.Area.CompareTo(a.Area));
        if (background is null)
        {
            return new SegmentationResult(leukocytes, imageScale, null, null, leukocyteMask, field);
        }

        using var stained = new Mat();
        Cv2.BitwiseNot(background, stained);
        var erythrocytes = ErythrocyteMask(stained, leukocyteMask, scale);
        Cv2.Subtract(background, erythrocytes, background); // binary masks: a AND NOT b
        return new SegmentationResult(leukocytes, imageScale, background, erythrocytes, leukocyteMask, field);
    }

    /// <summary>
    /// Background: the unstained glass and plasma. Two stains mark everything else: red cells take up eosin
    /// (redder than plasma: higher CIELAB a*) and every stained structure is more saturated than the bright, almost
    /// grey plasma. Otsu's threshold on each of the two splits the field into its two populations; background is
    /// what neither marks.
    /// </summary>
    private static Mat BackgroundMask(Mat smooth, Mat lab)
    {
        using var hsv = new Mat();
        Cv2.CvtColor(smooth, hsv, ColorConversionCodes.BGR2HSV);
        using var saturation = hsv.ExtractChannel(1);
        using var saturated = new Mat();
        Cv2.Threshold(saturation, saturated, 0, 255, ThresholdTypes.Binary | ThresholdTypes.Otsu);
        using var redGreen = lab.ExtractChannel(1);
        using var red = new Mat();
        Cv2.Threshold(redGreen, red, 0, 255, ThresholdTypes.Binary | ThresholdTypes.Otsu);
        var background = new Mat();
        Cv2.BitwiseOr(saturated, red, background);
        Cv2.BitwiseNot(background, background);
        return background;
    }

    /// <summary>
    /// Red cells: stained pixels outside every leukocyte, speckle removed, and each cell's pale centre (central
    /// pallor, thin haemoglobin) filled where the ring closes around it.
    /// </summary>
    private Mat ErythrocyteMask(Mat stained, Mat leukocyteMask, double scale)
    {
        var erythrocytes = new Mat();
        Cv2.Subtract(stained, leukocyteMask, erythrocytes);
        using var open = Disk(Options.NoiseRadius * scale);
        Cv2.MorphologyEx(erythrocytes, erythrocytes, MorphTypes.Open, open);
        Cv2.FindContours(erythrocytes, out Point[][] contours, out HierarchyIndex[] hierarchy, RetrievalModes.CComp, ContourApproximationModes.ApproxSimple);
        double maxPallor = Math.PI * Math.Pow(Options.RedCellRadius * scale, 2) / 2;
        for (int i = 0; i < contours.Length; i++)
        {
            bool hole = hierarchy[i].Parent >= 0;
            if (hole && Cv2.ContourArea(contours[i]) < maxPallor)
            {
                Cv2.DrawContours(erythrocytes, [contours[i]], 0, Scalar.All(255), thickness: -1); // one contour: OpenCvSharp copies every contour given on each call
            }
        }

        Cv2.Subtract(erythrocytes, leukocyteMask, erythrocytes);
        return erythrocytes;
    }

    /// <summary>
    /// Nuclei: markedly bluer (CIELAB b* lower by <see cref="SegmentationOptions.NucleusBlueShift"/>) than both the field
    /// and its red cells, opened to drop speckle and closed to join the lobes of one nucleus. The red cells' b* is the
    /// median over the darker of the two populations of the field's non-nucleus pixels (Otsu on L*: red cells absorb,
    /// plasma does not): where the stain leaves red cells blue-grey rather than pink (seen on the Olympus BX53 fields),
    /// they are bluer than the plasma-dominated field median and would otherwise pass for nuclei.
    /// </summary>
    private Mat NucleusMask(Mat lab, double scale)
    {
        using var blueYellow = lab.ExtractChannel(2);
        using var lightness = lab.ExtractChannel(0);
        double fieldMedian = Histograms.Median(blueYellow, null);
        using var notNucleus = new Mat();
        Cv2.Threshold(blueYellow, notNucleus, fieldMedian - Options.NucleusBlueShift, 255, ThresholdTypes.Binary);
        using var dark = new Mat();
        Cv2.Threshold(lightness, dark, Histograms.Otsu(lightness, notNucleus), 255, ThresholdTypes.BinaryInv);
        Cv2.BitwiseAnd(dark, notNucleus, dark);
        double redCells = Cv2.CountNonZero(dark) == 0 ? fieldMedian : Histograms.Median(blueYellow, dark);
        double reference = redCells < fieldMedian - BlueRedCells ? redCells : fieldMedian;
        double threshold = reference - Options.NucleusBlueShift;
        var nucleus = new Mat();
        Cv2.Threshold(blueYellow, nucleus, threshold, 255, ThresholdTypes.BinaryInv);
        using var open = Disk(Options.NoiseRadius * scale);
        Cv2.MorphologyEx(nucleus, nucleus, MorphTypes.Open, open);
        using var close = Disk(Options.LobeJoinRadius * scale);
        Cv2.MorphologyEx(nucleus, nucleus, MorphTypes.Close, close);
        return nucleus;
    }

    /// <summary>
    /// The cells around the nuclei found: one per nucleus, except where the regions of two overlap by more than
    /// <see cref="SegmentationOptions.LobeMergeOverlap"/> of the smaller: then they are pieces of one nucleus (lobes the
    /// closing did not join, a nucleus broken by a smear artefact) and make one cell, the region around all of them.
    /// </summary>
    private List<CellRegion> CellRegions(Mat labels, List<(int Label, Rect Box, int Area)> nuclei)
    {
        var regions = new List<CellRegion>();
        foreach (var n in nuclei)
        {
            if (CellRegion.Around(labels, [n.Label], n.Box, n.Area, Options.CytoplasmMargin) is { } region)
            {
                regions.Add(region);
            }
        }

        var group = Enumerable.Range(0, regions.Count).ToArray();
        int Root(int i) => group[i] == i ? i : group[i] = Root(group[i]);
        bool merged = false;
        for (int i = 0; i < regions.Count; i++)
        {
            for (int j = i + 1; j < regions.Count; j++)
            {
                if (Root(i) != Root(j) && regions[i].Overlap(regions[j]) > Options.LobeMergeOverlap)
                {
                    group[Root(j)] = Root(i);
                    merged = true;
                }
            }
        }

        if (!merged)
        {
            return regions;
        }

        var cells = new List<CellRegion>();
        foreach (var members in Enumerable.Range(0, regions.Count).GroupBy(Root))
        {
            if (members.Count() == 1)
            {
                cells.Add(regions[members.Key]);
                continue;
            }

            var parts = members.Select(i => regions[i]).ToList();
            var box = parts.Select(r => r.NucleusBox).Aggregate((x, y) => x | y);
            var whole = CellRegion.Around(labels, parts.SelectMany(r => r.Labels).ToArray(), box, parts.Sum(r => r.NucleusArea), Options.CytoplasmMargin);
            foreach (var part in parts)
            {
                part.Dispose();
            }

            if (whole is not null)
            {
                cells.Add(whole);
            }
        }

        return cells;
    }

    /// <summary>
    /// The square of <see cref="SegmentationOptions.CropWindow"/> µm centred on the cell's box; where the square leaves
    /// the image it is filled with the field's background colour.
    /// </summary>
    private Mat SquareCrop(Mat bgr, Rect box, double pixelsPerMicron, Func<Scalar> backgroundColour)
    {
        int side = Math.Max(8, (int)Math.Round(Options.CropWindow * pixelsPerMicron));
        int x = box.X + (box.Width / 2) - (side / 2);
        int y = box.Y + (box.Height / 2) - (side / 2);
        var square = new Rect(x, y, side, side);
        var inside = square.Intersect(new Rect(0, 0, bgr.Width, bgr.Height));
        using var part = new Mat(bgr, inside);
        if (inside == square)
        {
            return part.Clone();
        }

        var crop = new Mat();
        Cv2.CopyMakeBorder(
            part, crop,
            top: inside.Y - square.Y,
            bottom: square.Bottom - inside.Bottom,
            left: inside.X - square.X,
            right: square.Right - inside.Right,
            BorderTypes.Constant, backgroundColour());
        return crop;
    }

    internal static Mat Disk(double radius)
    {
        int r = Math.Max(1, (int)Math.Round(radius));
        return Cv2.GetStructuringElement(MorphShapes.Ellipse, new Size((2 * r) + 1, (2 * r) + 1));
    }
}
