using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>One leukocyte found in an image.</summary>
/// <param name="Box">Bounding box of the cell region (nucleus and cytoplasm), in image pixels.</param>
/// <param name="Area">Pixels in the cell region's mask.</param>
/// <param name="NucleusArea">Pixels in the nucleus mask.</param>
/// <param name="Centroid">Centre of mass of the cell region.</param>
/// <param name="Contour">Outer contour of the cell region.</param>
/// <param name="Crop">Square crop of SegmentationOptions.CropWindow µm centred on the cell (padded with background colour, never stretched); owned by the result.</param>
public sealed record Leukocyte(Rect Box, int Area, int NucleusArea, Point2d Centroid, Point[] Contour, Mat Crop);
