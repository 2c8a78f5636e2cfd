using OpenCvSharp;

namespace Leuko.Core.Classification;

/// <summary>
/// A crop's colour signature: what a microscope's stain, lamp and camera give every cell it photographs, whatever the
/// cell's class. Nine CIELAB figures of the model's input (the crop after <see cref="Segmentation.Crops.Resize"/>): the
/// mean L*, a*, b* of its brightest fifth (plasma and glass: the lamp and white balance), of its darkest tenth
/// (chromatin and granules: the azure stain) and the median of all its pixels (red cells and cytoplasm: the eosin).
/// Pixels are ranked by L*, ties by position, exactly as models/training/stain.py does, where the training sources'
/// distributions (<see cref="StainDomain"/>) are fitted; the parity test checks the two against each other.
/// </summary>
public static class StainFingerprint
{
    /// <summary>The card's name for these figures (<see cref="StainDomain.Features"/>).</summary>
    public const string Features = "lab-bright20-dark10-median";

    public const int Length = 9;

    /// <summary>The fingerprint of an 8-bit BGR crop at the model's input size.</summary>
    public static double[] Of(Mat bgr)
    {
        if (bgr.Empty() || bgr.Type() != MatType.CV_8UC3)
        {
            throw new ArgumentException("expected a non-empty 8-bit, 3-channel BGR image", nameof(bgr));
        }

        using var lab = new Mat();
        Cv2.CvtColor(bgr, lab, ColorConversionCodes.BGR2Lab);
        lab.GetArray(out Vec3b[] pixels);
        int n = pixels.Length;
        var order = new int[n];
        var keys = new long[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
            keys[i] = ((long)pixels[i].Item0 * n) + i; // by L*, ties by position: a stable sort
        }

        Array.Sort(keys, order);
        var result = new double[Length];
        Mean(pixels, order.AsSpan(n - (n / 5)), result.AsSpan(0, 3));
        Mean(pixels, order.AsSpan(0, n / 10), result.AsSpan(3, 3));
        for (int c = 0; c < 3; c++)
        {
            var channel = new int[n];
            for (int i = 0; i < n; i++)
            {
                channel[i] = pixels[i][c];
            }

            Array.Sort(channel);
            result[6 + c] = n % 2 == 1 ? channel[n / 2] : (channel[(n / 2) - 1] + channel[n / 2]) / 2.0;
        }

        return result;
    }

    private static void Mean(Vec3b[] pixels, ReadOnlySpan<int> which, Span<double> into)
    {
        double l = 0, a = 0, b = 0;
        foreach (int i in which)
        {
            l += pixels[i].Item0;
            a += pixels[i].Item1;
            b += pixels[i].Item2;
        }

        into[0] = l / which.Length;
        into[1] = a / which.Length;
        into[2] = b / which.Length;
    }
}

/// <summary>
/// The stains and cameras the model was trained on (the card's <c>stainDomain</c>, fitted by models/training/stain.py):
/// per training source the mean and precision (inverse covariance) of its training crops' <see cref="StainFingerprint"/>
/// and a bound, the <see cref="Quantile"/> of its own crops' Mahalanobis distances.
/// </summary>
public sealed record StainDomain(string Features, double Quantile, IReadOnlyList<StainSource> Sources)
{
    /// <summary>
    /// A crop's stain distance: its smallest Mahalanobis distance to a training source divided by that source's bound.
    /// At most 1 the crop's stain and camera are like one the model learnt; above it, the model's answer is not to be trusted.
    /// </summary>
    public double Distance(ReadOnlySpan<double> fingerprint)
    {
        double best = double.PositiveInfinity;
        foreach (var source in Sources)
        {
            best = Math.Min(best, source.Mahalanobis(fingerprint) / source.Bound);
        }

        return best;
    }

    /// <summary>Why this domain cannot be used, or null when it can.</summary>
    internal string? Problem(string what, string features, int length)
    {
        if (!string.Equals(Features, features, StringComparison.Ordinal))
        {
            return $"its {what} is of features '{Features}', and this build computes '{features}'";
        }

        return Sources is not { Count: > 0 }
                || Sources.Any(s => s.Mean is not { Count: var k } || k != length
                                    || s.Precision is not { Count: var p } || p != length * length
                                    || !(s.Bound > 0))
            ? $"its {what} needs, per source, {length} means, a {length}x{length} precision matrix and a positive bound"
            : null;
    }
}

/// <summary>One training source's stain: see <see cref="StainDomain"/>.</summary>
public sealed record StainSource(string Name, int Crops, IReadOnlyList<double> Mean, IReadOnlyList<double> Precision, double Bound)
{
    public double Mahalanobis(ReadOnlySpan<double> fingerprint)
    {
        int k = Mean.Count;
        Span<double> d = stackalloc double[k];
        for (int i = 0; i < k; i++)
        {
            d[i] = fingerprint[i] - Mean[i];
        }

        double sum = 0;
        for (int i = 0; i < k; i++)
        {
            for (int j = 0; j < k; j++)
            {
                sum += d[i] * Precision[(i * k) + j] * d[j];
            }
        }

        return Math.Sqrt(Math.Max(sum, 0));
    }
}
