using Leuko.Core.Evaluation;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Core.Tests;

public sealed class DetectionEvaluatorTests
{
    [Fact]
    public void IoU_of_boxes()
    {
        Assert.Equal(1.0, DetectionEvaluator.IoU(new Rect(0, 0, 10, 10), new Rect(0, 0, 10, 10)));
        Assert.Equal(0.0, DetectionEvaluator.IoU(new Rect(0, 0, 10, 10), new Rect(20, 20, 10, 10)));
        Assert.Equal(50.0 / 150.0, DetectionEvaluator.IoU(new Rect(0, 0, 10, 10), new Rect(5, 0, 10, 10)), 9);
    }

    [Fact]
    public void Matching_is_one_to_one_and_greedy_by_IoU()
    {
        var evaluator = new DetectionEvaluator(0.5);
        // Two detections overlap the same truth box: only the better one matches, the other is a false positive.
        evaluator.Add("a", [new Rect(0, 0, 100, 100)], [new Rect(0, 0, 100, 90), new Rect(0, 0, 100, 70)]);
        // A miss and a detection elsewhere.
        evaluator.Add("b", [new Rect(0, 0, 50, 50)], [new Rect(200, 200, 50, 50)]);
        // An empty field with nothing found.
        evaluator.Add("c", [], []);

        var m = evaluator.Metrics();
        Assert.Equal((3, 2, 3, 1, 2, 1), (m.Images, m.Truth, m.Detected, m.TruePositives, m.FalsePositives, m.FalseNegatives));
        Assert.Equal(1.0 / 3, m.Precision, 9);
        Assert.Equal(0.5, m.Recall, 9);
        Assert.Equal(0.4, m.F1, 9);
        Assert.Equal(0.9, m.MeanIoU, 9);
    }

    [Fact]
    public void A_detection_below_the_threshold_is_a_miss_and_a_false_positive()
    {
        var evaluator = new DetectionEvaluator(0.5);
        evaluator.Add("a", [new Rect(0, 0, 100, 100)], [new Rect(50, 0, 100, 100)]); // IoU 1/3
        var m = evaluator.Metrics();
        Assert.Equal((0, 1, 1), (m.TruePositives, m.FalsePositives, m.FalseNegatives));
    }

    [Fact]
    public void The_committed_sample_fields_are_segmented_as_annotated()
    {
        var segmenter = new LeukocyteSegmenter();
        var evaluator = new DetectionEvaluator(0.5);
        var found = new Dictionary<string, Rect[]>();
        foreach (var field in VocDataset.Load(Path.Combine("samples", "bccd")))
        {
            using var image = ImageDecoder.DecodeFile(field.ImagePath);
            using var result = segmenter.Segment(image);
            var boxes = result.Leukocytes.Select(l => l.Box).ToArray();
            found[Path.GetFileNameWithoutExtension(field.ImagePath)] = boxes;
            evaluator.Add(field.ImagePath, field.Leukocytes, boxes);
        }

        var m = evaluator.Metrics();
        Assert.Equal((6, 7, 7, 7), (m.Images, m.Truth, m.Detected, m.TruePositives));
        Assert.True(m.MeanIoU > 0.7, $"mean IoU {m.MeanIoU}");
        // The field with two leukocytes gives two boxes, one on each side of the field.
        var two = found["BloodImage_00010"].OrderBy(b => b.X).ToArray();
        Assert.Equal(2, two.Length);
        Assert.True(two[0].Right < 320 && two[1].X > 240);
    }
}
