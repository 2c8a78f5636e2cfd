using OpenCvSharp;

namespace Leuko.Core.Imaging;

/// <summary>Statistics of an 8-bit single-channel image over the pixels of a mask (OpenCV's own take no mask).</summary>
internal static class Histograms
{
    private static float[] Histogram(Mat gray, Mat? mask)
    {
        using var hist = new Mat();
        Cv2.CalcHist([gray], [0], mask!, hist, 1, [256], [new Rangef(0, 256)]); // OpenCV takes a null mask for the whole image
        hist.GetArray(out float[] values);
        return values;
    }

    public static double Median(Mat gray, Mat? mask)
    {
        var hist = Histogram(gray, mask);
        double half = hist.Sum() / 2.0, seen = 0;
        for (int v = 0; v < 256; v++)
        {
            seen += hist[v];
            if (seen >= half)
            {
                return v;
            }
        }

        return 255;
    }

    /// <summary>Otsu's threshold over the pixels of <paramref name="mask"/> only.</summary>
    public static double Otsu(Mat gray, Mat? mask)
    {
        var hist = Histogram(gray, mask);
        double total = hist.Sum(), sum = 0;
        for (int v = 0; v < 256; v++)
        {
            sum += v * hist[v];
        }

        double weightBelow = 0, sumBelow = 0, best = -1;
        int threshold = 127;
        for (int v = 0; v < 255; v++)
        {
            weightBelow += hist[v];
            sumBelow += v * hist[v];
            if (weightBelow == 0 || weightBelow == total)
            {
                continue;
            }

            double meanBelow = sumBelow / weightBelow, meanAbove = (sum - sumBelow) / (total - weightBelow);
            double between = weightBelow * (total - weightBelow) * Math.Pow(meanBelow - meanAbove, 2);
            if (between > best)
            {
                best = between;
                threshold = v;
            }
        }

        return threshold + 0.5;
    }
}
