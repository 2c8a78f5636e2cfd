using System.Diagnostics;
using Leuko.Core.Classification;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Pipeline;

/// <summary>
/// The two pipeline stages, segmentation then classification, composed for one image. The cloud runs the same stages
/// in two functions (crops travel between them as lossless PNG blobs); the local run calls them back to back.
/// Thread-safe: one analyzer serves every worker.
/// </summary>
public sealed class ImageAnalyzer(LeukocyteSegmenter segmenter, LeukocyteClassifier classifier)
{
    public IReadOnlyList<string> Classes => classifier.Card.Classes;

    public ModelCard Model => classifier.Card;

    /// <summary>
    /// Decodes and analyses one image. Bad input (not an image, corrupt, too small or large) gives a failed result with
    /// the reason; it never throws for the content of <paramref name="data"/>.
    /// </summary>
    public AnalyzedImage Analyze(string source, byte[] data)
    {
        long t0 = Stopwatch.GetTimestamp();
        Mat image;
        try
        {
            image = ImageDecoder.Decode(data);
        }
        catch (InvalidImageException e)
        {
            return new AnalyzedImage(ImageResult.Failure(source, e.Message, Classes), null, [], new StageTimes(Stopwatch.GetElapsedTime(t0), default, default));
        }

        try
        {
            long t1 = Stopwatch.GetTimestamp();
            using var segmentation = segmenter.Segment(image);
            long t2 = Stopwatch.GetTimestamp();
            var crops = segmentation.Leukocytes.Select(c => c.Crop).ToList();
            var classes = classifier.Classify(crops);
            var times = new StageTimes(Stopwatch.GetElapsedTime(t0, t1), Stopwatch.GetElapsedTime(t1, t2), Stopwatch.GetElapsedTime(t2));
            var cells = ToCells(segmentation.Leukocytes, classes, Classes);
            var result = new ImageResult(
                source,
                cells.Count > 0 ? ImageStatus.Completed : ImageStatus.NoLeukocytes,
                null,
                image.Width,
                image.Height,
                cells,
                Differential.Count(cells.Select(c => c.Class), Classes));
            return new AnalyzedImage(result, image, segmentation.Leukocytes.Select(c => c.Contour).ToList(), times);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>Joins the segmenter's cells with the classifier's answers, in the segmenter's order.</summary>
    public static IReadOnlyList<CellResult> ToCells(
        IReadOnlyList<Leukocyte> leukocytes, IReadOnlyList<CellClassification> classes, IReadOnlyList<string> classNames)
    {
        if (leukocytes.Count != classes.Count)
        {
            throw new ArgumentException($"{leukocytes.Count} cells but {classes.Count} classifications");
        }

        var cells = new List<CellResult>(leukocytes.Count);
        for (int i = 0; i < leukocytes.Count; i++)
        {
            var cell = leukocytes[i];
            var c = classes[i];
            var probabilities = new Dictionary<string, double>(StringComparer.Ordinal);
            for (int k = 0; k < classNames.Count; k++)
            {
                probabilities[classNames[k]] = Math.Round(c.Probabilities[k], 4);
            }

            cells.Add(new CellResult(
                i,
                new Box(cell.Box.X, cell.Box.Y, cell.Box.Width, cell.Box.Height),
                c.Label,
                probabilities[c.Label],
                probabilities,
                c.NeedsReview,
                cell.Area));
        }

        return cells;
    }
}

/// <summary>Time spent on one image in each stage.</summary>
public readonly record struct StageTimes(TimeSpan Decode, TimeSpan Segment, TimeSpan Classify);

/// <summary>An analysed image with what drawing it needs: the decoded pixels (null when it failed) and each cell's outline.</summary>
public sealed class AnalyzedImage(ImageResult result, Mat? image, IReadOnlyList<Point[]> contours, StageTimes times) : IDisposable
{
    public StageTimes Times { get; } = times;

    public ImageResult Result { get; } = result;

    public Mat? Image { get; } = image;

    public IReadOnlyList<Point[]> Contours { get; } = contours;

    public void Dispose() => Image?.Dispose();
}
