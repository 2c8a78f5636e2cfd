using OpenCvSharp;

namespace Leuko.Core.Evaluation;

/// <summary>Detection counts and scores over a set of images.</summary>
public sealed record DetectionMetrics(
    int Images, int Truth, int Detected, int TruePositives, int FalsePositives, int FalseNegatives,
    double Precision, double Recall, double F1, double MeanIoU);

/// <summary>How one image's detections matched its truth boxes.</summary>
public sealed record ImageMatch(string Image, IReadOnlyList<Rect> Truth, IReadOnlyList<Rect> Detected, IReadOnlyList<(int Truth, int Detected, double IoU)> Matches)
{
    public int FalsePositives => Detected.Count - Matches.Count;

    public int FalseNegatives => Truth.Count - Matches.Count;
}

/// <summary>One-to-one greedy matching of detected boxes to truth boxes at an IoU threshold, as in Pascal-VOC.</summary>
public sealed class DetectionEvaluator(double iouThreshold = 0.5)
{
    private readonly List<ImageMatch> _images = [];

    public double IoUThreshold { get; } = iouThreshold is > 0 and <= 1
        ? iouThreshold
        : throw new ArgumentOutOfRangeException(nameof(iouThreshold), "IoU threshold must be in (0, 1]");

    public IReadOnlyList<ImageMatch> Images => _images;

    public static double IoU(Rect a, Rect b)
    {
        var inter = a.Intersect(b);
        if (inter.Width <= 0 || inter.Height <= 0)
        {
            return 0;
        }

        double i = (double)inter.Width * inter.Height;
        return i / (((double)a.Width * a.Height) + ((double)b.Width * b.Height) - i);
    }

    /// <summary>Matches one image: pairs are taken in order of decreasing IoU, each box used at most once.</summary>
    public ImageMatch Add(string image, IReadOnlyList<Rect> truth, IReadOnlyList<Rect> detected)
    {
        var candidates = new List<(int T, int D, double IoU)>();
        for (int t = 0; t < truth.Count; t++)
        {
            for (int d = 0; d < detected.Count; d++)
            {
                double iou = IoU(truth[t], detected[d]);
                if (iou >= IoUThreshold)
                {
                    candidates.Add((t, d, iou));
                }
            }
        }

        var usedT = new HashSet<int>();
        var usedD = new HashSet<int>();
        var matches = new List<(int, int, double)>();
        foreach (var c in candidates.OrderByDescending(c => c.IoU).ThenBy(c => c.T).ThenBy(c => c.D))
        {
            if (usedT.Add(c.T))
            {
                if (usedD.Add(c.D))
                {
                    matches.Add(c);
                }
                else
                {
                    usedT.Remove(c.T);
                }
            }
        }

        var match = new ImageMatch(image, truth, detected, matches);
        _images.Add(match);
        return match;
    }

    public DetectionMetrics Metrics()
    {
        int truth = _images.Sum(i => i.Truth.Count);
        int detected = _images.Sum(i => i.Detected.Count);
        int tp = _images.Sum(i => i.Matches.Count);
        double precision = detected == 0 ? 0 : (double)tp / detected;
        double recall = truth == 0 ? 0 : (double)tp / truth;
        double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        double meanIoU = tp == 0 ? 0 : _images.SelectMany(i => i.Matches).Average(m => m.IoU);
        return new DetectionMetrics(_images.Count, truth, detected, tp, detected - tp, truth - tp, precision, recall, f1, meanIoU);
    }
}
