using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>
/// The whole cell around a nucleus (one connected component of the nucleus mask, or several that are pieces of one):
/// the nuclei's convex hull (which also spans the cytoplasm between lobes) grown by the cytoplasm margin. The margin is
/// geometric because the pale cytoplasm of neutrophils and monocytes has the colour of plasma in these fields
/// (measured on BCCD: CIELAB a*, b* and HSV S within one standard deviation of the background), so no colour threshold
/// finds its edge. Holds the region's mask within <see cref="Roi"/>: dispose it.
/// </summary>
internal sealed class CellRegion : IDisposable
{
    private readonly Mat _mask;

    private CellRegion(int[] labels, Rect nucleusBox, int nucleusArea, Rect roi, Mat mask, Point[] contour)
    {
        (Labels, NucleusBox, NucleusArea, Roi, _mask) = (labels, nucleusBox, nucleusArea, roi, mask);
        Contour = contour.Select(p => p + roi.TopLeft).ToArray();
        Box = Cv2.BoundingRect(Contour);
        Area = Cv2.CountNonZero(mask);
    }

    /// <summary>The labels of the nucleus components it is grown around.</summary>
    public int[] Labels { get; }

    public Rect NucleusBox { get; }

    /// <summary>Pixels of its nuclei.</summary>
    public int NucleusArea { get; }

    /// <summary>Where its mask lies in the image.</summary>
    public Rect Roi { get; }

    /// <summary>Outer contour, in image pixels.</summary>
    public Point[] Contour { get; }

    /// <summary>Bounding box of the region, in image pixels.</summary>
    public Rect Box { get; }

    /// <summary>Pixels of the region.</summary>
    public int Area { get; }

    /// <summary>
    /// The region around the components <paramref name="members"/> of <paramref name="labels"/> (their union's box and
    /// pixel count given), or null where nothing is left of it.
    /// </summary>
    public static CellRegion? Around(Mat labels, int[] members, Rect nucleusBox, int nucleusArea, double cytoplasmMargin)
    {
        int margin = (int)Math.Ceiling(cytoplasmMargin * Math.Sqrt(nucleusArea / Math.PI));
        var roi = Inflate(nucleusBox, margin + 1, labels.Size());

        using var nucleus = new Mat(roi.Size, MatType.CV_8UC1, Scalar.All(0));
        using (var labelsRoi = new Mat(labels, roi))
        using (var member = new Mat())
        {
            foreach (int label in members)
            {
                Cv2.Compare(labelsRoi, Scalar.All(label), member, CmpTypes.EQ);
                Cv2.BitwiseOr(nucleus, member, nucleus);
            }
        }

        Cv2.FindContours(nucleus, out Point[][] nucleusContours, out _, RetrievalModes.External, ContourApproximationModes.ApproxSimple);
        var hull = Cv2.ConvexHull(nucleusContours.SelectMany(c => c));
        using var grown = new Mat(roi.Size, MatType.CV_8UC1, Scalar.All(0));
        Cv2.FillConvexPoly(grown, hull, Scalar.All(255));
        if (margin > 0)
        {
            using var disk = LeukocyteSegmenter.Disk(margin);
            Cv2.Dilate(grown, grown, disk);
        }

        Cv2.FindContours(grown, out Point[][] contours, out _, RetrievalModes.External, ContourApproximationModes.ApproxNone);
        if (contours.Length == 0)
        {
            return null;
        }

        // The hull is connected, so the region around it is the largest outer contour.
        var contour = contours.MaxBy(c => Cv2.ContourArea(c))!;
        var region = new Mat(roi.Size, MatType.CV_8UC1, Scalar.All(0));
        Cv2.DrawContours(region, [contour], 0, Scalar.All(255), thickness: -1);
        return new CellRegion(members, nucleusBox, nucleusArea, roi, region, contour);
    }

    /// <summary>The share of the smaller of the two regions that the other covers.</summary>
    public double Overlap(CellRegion other)
    {
        var common = Roi.Intersect(other.Roi);
        if (common.Width <= 0 || common.Height <= 0)
        {
            return 0;
        }

        using var mine = new Mat(_mask, new Rect(common.X - Roi.X, common.Y - Roi.Y, common.Width, common.Height));
        using var theirs = new Mat(other._mask, new Rect(common.X - other.Roi.X, common.Y - other.Roi.Y, common.Width, common.Height));
        using var both = new Mat();
        Cv2.BitwiseAnd(mine, theirs, both);
        return Cv2.CountNonZero(both) / (double)Math.Max(1, Math.Min(Area, other.Area));
    }

    /// <summary>The leukocyte of this region, with its crop; draws the region into <paramref name="leukocyteMask"/>.</summary>
    public Leukocyte ToLeukocyte(Mat leukocyteMask, Mat crop)
    {
        using (var maskRoi = new Mat(leukocyteMask, Roi))
        {
            Cv2.BitwiseOr(maskRoi, _mask, maskRoi);
        }

        var moments = Cv2.Moments(_mask, binaryImage: true);
        var centroid = new Point2d(moments.M10 / moments.M00 + Roi.X, moments.M01 / moments.M00 + Roi.Y);
        return new Leukocyte(Box, Area, NucleusArea, centroid, Contour, crop);
    }

    public void Dispose() => _mask.Dispose();

    private static Rect Inflate(Rect r, int by, Size bounds)
    {
        int x0 = Math.Max(0, r.X - by), y0 = Math.Max(0, r.Y - by);
        int x1 = Math.Min(bounds.Width, r.Right + by), y1 = Math.Min(bounds.Height, r.Bottom + by);
        return new Rect(x0, y0, x1 - x0, y1 - y0);
    }
}
