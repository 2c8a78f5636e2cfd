using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using OpenCvSharp;
using Leuko.Tests;

namespace Leuko.Pipeline.Tests;

public sealed class ImageAnalyzerTests : IDisposable
{
    private readonly LeukocyteClassifier _classifier = LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath);

    private ImageAnalyzer Analyzer => new(new LeukocyteSegmenter(), _classifier);

    public void Dispose() => _classifier.Dispose();

    [Fact]
    public void ASmearFieldIsSegmentedClassifiedAndCounted()
    {
        using var analysed = Analyzer.Analyze("BloodImage_00000.jpg", Zips.SampleBytes());
        var r = analysed.Result;
        Assert.Equal(ImageStatus.Completed, r.Status);
        Assert.Null(r.Error);
        Assert.Equal((640, 480), (r.Width, r.Height));
        var cell = Assert.Single(r.Cells);
        Assert.Equal("NEUTROPHIL", cell.Class); // the annotated class of the sample's only leukocyte
        Assert.Equal(cell.Probabilities[cell.Class], cell.Confidence);
        Assert.Equal(1.0, cell.Probabilities.Values.Sum(), 2);
        Assert.Equal(1, r.Differential["NEUTROPHIL"].Count);
        Assert.Equal(100, r.Differential["NEUTROPHIL"].Percent);
        Assert.Single(analysed.Contours);
    }

    [Fact]
    public void BadBytesFailWithTheReasonInsteadOfThrowing()
    {
        using var analysed = Analyzer.Analyze("notes.jpg", "not an image"u8.ToArray());
        Assert.Equal(ImageStatus.Failed, analysed.Result.Status);
        Assert.False(string.IsNullOrWhiteSpace(analysed.Result.Error));
        Assert.Empty(analysed.Result.Cells);
        Assert.Null(analysed.Image);
        Assert.Equal(4, analysed.Result.Differential.Count);
    }

    [Fact]
    public void AFieldWithoutLeukocytesIsNotAFailure()
    {
        using var plasma = new Mat(480, 640, MatType.CV_8UC3, new Scalar(215, 205, 225));
        Cv2.ImEncode(".png", plasma, out var png);
        using var analysed = Analyzer.Analyze("empty.png", png);
        Assert.Equal(ImageStatus.NoLeukocytes, analysed.Result.Status);
        Assert.Empty(analysed.Result.Cells);
    }

    [Fact]
    public void TheAnnotationOutlinesEachCellInItsClassColour()
    {
        using var analysed = Analyzer.Analyze("BloodImage_00000.jpg", Zips.SampleBytes());
        using var drawn = Annotator.Draw(analysed.Image!, analysed.Result.Cells, analysed.Contours, Analyzer.Classes);
        Assert.Equal(analysed.Image!.Size(), drawn.Size());
        var point = analysed.Contours[0][0];
        var pixel = drawn.At<Vec3b>(point.Y, point.X);
        Assert.Equal(new Vec3b(0x60, 0xAE, 0x27), pixel); // NEUTROPHIL #27AE60 in BGR
        Assert.NotEqual(pixel, analysed.Image!.At<Vec3b>(point.Y, point.X));
    }
}
