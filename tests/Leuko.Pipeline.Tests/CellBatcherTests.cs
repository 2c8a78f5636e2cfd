using Leuko.Core.Classification;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;
using Leuko.Pipeline.Stages;
using OpenCvSharp;

namespace Leuko.Pipeline.Tests;

public sealed class CellBatcherTests : IDisposable
{
    private readonly LeukocyteClassifier _classifier = LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath);
    private readonly List<Mat> _crops = [];

    public CellBatcherTests()
    {
        // Real cells: every leukocyte of the committed sample fields and single-cell images.
        var segmenter = new LeukocyteSegmenter();
        var samples = Path.Combine(AppContext.BaseDirectory, "samples");
        foreach (var file in Directory.EnumerateFiles(samples, "*.jpg", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            using var image = ImageDecoder.DecodeFile(file);
            using var result = segmenter.Segment(image);
            _crops.AddRange(result.Leukocytes.Select(l => l.Crop.Clone()));
        }
    }

    public void Dispose()
    {
        _crops.ForEach(c => c.Dispose());
        _classifier.Dispose();
    }

    [Fact]
    public async Task Each_callers_field_reaches_the_classifier_with_its_own_crops_and_survives_the_message()
    {
        using var image = ImageDecoder.DecodeFile(Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "samples"), "*.jpg", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First());
        using var result = new LeukocyteSegmenter().Segment(image);
        var familiar = result.Field;
        Assert.True(_classifier.FieldStainDistance(familiar) <= 1);
        // the same field under a bluer lamp, as no training microscope shows it
        var strange = familiar with { WhiteBgr = [255, familiar.WhiteBgr[1] * 0.8, familiar.WhiteBgr[2] * 0.7], RedBgr = [familiar.RedBgr[0], familiar.RedBgr[1] * 0.7, familiar.RedBgr[2] * 0.6] };
        Assert.True(_classifier.FieldStainDistance(strange) > 1);

        // the field travels in the classification message (JSON) as segmentation measured it
        var manifest = new CropManifest("i", "s", "u", null, "e", 1, 1, 0, []) { Field = strange };
        var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new ClassificationMessage("i", "m") { Contents = manifest }, PipelineJson.Options);
        var read = System.Text.Json.JsonSerializer.Deserialize<ClassificationMessage>(json, PipelineJson.Options)!.Contents!.Field!;
        Assert.Equal(strange.WhiteBgr, read.WhiteBgr);
        Assert.Equal(strange.RedBgr, read.RedBgr);
        Assert.Equal((strange.WhitePixels, strange.RedPixels), (read.WhitePixels, read.RedPixels));

        var crops = _crops.Take(6).ToList();
        var batcher = new CellBatcher(_classifier, runners: 1);
        var both = await Task.WhenAll(batcher.ClassifyAsync(crops[..3], familiar), batcher.ClassifyAsync(crops[3..], read));
        Assert.Equal(_classifier.Classify(crops[..3], [familiar, familiar, familiar]).Select(c => c.ReviewReason), both[0].Cells.Select(c => c.ReviewReason));
        Assert.All(both[1].Cells, c => Assert.True(c.ReviewReason is ReviewReasons.UnfamiliarStain or ReviewReasons.OtherCell or ReviewReasons.PossibleOtherCell, c.ReviewReason));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task ConcurrentCallersGetExactlyTheAnswersEachCellGetsAlone(int runners)
    {
        Assert.True(_crops.Count >= 20, $"the samples give {_crops.Count} cells");
        var alone = _crops.Select(c => _classifier.Classify(c)).ToList();
        var batcher = new CellBatcher(_classifier, runners);

        // Callers of 1 to 5 cells at once, more than one call's worth in all: batched in whatever groups they arrive in.
        var requests = new List<(int Offset, Task<BatchedClassification> Task)>();
        for (int offset = 0, size = 1; offset < _crops.Count; offset += size, size = (size % 5) + 1)
        {
            var part = _crops.Skip(offset).Take(size).ToList();
            requests.Add((offset, batcher.ClassifyAsync(part)));
        }

        await Task.WhenAll(requests.Select(r => r.Task));
        foreach (var (offset, task) in requests)
        {
            var answer = await task;
            Assert.True(answer.Milliseconds >= 0);
            for (int i = 0; i < answer.Cells.Count; i++)
            {
                var expected = alone[offset + i];
                Assert.Equal(expected.Label, answer.Cells[i].Label);
                Assert.Equal(expected.ReviewReason, answer.Cells[i].ReviewReason);
                Assert.Equal(expected.Probabilities, answer.Cells[i].Probabilities); // bit for bit
            }
        }

        Assert.Equal(_crops.Count, requests.Sum(r => r.Task.Result.Cells.Count));
    }

    [Fact]
    public async Task ACallerWhoseCropsTheModelRefusesFailsAloneAndTheOthersInItsCallAreAnswered()
    {
        var batcher = new CellBatcher(_classifier);
        using var notAnImage = new Mat(10, 10, MatType.CV_8UC1, Scalar.All(0)); // the classifier refuses a one-channel crop
        var callers = Enumerable.Range(0, 6)
            .Select(i => batcher.ClassifyAsync(i == 3 ? [notAnImage] : [_crops[i]]))
            .ToList();

        await Assert.ThrowsAsync<ArgumentException>(() => callers[3]);
        foreach (int i in new[] { 0, 1, 2, 4, 5 })
        {
            Assert.Equal(_classifier.Classify(_crops[i]).Probabilities, (await callers[i]).Cells[0].Probabilities);
        }

        Assert.Equal(_classifier.Classify(_crops[6]).Probabilities, (await batcher.ClassifyAsync([_crops[6]])).Cells[0].Probabilities);
    }
}
