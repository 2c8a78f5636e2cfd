using System.Collections.Concurrent;
using System.Text.Json;
using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline;

/// <summary>
/// One image through the local pipeline: its result, each cell's outline, stage times, and, where the pipeline keeps
/// decoded images (<c>keepDecoded</c>), the image as segmented (oriented), for drawing without decoding it again: the
/// caller owns and disposes it; null when it was not kept (not asked, not decoded, or over the pipeline's budget).
/// </summary>
public sealed record LocalImage(ImageResult Result, IReadOnlyList<OpenCvSharp.Point[]> Contours, double SegmentMs, double ClassifyMs, OpenCvSharp.Mat? Decoded = null);

/// <summary>
/// The cloud pipeline in one process, for <c>leuko analyze</c>: the same segmentation and classification stages, with
/// blobs, results and the classification queue in memory. At most <c>parallel</c> images are segmented at once; while
/// they are, the cells of the images waiting for classification are classified together (<see cref="CellBatcher"/>),
/// which costs less per cell and gives every cell the answer it would have alone, so results do not depend on how many
/// images run at once. Thread-safe: call <see cref="AnalyzeAsync"/> from up to <see cref="InFlight"/> workers.
/// </summary>
public sealed class LocalPipeline : IAsyncDisposable
{
    /// <summary>Images in flight per core's worth of segmentation: the others wait for classification, and are batched.</summary>
    public const int InFlightPerWorker = 4;

    /// <summary>
    /// The most pixel memory held in decoded images waiting for classification (<c>keepDecoded</c>): 256 MiB, every
    /// image in flight up to about 11 megapixels each on two cores; an image beyond it is decoded again to be drawn.
    /// </summary>
    public const long MaxDecodedBytes = 256L * 1024 * 1024;

    private readonly SemaphoreSlim _segmenting;
    private readonly InMemoryBlobStore _blobs = new();
    private readonly InMemoryResultStore _results = new();
    private readonly InMemoryTransport _transport;
    private readonly SegmentationStage _segmentation;
    private readonly ClassificationStage _classification;
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _classifying = new();
    private readonly ConcurrentDictionary<string, OpenCvSharp.Mat> _decoded = new();
    private long _decodedBytes;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _consumer;

    /// <param name="scale">The scale of every image (<c>--microns-per-pixel</c>); null: each image's own estimate.</param>
    /// <param name="keepDecoded">Give each image back decoded (<see cref="LocalImage.Decoded"/>), for a caller that draws it.</param>
    public LocalPipeline(LeukocyteSegmenter segmenter, LeukocyteClassifier classifier, int parallel, Leuko.Core.Scale.ImageScale? scale = null, bool keepDecoded = false)
    {
        Classes = CellClasses.Of(classifier.Card);
        InFlight = parallel * InFlightPerWorker;
        _segmenting = new SemaphoreSlim(parallel);
        _transport = new InMemoryTransport(InFlight);
        _segmentation = new SegmentationStage(_blobs, _results, _transport, segmenter, Classes.All, CropFormat.Bmp, scale: scale,
            decoded: keepDecoded ? Keep : null);
        // In one process a retry would fail the same way; one model call per worker, as the session's threads are set.
        _classification = new ClassificationStage(_blobs, _results, classifier, maxAttempts: 1, modelCalls: parallel);
        _consumer = _transport.RunAsync(HandleAsync, _stop.Token);
    }

    public CellClasses Classes { get; }

    /// <summary>How many images may be given to <see cref="AnalyzeAsync"/> at once.</summary>
    public int InFlight { get; }

    /// <summary>Blobs, rows and decoded images held in memory: none once every image given to <see cref="AnalyzeAsync"/> has returned.</summary>
    public int Held => _blobs.Count + _results.Count + _decoded.Count;

    private async Task<MessageResult> HandleAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        var result = await _classification.HandleAsync(message, cancellationToken);
        var imageId = JsonSerializer.Deserialize<ClassificationMessage>(message.Body.Span, PipelineJson.Options)?.ImageId;
        if (imageId is not null && _classifying.TryGetValue(imageId, out var done))
        {
            done.TrySetResult(); // completed, or failed by the stage: final either way
        }

        return result;
    }

    /// <summary>Keeps a copy of an image as segmented, within <see cref="MaxDecodedBytes"/>.</summary>
    private void Keep(string imageId, OpenCvSharp.Mat image)
    {
        long bytes = image.Total() * image.ElemSize();
        if (Interlocked.Add(ref _decodedBytes, bytes) > MaxDecodedBytes)
        {
            Interlocked.Add(ref _decodedBytes, -bytes);
            return;
        }

        var copy = image.Clone();
        if (_decoded.TryGetValue(imageId, out var earlier) && _decoded.TryUpdate(imageId, copy, earlier))
        {
            Release(earlier); // segmented again (a lost write): the last pass's pixels are the image's
        }
        else if (!_decoded.TryAdd(imageId, copy))
        {
            Release(copy);
        }
    }

    /// <summary>The kept image of <paramref name="imageId"/>, no longer held here (the caller owns it); null if none.</summary>
    private OpenCvSharp.Mat? TakeDecoded(string imageId)
    {
        if (!_decoded.TryRemove(imageId, out var image))
        {
            return null;
        }

        Interlocked.Add(ref _decodedBytes, -image.Total() * image.ElemSize());
        return image;
    }

    private void Release(OpenCvSharp.Mat image)
    {
        Interlocked.Add(ref _decodedBytes, -image.Total() * image.ElemSize());
        image.Dispose();
    }

    /// <summary>
    /// Analyses one image: segmentation, then (through the in-memory queue) classification; returns once the image is
    /// final. <paramref name="name"/> must be unique in the run.
    /// </summary>
    public async Task<LocalImage> AnalyzeAsync(string name, string source, byte[] data, CancellationToken cancellationToken)
    {
        var imageId = PipelineIds.Image(name);
        var classified = _classifying.GetOrAdd(imageId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await _blobs.PutAsync(Containers.Uploads, name, data, "application/octet-stream",
                new Dictionary<string, string> { [Containers.SourceKey] = Uri.EscapeDataString(source) }, cancellationToken);
            ImageRow row;
            await _segmenting.WaitAsync(cancellationToken);
            try
            {
                row = await _segmentation.ProcessAsync(name, null, cancellationToken);
            }
            finally
            {
                _segmenting.Release();
            }

            if (row.Status == ImageRow.Classifying)
            {
                await classified.Task.WaitAsync(cancellationToken);
                row = (await _results.GetImageAsync(imageId, cancellationToken))!;
            }

            var cells = row is { Status: ImageStatus.Completed, BlobETag: { } version } ? await _results.GetCellsAsync(imageId, version, cancellationToken) : [];
            var result = new ImageResult(
                row.Source, row.Status, row.Error, row.Width, row.Height,
                cells.Select(c => c.ToResult()).ToList(),
                Classes.Count(cells.Select(c => c.Class)), Classes.CountOthers(cells.Select(c => c.Class)), row.Scale, row.Orientation);
            return new LocalImage(result, cells.Select(c => Contours.Parse(c.Contour)).ToList(), row.SegmentMs ?? 0, row.ClassifyMs ?? 0,
                row.Status == ImageStatus.Failed ? null : TakeDecoded(imageId));
        }
        finally
        {
            TakeDecoded(imageId)?.Dispose(); // not given back (failed, or an exception)
            // Nothing of a final image stays behind: memory is flat in the number of images.
            _classifying.TryRemove(imageId, out _);
            _blobs.Delete(Containers.Uploads, name);
            _blobs.DeletePrefix(Containers.Crops, imageId + "/"); // every version's crop folder
            _results.DeleteImage(imageId);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _transport.Complete();
        await _stop.CancelAsync();
        try
        {
            await _consumer;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        _segmenting.Dispose();
    }
}
