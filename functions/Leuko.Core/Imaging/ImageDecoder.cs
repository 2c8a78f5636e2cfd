using OpenCvSharp;

namespace Leuko.Core.Imaging;

/// <summary>
/// Turns an encoded file into the 8-bit BGR image the segmenter works on, or refuses it with a reason.
/// </summary>
public static class ImageDecoder
{
    /// <summary>
    /// Largest image accepted, in pixels: 50 megapixels (e.g. 8660x5773), about 150 MB decoded.
    /// Microscope cameras write 5-20 MP; anything larger is refused before its pixels are allocated.
    /// </summary>
    public const long MaxPixels = 50_000_000;

    /// <summary>Smallest side accepted: below 32 px no cell can be resolved.</summary>
    public const int MinSide = 32;

    /// <summary>Decodes <paramref name="data"/>; throws <see cref="InvalidImageException"/> for anything unusable.</summary>
    public static Mat Decode(ReadOnlySpan<byte> data) => Decode(data, out _);

    /// <summary>
    /// Decodes <paramref name="data"/> and turns it as its EXIF orientation says (<see cref="ImageHeader.Orientation"/>,
    /// JPEG, PNG and WebP), so that the pixels, and every box found in them, are as viewers show the picture;
    /// <paramref name="orientation"/> is the EXIF value applied (1: none). Throws <see cref="InvalidImageException"/>
    /// for anything unusable.
    /// </summary>
    public static Mat Decode(ReadOnlySpan<byte> data, out int orientation)
    {
        var header = ImageHeader.Read(data);
        if ((long)header.Width * header.Height > MaxPixels)
        {
            throw new InvalidImageException(
                $"image too large: {header.Width}x{header.Height} is over the limit of {MaxPixels / 1_000_000} megapixels");
        }

        if (header.Width < MinSide || header.Height < MinSide)
        {
            throw new InvalidImageException(
                $"image too small: {header.Width}x{header.Height}; each side must be at least {MinSide} pixels");
        }

        orientation = header.Orientation;
        Mat raw;
        try
        {
            // Unchanged: OpenCV keeps the stored orientation (it turns images only in its colour modes), which is applied below.
            raw = Cv2.ImDecode(data, ImreadModes.Unchanged);
        }
        catch (OpenCVException e)
        {
            throw new InvalidImageException($"corrupt {ImageFormats.Name(header.Format)}: {e.Message}");
        }

        if (raw.Empty())
        {
            raw.Dispose();
            throw new InvalidImageException($"corrupt {ImageFormats.Name(header.Format)}: the decoder could not read the pixels");
        }

        try
        {
            var image = ToBgr8(raw, header.Format);
            Orient(image, header.Orientation);
            return image;
        }
        finally
        {
            raw.Dispose();
        }
    }

    /// <summary>
    /// Turns <paramref name="image"/> in place by an EXIF orientation: 2 mirrored, 3 turned 180°, 4 flipped, 5 transposed,
    /// 6 turned 90° clockwise, 7 transversed, 8 turned 90° counter-clockwise (as OpenCV and viewers apply them).
    /// </summary>
    public static void Orient(Mat image, int orientation)
    {
        if (orientation is >= 5 and <= 8)
        {
            Cv2.Transpose(image, image);
        }

        switch (orientation)
        {
            case 2 or 6:
                Cv2.Flip(image, image, FlipMode.Y);
                break;
            case 3 or 7:
                Cv2.Flip(image, image, FlipMode.XY);
                break;
            case 4 or 8:
                Cv2.Flip(image, image, FlipMode.X);
                break;
        }
    }

    /// <summary>Reads (<see cref="ImageFile.ReadAll"/>) and decodes a file.</summary>
    public static Mat DecodeFile(string path) => Decode(ImageFile.ReadAll(path));

    private static Mat ToBgr8(Mat raw, ImageFormat format)
    {
        if (raw.Channels() < 3)
        {
            throw new InvalidImageException(
                "grayscale image: leukocytes are found by the colour of the stain, so a colour photograph is needed");
        }

        using var eightBit = new Mat();
        switch (raw.Depth())
        {
            case MatType.CV_8U:
                raw.CopyTo(eightBit);
                break;
            case MatType.CV_16U:
                raw.ConvertTo(eightBit, MatType.CV_8U, 1.0 / 257.0);
                break;
            default:
                throw new InvalidImageException($"unsupported {ImageFormats.Name(format)} sample type (only 8-bit and 16-bit images are supported)");
        }

        if (eightBit.Channels() != 3 && eightBit.Channels() != 4)
        {
            throw new InvalidImageException($"unsupported {ImageFormats.Name(format)} layout with {eightBit.Channels()} channels");
        }

        var bgr = eightBit.Channels() == 3 ? eightBit.Clone() : CompositeOverWhite(eightBit);
        if (IsShadesOfGray(bgr))
        {
            // A grayscale picture stored with colour channels (a monochrome camera's RGB file, gray with alpha, which
            // the decoder gives as BGRA), or a blank one: no stain to find leukocytes by.
            bgr.Dispose();
            throw new InvalidImageException(
                $"no colour: every pixel is a shade of gray (its channels differ by at most {MaxGraySpread}); " +
                "leukocytes are found by the colour of the stain, so a colour photograph is needed");
        }

        return bgr;
    }

    /// <summary>
    /// Largest difference between two channels of a pixel that still counts as gray: a gray picture's JPEG comes back
    /// within a few levels; a stained smear's red cells and background differ by tens.
    /// </summary>
    public const int MaxGraySpread = 8;

    /// <summary>Whether no pixel's channels differ by more than <see cref="MaxGraySpread"/>, strip by strip (a colour image stops at its first).</summary>
    private static bool IsShadesOfGray(Mat bgr)
    {
        const int strip = 64;
        using var spread = new Mat();
        using var other = new Mat();
        int height = bgr.Rows, width = bgr.Cols;
        for (int y = 0; y < height; y += strip)
        {
            using var rows = new Mat(bgr, new Rect(0, y, width, Math.Min(strip, height - y)));
            var planes = rows.Split();
            try
            {
                Cv2.Absdiff(planes[0], planes[1], spread);
                Cv2.Absdiff(planes[1], planes[2], other);
                Cv2.Max(spread, other, spread);
                Cv2.Absdiff(planes[0], planes[2], other);
                Cv2.Max(spread, other, spread);
                Cv2.MinMaxLoc(spread, out double _, out double max);
                if (max > MaxGraySpread)
                {
                    return false;
                }
            }
            finally
            {
                foreach (var plane in planes)
                {
                    plane.Dispose();
                }
            }
        }

        return true;
    }

    // A transparent pixel shows the page behind it, and on a smear photograph that is empty background:
    // compositing onto white makes it read as background rather than as a cell.
    private static Mat CompositeOverWhite(Mat bgra)
    {
        var planes = bgra.Split();
        try
        {
            using var alpha = new Mat();
            planes[3].ConvertTo(alpha, MatType.CV_32F, 1.0 / 255.0);
            using var inverse = new Mat();
            Cv2.Subtract(Scalar.All(1.0), alpha, inverse);
            using var white = new Mat();
            inverse.ConvertTo(white, MatType.CV_32F, 255.0);
            var blended = new Mat[3];
            for (int c = 0; c < 3; c++)
            {
                using var plane = new Mat();
                planes[c].ConvertTo(plane, MatType.CV_32F);
                using var weighted = plane.Mul(alpha).ToMat();
                using var sum = new Mat();
                Cv2.Add(weighted, white, sum);
                blended[c] = new Mat();
                sum.ConvertTo(blended[c], MatType.CV_8U);
            }

            var result = new Mat();
            Cv2.Merge(blended, result);
            foreach (var m in blended)
            {
                m.Dispose();
            }

            return result;
        }
        finally
        {
            foreach (var p in planes)
            {
                p.Dispose();
            }
        }
    }
}
