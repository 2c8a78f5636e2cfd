using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Core.Scale;

/// <summary>
/// Estimates an image's physical scale from its own red cells, which are the one structure of known size on every smear
/// (<see cref="ScaleOptions.RedCellDiameterMicrons"/>). Scale-free by construction: nothing below depends on a length in
/// pixels except a 3x3 noise opening and the smallest outline measured. Pure and thread-safe.
/// </summary>
public sealed class RedCellScaleEstimator(ScaleOptions? options = null)
{
    /// <summary>
    /// How much bluer (CIELAB b*) than the red cells a round candidate may be before it is taken for a platelet: half the
    /// nucleus shift, since a platelet's granulomere stains like a pale nucleus.
    /// </summary>
    private const double PlateletBlueShift = RedCellMasks.NucleusBlueShift / 2;

    /// <summary>An arc of radius under this (px) is a rim, a corner or noise, not a red cell: no smear is photographed with red cells under 8 px across.</summary>
    private const double MinCellRadius = 4;

    /// <summary>Radii at k and 2k agreeing within this fraction mark a circular arc.</summary>
    private const double ArcAgreement = 0.08;

    /// <summary>Fewer arc measurements than this (points along outlines, at all k) and a packed field gets no estimate.</summary>
    private const int MinArcSamples = 20;

    public ScaleOptions Options { get; } = options ?? ScaleOptions.Default;

    /// <summary>
    /// The scale of <paramref name="bgr"/> (8-bit BGR): from its isolated round red cells where enough are alike; else,
    /// in a field of packed, overlapping red cells, from the curvature of their outlines; else the default (a single-cell frame).
    /// </summary>
    public ImageScale Estimate(Mat bgr)
    {
        ArgumentNullException.ThrowIfNull(bgr);
        using var masks = RedCellMasks.Of(bgr);
        return Estimate(bgr, masks);
    }

    /// <summary>
    /// The scale of <paramref name="bgr"/> and the colours of its glass and red cells (<see cref="FieldColours"/>), from
    /// one set of masks: what <see cref="LeukocyteSegmenter.Segment"/> does when given neither.
    /// </summary>
    public (ImageScale Scale, FieldColours Field) EstimateWithField(Mat bgr)
    {
        ArgumentNullException.ThrowIfNull(bgr);
        using var masks = RedCellMasks.Of(bgr);
        return (Estimate(bgr, masks), FieldColours.Of(bgr, masks));
    }

    /// <summary>The scale of <paramref name="bgr"/> from its masks, made once for the scale and the field's colours.</summary>
    internal ImageScale Estimate(Mat bgr, RedCellMasks masks)
    {
        // Both estimates measure the red mask's outer outlines, against the cut mask: found and read once.
        Cv2.FindContours(masks.Red, out Point[][] contours, out _, RetrievalModes.External, ContourApproximationModes.ApproxNone);
        masks.Cut.GetArray(out byte[] cut); // one copy: Mat.At is a native call per pixel
        var diameters = RedCellDiameters(contours, cut, masks, bgr.Size());
        // The outline estimate costs more than the rest together; it is measured only where it is needed.
        var packedScale = new Lazy<double?>(() => PackedRadius(contours, cut, masks.Red.Size()) is { } radius ? Plausible(Options.RedCellDiameterMicrons / (2 * radius)) : null);
        if (diameters.Count >= Options.MinRedCells)
        {
            double diameter = AreaWeightedMedian(diameters);
            // Red cells of one smear are alike (a normal red-cell distribution width is 11-15%): when most measured outlines
            // are far from their median, what was measured is debris or fragments, not a population of red cells. A few
            // round shapes that disagree with the outlines of all the others are debris too; many alike are not.
            int alike = diameters.Count(d => Math.Abs(d - diameter) <= Options.SizeTolerance * diameter);
            if (alike >= Options.MinRedCells && alike >= diameters.Count / 2.0
                && Plausible(Options.RedCellDiameterMicrons / diameter) is { } isolated
                && (alike >= Options.TrustedRedCells || packedScale.Value is not { } packed
                    || Math.Abs(Math.Log(isolated / packed)) <= Math.Log(1 + Options.SizeTolerance)))
            {
                return new ImageScale(isolated, ScaleSource.Estimated, diameters.Count);
            }
        }

        return packedScale.Value is { } fromOutlines
            ? new ImageScale(fromOutlines, ScaleSource.Estimated, diameters.Count)
            : new ImageScale(Options.DefaultMicronsPerPixel(bgr.Width, bgr.Height), ScaleSource.Default, diameters.Count);
    }

    private static double? Plausible(double micronsPerPixel) =>
        micronsPerPixel is >= ImageScale.MinMicronsPerPixel and <= ImageScale.MaxMicronsPerPixel ? micronsPerPixel : null;

    /// <summary>
    /// The dominant red-cell radius (px) of a field of packed, overlapping red cells, from the curvature of their
    /// outlines: the outline of overlapping discs is made of arcs of the discs' own circles, so along every outline the
    /// radius of the circle through three points k apart is measured at several k, and kept where it agrees with the
    /// radius at 2k (a circular arc, not a notch or a corner) and where the arc turns like the outline as a whole
    /// (convex). The mode of those radii is the cells' radius. Null where too few arcs are measured.
    /// </summary>
    /// <param name="contours">The red mask's outer outlines.</param>
    /// <param name="cut">The cut mask's pixels, row by row.</param>
    private static double? PackedRadius(Point[][] contours, byte[] cut, Size size)
    {
        int width = size.Width, height = size.Height;
        var positive = new List<double>();
        var negative = new List<double>();
        foreach (var contour in contours)
        {
            int n = contour.Length;
            if (n < 24)
            {
                continue;
            }

            var usable = new bool[n];
            for (int i = 0; i < n; i++)
            {
                var p = contour[i];
                usable[i] = p.X > 1 && p.Y > 1 && p.X < width - 2 && p.Y < height - 2 && cut[(p.Y * width) + p.X] == 0;
            }

            for (int k = 3; 4 * k < n; k = (int)Math.Ceiling(k * Math.Sqrt(2)))
            {
                // The radii this k measures (the tests on r1 below), for a cheap test without square roots first.
                double lowest = Math.Max(MinCellRadius, 2 * k / 1.2), highest = 4 * k / 0.6;
                for (int i = 0; i < n; i++)
                {
                    // 2k < n/2, so one wrap suffices (this loop is most of the estimate's time: no modulo here).
                    int back2 = i - (2 * k) < 0 ? i - (2 * k) + n : i - (2 * k), ahead2 = i + (2 * k) >= n ? i + (2 * k) - n : i + (2 * k);
                    if (!usable[i] || !usable[back2] || !usable[ahead2])
                    {
                        continue;
                    }

                    int back = i - k < 0 ? i - k + n : i - k, ahead = i + k >= n ? i + k - n : i + k;
                    if (!MayBeInRange(contour[back], contour[i], contour[ahead], lowest, highest))
                    {
                        continue;
                    }

                    var (r1, turn1) = Circumradius(contour[back], contour[i], contour[ahead]);
                    if (!(r1 >= MinCellRadius && 2 * k < 1.2 * r1 && 4 * k > 0.6 * r1))
                    {
                        continue; // the wider arc is measured only where the narrow one is of a size this k measures
                    }

                    var (r2, turn2) = Circumradius(contour[back2], contour[i], contour[ahead2]);
                    if (Math.Sign(turn1) == Math.Sign(turn2) && Math.Abs(r1 - r2) < ArcAgreement * r1)
                    {
                        (turn1 > 0 ? positive : negative).Add(r1);
                    }
                }
            }
        }

        // Outer outlines turn mostly one way (their convex arcs); the few arcs turning the other way are notches.
        var radii = positive.Count >= negative.Count ? positive : negative;
        return radii.Count < MinArcSamples ? null : LogMode(radii);
    }

    /// <summary>
    /// Whether the circle through three points may have a radius in [<paramref name="lowest"/>, <paramref name="highest"/>]:
    /// false only where its squared radius, from integer arithmetic, is clearly outside (by a relative 1e-9, far beyond
    /// rounding), so that the exact test on <see cref="Circumradius"/> decides every case it used to.
    /// </summary>
    private static bool MayBeInRange(Point a, Point b, Point c, double lowest, double highest)
    {
        double cross = ((b.X - a.X) * (double)(c.Y - a.Y)) - ((b.Y - a.Y) * (double)(c.X - a.X));
        if (cross == 0)
        {
            return false; // collinear: an infinite radius, which no k measures
        }

        double ab = Squared(a, b), bc = Squared(b, c), ca = Squared(c, a);
        double radiusSquared = ab * bc * ca / (4 * cross * cross);
        return radiusSquared >= lowest * lowest * (1 - 1e-9) && radiusSquared <= highest * highest * (1 + 1e-9);
    }

    private static double Squared(Point a, Point b)
    {
        double dx = a.X - b.X, dy = a.Y - b.Y;
        return (dx * dx) + (dy * dy);
    }

    /// <summary>Radius of the circle through three points, and the sign of their turn (the cross product).</summary>
    private static (double Radius, double Turn) Circumradius(Point a, Point b, Point c)
    {
        // Squared distances of integer points are exact in double, so these are the distances Point.DistanceTo gives,
        // without its Math.Pow (glibc's pow: 5-6% of a whole leuko analyze run's CPU, measured with perf).
        double ab = Math.Sqrt(Squared(a, b)), bc = Math.Sqrt(Squared(b, c)), ca = Math.Sqrt(Squared(c, a));
        double cross = ((b.X - a.X) * (double)(c.Y - a.Y)) - ((b.Y - a.Y) * (double)(c.X - a.X));
        return cross == 0 ? (double.PositiveInfinity, 0) : (ab * bc * ca / (2 * Math.Abs(cross)), cross);
    }

    /// <summary>The mode of <paramref name="values"/> (all at least <see cref="MinCellRadius"/>) on a log scale: bins of 5%, smoothed over five bins.</summary>
    private static double LogMode(List<double> values)
    {
        const double bin = 0.05;
        double low = Math.Log(MinCellRadius);
        var histogram = new double[(int)((Math.Log(values.Max()) - low) / bin) + 1];
        foreach (double v in values)
        {
            histogram[(int)((Math.Log(v) - low) / bin)]++;
        }

        ReadOnlySpan<double> smoothing = [1, 2, 3, 2, 1];
        int best = 0;
        double bestValue = -1;
        for (int i = 0; i < histogram.Length; i++)
        {
            double v = 0;
            for (int k = -2; k <= 2; k++)
            {
                if (i + k >= 0 && i + k < histogram.Length)
                {
                    v += smoothing[k + 2] * histogram[i + k];
                }
            }

            if (v > bestValue)
            {
                (best, bestValue) = (i, v);
            }
        }

        return Math.Exp(low + ((best + 0.5) * bin));
    }

    /// <summary>
    /// Equivalent diameters (px) of the isolated, round red cells: red cells absorb light, so they are the darker of the
    /// two populations left once nuclei and non-smear pixels are set aside (Otsu on CIELAB L*, which separates them on
    /// pink, lilac and blue-grey stains alike); each cell's pale centre is filled; outlines touching the border, a
    /// nucleus or non-smear pixels are cut and not measured; overlapping cells fail the roundness and solidity tests.
    /// </summary>
    private List<double> RedCellDiameters(Point[][] contours, byte[] cut, RedCellMasks masks, Size size)
    {
        var (red, blueYellow) = (masks.Red, masks.BlueYellow);
        // Platelets are dark, round and all of one size too, but purple: a candidate markedly bluer than the red cells
        // as a whole (CIELAB b* of the red mask) is not measured.
        double redCellBlueYellow = Cv2.Mean(blueYellow, red).Val0;
        var diameters = new List<double>();
        var bounds = new Rect(1, 1, size.Width - 2, size.Height - 2);
        double minArea = Math.PI * Math.Pow(Options.MinDiameterPixels / 2, 2);
        foreach (var contour in contours)
        {
            double area = Cv2.ContourArea(contour);
            if (area < minArea)
            {
                continue;
            }

            var box = Cv2.BoundingRect(contour);
            if (box.X < bounds.X || box.Y < bounds.Y || box.Right > bounds.Right || box.Bottom > bounds.Bottom)
            {
                continue;
            }

            double perimeter = Cv2.ArcLength(contour, closed: true);
            double circularity = 4 * Math.PI * area / (perimeter * perimeter);
            double solidity = area / Math.Max(1, Cv2.ContourArea(Cv2.ConvexHull(contour)));
            if (circularity < Options.MinCircularity || solidity < Options.MinSolidity || contour.Any(p => cut[(p.Y * size.Width) + p.X] != 0))
            {
                continue;
            }

            using (var outline = new Mat(box.Size, MatType.CV_8UC1, Scalar.All(0)))
            using (var part = new Mat(blueYellow, box))
            {
                Cv2.DrawContours(outline, [contour], 0, Scalar.All(255), thickness: -1, offset: new Point(-box.X, -box.Y));
                if (Cv2.Mean(part, outline).Val0 < redCellBlueYellow - PlateletBlueShift)
                {
                    continue;
                }
            }

            diameters.Add(2 * Math.Sqrt(area / Math.PI));
        }

        return diameters;
    }

    /// <summary>
    /// The median of the diameters with each weighted by its area: small round debris that passes the shape tests
    /// counts for little beside the discs of the red cells.
    /// </summary>
    private static double AreaWeightedMedian(List<double> diameters)
    {
        var sorted = diameters.Order().ToArray();
        double half = sorted.Sum(d => d * d) / 2, seen = 0;
        foreach (double d in sorted)
        {
            seen += d * d;
            if (seen >= half)
            {
                return d;
            }
        }

        return sorted[^1];
    }
}
