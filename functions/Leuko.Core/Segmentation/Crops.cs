using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>The one way a square cell crop is brought to a model's input size, shared by training-data export and inference.</summary>
public static class Crops
{
    /// <summary>
    /// Resizes a square crop to <paramref name="size"/> x <paramref name="size"/>: area averaging when shrinking
    /// (no aliasing of granules), bilinear when enlarging.
    /// </summary>
    public static Mat Resize(Mat crop, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 8);
        var interpolation = crop.Width > size ? InterpolationFlags.Area : InterpolationFlags.Linear;
        var resized = new Mat();
        Cv2.Resize(crop, resized, new Size(size, size), 0, 0, interpolation);
        return resized;
    }
}
