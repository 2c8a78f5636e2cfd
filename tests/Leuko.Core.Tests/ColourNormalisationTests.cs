using Leuko.Core.Classification;
using OpenCvSharp;

namespace Leuko.Core.Tests;

public sealed class ColourNormalisationTests
{
    private static readonly ColourNormalisation Reference =
        new(ColourNormalisation.WhiteDarkOpticalDensity, [0.9, 0.9, 0.9], [1.0, 1.6, 0.5], 1 / 3.0, 3.0, 24, 100);

    /// <summary>
    /// A 64x64 crop as a microscope shows it: glass of the lamp's colour, a red-cell disc and a stained nucleus, each
    /// pixel's transmission lamp * exp(-strength * stain OD) (Beer-Lambert), with a little texture.
    /// </summary>
    private static Vec3b[] Crop(double[] lamp, double strength)
    {
        var pixels = new Vec3b[64 * 64];
        double[] nucleusOd = [1.1, 1.5, 0.45], redCellOd = [0.15, 0.55, 0.4];
        for (int y = 0; y < 64; y++)
        {
            for (int x = 0; x < 64; x++)
            {
                double texture = 1 + (0.15 * Math.Sin(x * 0.9) * Math.Cos(y * 0.7));
                double nucleus = Math.Sqrt(((x - 34) * (x - 34)) + ((y - 30) * (y - 30))) < 13 ? texture : 0;
                double redCell = Math.Sqrt(((x - 10) * (x - 10)) + ((y - 52) * (y - 52))) < 9 ? 1 : 0;
                var bgr = new byte[3];
                for (int c = 0; c < 3; c++)
                {
                    double od = strength * ((nucleus * nucleusOd[c]) + (redCell * redCellOd[c]));
                    bgr[2 - c] = (byte)Math.Clamp(Math.Round(255 * lamp[c] * Math.Exp(-od)), 0, 255);
                }

                pixels[(y * 64) + x] = new Vec3b(bgr[0], bgr[1], bgr[2]);
            }
        }

        return pixels;
    }

    private static float[] Normalised(Vec3b[] pixels)
    {
        var planes = new float[3 * pixels.Length];
        Reference.Apply(pixels, planes);
        return planes;
    }

    private static float[] Raw(Vec3b[] pixels) =>
        [.. Enumerable.Range(0, 3).SelectMany(c => pixels.Select(p => p[2 - c] / 255f))];

    private static double MeanAbsoluteDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average();

    [Fact]
    public void Another_lamp_colour_and_another_stain_strength_give_the_model_the_same_crop()
    {
        var reference = Crop([0.92, 0.88, 0.85], 1.0);
        var warmLamp = Crop([0.98, 0.85, 0.70], 1.0);      // a halogen lamp without a daylight filter
        var coolDim = Crop([0.70, 0.80, 0.75], 1.0);       // a dimmer, bluer LED and camera white balance
        var paleStain = Crop([0.92, 0.88, 0.85], 0.6);     // a shorter staining time
        var darkStain = Crop([0.92, 0.88, 0.85], 1.6);
        var target = Normalised(reference);
        foreach (var other in new[] { warmLamp, coolDim, paleStain, darkStain })
        {
            // Before normalisation the crops differ a lot; after it, by about the 8-bit rounding of the photographs.
            double before = MeanAbsoluteDifference(Raw(reference), Raw(other)), after = MeanAbsoluteDifference(target, Normalised(other));
            Assert.True(after < 0.01 && after < before / 5, $"mean difference {before:0.0000} before normalisation, {after:0.0000} after");
        }
    }

    [Fact]
    public void The_glass_becomes_the_reference_white_and_the_nucleus_the_reference_stain()
    {
        var planes = Normalised(Crop([0.70, 0.80, 0.75], 1.3));
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(0.9f, planes[(c * 4096) + 0], 2); // the top-left corner is glass
        }

        // The nucleus's darkest tenth has the reference optical density on average.
        int centre = (30 * 64) + 34;
        Assert.True(planes[centre] < 0.45 && planes[4096 + centre] < 0.3, "the nucleus stays dark in red and green");
    }

    [Fact]
    public void A_crop_of_black_fill_is_left_as_it_is()
    {
        var pixels = new Vec3b[64 * 64];
        for (int i = 0; i < 75; i++)
        {
            pixels[i] = new Vec3b(200, 200, 200); // 75 lit pixels: fewer than MinPixels
        }

        Assert.Equal(Raw(pixels), Normalised(pixels));
    }

    [Fact]
    public void A_card_with_a_normalisation_this_build_does_not_know_is_refused()
    {
        Assert.Null(Reference.Problem());
        Assert.Contains("colour normalisation", (Reference with { Method = "macenko" }).Problem());
        Assert.Contains("colour normalisation", (Reference with { MinGain = 0 }).Problem());
        Assert.Contains("colour normalisation", (Reference with { White = [0.9, 0.9] }).Problem());
    }
}
