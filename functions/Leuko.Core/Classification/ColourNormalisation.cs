using OpenCvSharp;

namespace Leuko.Core.Classification;

/// <summary>
/// Maps a crop's lamp and stain onto one reference before the model (the card's <c>input.colourNormalisation</c>), by
/// the physics of absorption (Beer-Lambert), so that a cell looks the same to the model from any microscope. Exactly
/// models/training/train.py's <c>colour_normalise</c>; the parity test checks the two against each other.
/// </summary>
/// <remarks>
/// Pixels are ranked by R+G+B, ties by position; pixels darker than <see cref="MinLuminance"/> (black fill of a rotated
/// frame, never stain) are left out of the statistics. Per channel: white = the mean of the brightest fifth (the lamp
/// and white balance); each pixel's optical density od = -ln(max(I, 1/255) / white), at least 0; dark = the mean od of
/// the darkest tenth (how strongly chromatin is stained); gain = reference dark / dark within
/// [<see cref="MinGain"/>, <see cref="MaxGain"/>]; out = reference white * exp(-gain * od). A crop with fewer than
/// <see cref="MinPixels"/> such pixels is left as it is.
/// </remarks>
public sealed record ColourNormalisation(
    string Method,
    IReadOnlyList<double> White,
    IReadOnlyList<double> DarkOpticalDensity,
    double MinGain,
    double MaxGain,
    int MinLuminance,
    int MinPixels)
{
    /// <summary>The card's name for this method.</summary>
    public const string WhiteDarkOpticalDensity = "white-dark-od";

    /// <summary>
    /// Writes the normalised crop (8-bit BGR pixels, row-major) into three planes of <paramref name="rgb"/>
    /// (R, G, B, each <c>pixels.Length</c> long), in [0, 1].
    /// </summary>
    public void Apply(ReadOnlySpan<Vec3b> bgr, Span<float> rgb)
    {
        int n = bgr.Length;
        if (rgb.Length < 3 * n)
        {
            throw new ArgumentException("needs three planes of the crop's size", nameof(rgb));
        }

        var keys = new long[n];
        var order = new int[n];
        int valid = 0;
        for (int i = 0; i < n; i++)
        {
            int lum = bgr[i].Item0 + bgr[i].Item1 + bgr[i].Item2;
            bool ok = lum >= MinLuminance;
            valid += ok ? 1 : 0;
            keys[i] = ((long)(ok ? lum + 1 : 0) * n) + i; // excluded pixels first, then by R+G+B, ties by position
            order[i] = i;
        }

        for (int c = 0; c < 3; c++)
        {
            int source = 2 - c; // BGR to RGB
            var plane = rgb.Slice(c * n, n);
            for (int i = 0; i < n; i++)
            {
                plane[i] = bgr[i][source] / 255f;
            }
        }

        if (valid < MinPixels)
        {
            return;
        }

        Array.Sort(keys, order);
        int bright = valid / 5, dark = valid / 10, firstValid = n - valid;
        for (int c = 0; c < 3; c++)
        {
            var plane = rgb.Slice(c * n, n);
            double white = 0;
            for (int r = n - bright; r < n; r++)
            {
                white += plane[order[r]];
            }

            float w = (float)Math.Max(white / Math.Max(bright, 1), 1 / 255.0);
            double darkSum = 0;
            for (int r = firstValid; r < firstValid + dark; r++)
            {
                darkSum += OpticalDensity(plane[order[r]], w);
            }

            double darkOd = darkSum / Math.Max(dark, 1);
            float gain = (float)Math.Clamp(DarkOpticalDensity[c] / Math.Max(darkOd, 1e-6), MinGain, MaxGain);
            float reference = (float)White[c];
            for (int i = 0; i < n; i++)
            {
                plane[i] = reference * MathF.Exp(-OpticalDensity(plane[i], w) * gain);
            }
        }
    }

    private static float OpticalDensity(float intensity, float white) =>
        Math.Max(0f, -MathF.Log(Math.Max(intensity, 1 / 255f) / white));

    /// <summary>Why this normalisation cannot be used, or null when it can.</summary>
    public string? Problem() =>
        !string.Equals(Method, WhiteDarkOpticalDensity, StringComparison.Ordinal)
            ? $"its colour normalisation is '{Method}', and this build applies '{WhiteDarkOpticalDensity}'"
            : White is not { Count: 3 } || DarkOpticalDensity is not { Count: 3 } || White.Any(v => !(v > 0)) || DarkOpticalDensity.Any(v => !(v > 0))
                || !(MinGain > 0) || !(MaxGain >= MinGain)
                ? "its colour normalisation needs three positive reference whites and dark optical densities and 0 < minGain <= maxGain"
                : null;
}
