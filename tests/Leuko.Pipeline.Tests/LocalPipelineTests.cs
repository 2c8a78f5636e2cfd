using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using OpenCvSharp;

namespace Leuko.Pipeline.Tests;

/// <summary>The cloud's stages in one process, over the in-memory blobs, results and queue (what leuko analyze runs).</summary>
public sealed class LocalPipelineTests : IDisposable
{
    private readonly LeukocyteClassifier _classifier = LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath);

    public void Dispose() => _classifier.Dispose();

    [Fact]
    public async Task ASmearFieldIsSegmentedClassifiedAndCounted()
    {
        await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 2);
        var local = await pipeline.AnalyzeAsync("a/BloodImage_00000.jpg", "samples/BloodImage_00000.jpg", Zips.SampleBytes(), CancellationToken.None);
        var r = local.Result;
        Assert.Equal(ImageStatus.Completed, r.Status);
        Assert.Equal("samples/BloodImage_00000.jpg", r.Source);
        Assert.Null(r.Error);
        Assert.Equal((640, 480), (r.Width, r.Height));
        var cell = Assert.Single(r.Cells);
        // The sample's only leukocyte is annotated NEUTROPHIL: the model says so, or the cell goes to a person.
        Assert.True(cell.Class == "NEUTROPHIL" || cell.NeedsReview, $"accepted as {cell.Class} ({cell.Confidence:0.00})");
        Assert.Equal(cell.Probabilities[cell.Class], cell.Confidence);
        Assert.Equal(1.0, cell.Probabilities.Values.Sum(), 2);
        Assert.Equal(new ClassCount(1, 100, 2.5, 100), r.Differential[cell.Class]);
        Assert.True(Assert.Single(local.Contours).Length >= 8);
        Assert.True(local.SegmentMs > 0 && local.ClassifyMs > 0);
    }

    [Fact]
    public async Task ManyImagesAtOnceGiveTheResultsOfOneAtATime()
    {
        var images = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "samples"), "*.jp*g", SearchOption.AllDirectories).Order().ToList();
        async Task<List<string>> RunAsync(int parallel)
        {
            await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, parallel);
            var tasks = images.Select(f => pipeline.AnalyzeAsync(Path.GetFileName(f), f, File.ReadAllBytes(f), CancellationToken.None));
            return (await Task.WhenAll(tasks)).Select(l => System.Text.Json.JsonSerializer.Serialize(l.Result)).ToList();
        }

        Assert.Equal(await RunAsync(1), await RunAsync(4));
    }

    [Fact]
    public async Task NothingOfAFinalImageIsHeld()
    {
        // leuko analyze over 100,000 images must hold what it holds over 1,000: no blob or row outlives its image.
        var images = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "samples"), "*.jp*g", SearchOption.AllDirectories).Order().ToList();
        await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 2);
        foreach (var f in images.Take(3))
        {
            Assert.Equal(ImageStatus.Completed, (await pipeline.AnalyzeAsync(Path.GetFileName(f), f, File.ReadAllBytes(f), CancellationToken.None)).Result.Status);
            Assert.Equal(0, pipeline.Held);
        }

        Assert.Equal(ImageStatus.Failed, (await pipeline.AnalyzeAsync("notes.jpg", "notes.jpg", "not an image"u8.ToArray(), CancellationToken.None)).Result.Status);
        Assert.Equal(0, pipeline.Held);

        await Task.WhenAll(images.Select(f => pipeline.AnalyzeAsync("again/" + Path.GetFileName(f), f, File.ReadAllBytes(f), CancellationToken.None)));
        Assert.Equal(0, pipeline.Held);
    }

    [Fact]
    public async Task TheImageGivenBackForDrawingIsTheDecodedUploadInItsViewedOrientation()
    {
        // leuko analyze draws on the image segmentation decoded rather than decoding it again: the same pixels as a
        // fresh decode, EXIF orientation applied, owned by the caller; nothing of it stays in the pipeline.
        var sideways = Exif.Jpeg(Zips.SampleBytes(), 6);
        await using (var keeping = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 1, keepDecoded: true))
        {
            var local = await keeping.AnalyzeAsync("sideways.jpg", "sideways.jpg", sideways, CancellationToken.None);
            using var decoded = local.Decoded;
            Assert.NotNull(decoded);
            using var fresh = Leuko.Core.Imaging.ImageDecoder.Decode(sideways);
            Assert.Equal((480, 640), (decoded.Width, decoded.Height)); // turned as viewers show it
            Assert.Equal(0, Cv2.Norm(fresh, decoded, NormTypes.INF));
            Assert.Equal(0, keeping.Held);

            Assert.Null((await keeping.AnalyzeAsync("notes.jpg", "notes.jpg", "not an image"u8.ToArray(), CancellationToken.None)).Decoded);
            Assert.Equal(0, keeping.Held);
        }

        await using var plain = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 1);
        Assert.Null((await plain.AnalyzeAsync("sideways.jpg", "sideways.jpg", sideways, CancellationToken.None)).Decoded);
    }

    [Fact]
    public async Task BadBytesFailWithTheReason()
    {
        await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 1);
        var r = (await pipeline.AnalyzeAsync("notes.jpg", "notes.jpg", "not an image"u8.ToArray(), CancellationToken.None)).Result;
        Assert.Equal(ImageStatus.Failed, r.Status);
        Assert.False(string.IsNullOrWhiteSpace(r.Error));
        Assert.Empty(r.Cells);
        Assert.Equal(5, r.Differential.Count); // the five-part differential, every class listed
        Assert.All(r.OtherCells.Values, n => Assert.Equal(0, n));
    }

    [Fact]
    public async Task AFieldWithoutLeukocytesIsNotAFailure()
    {
        using var plasma = new Mat(480, 640, MatType.CV_8UC3, new Scalar(215, 205, 225));
        Cv2.ImEncode(".png", plasma, out var png);
        await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 1);
        var r = (await pipeline.AnalyzeAsync("empty.png", "empty.png", png, CancellationToken.None)).Result;
        Assert.Equal(ImageStatus.NoLeukocytes, r.Status);
        Assert.Empty(r.Cells);
    }

    [Fact]
    public async Task TheAnnotationOutlinesEachCellInItsClassColour()
    {
        await using var pipeline = new LocalPipeline(new LeukocyteSegmenter(), _classifier, 1);
        var data = Zips.SampleBytes();
        var local = await pipeline.AnalyzeAsync("field.jpg", "field.jpg", data, CancellationToken.None);
        using var image = Cv2.ImDecode(data, ImreadModes.Color);
        using var drawn = Annotator.Draw(image, local.Result.Cells, local.Contours, pipeline.Classes.All);
        Assert.Equal(image.Size(), drawn.Size());
        var point = local.Contours[0][0];
        int rgb = Convert.ToInt32(Annotator.ColourOf(local.Result.Cells[0].Class, pipeline.Classes.All)[1..], 16);
        Assert.Equal(new Vec3b((byte)rgb, (byte)(rgb >> 8), (byte)(rgb >> 16)), drawn.At<Vec3b>(point.Y, point.X)); // the class's colour, in BGR
        Assert.NotEqual(drawn.At<Vec3b>(point.Y, point.X), image.At<Vec3b>(point.Y, point.X));
    }

    [Fact]
    public async Task TheInMemoryTransportRedeliversRetriesAndKeepsDeadLetters()
    {
        var transport = new InMemoryTransport(2);
        await transport.SendAsync(new OutgoingMessage("a", new byte[] { 1 }, new Dictionary<string, string>()), CancellationToken.None);
        await transport.SendAsync(new OutgoingMessage("b", new byte[] { 2 }, new Dictionary<string, string>()), CancellationToken.None);
        transport.Complete();
        var deliveries = new System.Collections.Concurrent.ConcurrentQueue<(string, int)>();
        await transport.RunAsync((m, _) =>
        {
            deliveries.Enqueue((m.MessageId, m.DeliveryCount));
            return Task.FromResult(m.MessageId == "a"
                ? (m.DeliveryCount < 3 ? new MessageResult(MessageOutcome.Retry) : MessageResult.Completed)
                : new MessageResult(MessageOutcome.DeadLetter, "poison"));
        }, CancellationToken.None);

        Assert.Equal([("a", 1), ("a", 2), ("a", 3)], deliveries.Where(d => d.Item1 == "a"));
        Assert.Equal("b", Assert.Single(transport.DeadLetters).MessageId);
        Assert.Equal(0, transport.Pending);
    }

    [Fact]
    public async Task TheClassificationStageDeadLettersAMalformedMessage()
    {
        var stage = new ClassificationStage(new InMemoryBlobStore(), new InMemoryResultStore(), _classifier);
        var result = await stage.HandleAsync(new ReceivedMessage("x", "{not json"u8.ToArray(), 1, new Dictionary<string, string>()), CancellationToken.None);
        Assert.Equal(MessageOutcome.DeadLetter, result.Outcome);
        Assert.StartsWith("malformed message", result.Reason);
    }
}
