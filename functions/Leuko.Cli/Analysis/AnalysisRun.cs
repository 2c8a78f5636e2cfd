using System.Diagnostics;
using System.Threading.Channels;
using Leuko.Core.Imaging;
using Leuko.Pipeline;
using Leuko.Pipeline.Archives;
using OpenCvSharp;

namespace Leuko.Cli.Analysis;

/// <summary>
/// Time spent in each stage, summed over all images (seconds of work on all workers, not wall clock): reading files and
/// inflating archive entries, decoding and segmentation, classification (preprocessing and inference), and drawing
/// and writing the annotated image (from the image as segmented, kept by the pipeline, or decoded again beyond its budget).
/// </summary>
internal sealed record StageSeconds(double Read, double Segment, double Classify, double Annotate);

/// <summary>
/// The outcome of a run (each image went to the <see cref="OrderedResults"/> as it finished): <paramref name="NotAnalysed"/>
/// images of the plan were not, when it was stopped.
/// </summary>
internal sealed record RunOutcome(StageSeconds Stages, TimeSpan Elapsed, int NotAnalysed = 0);

/// <summary>
/// Runs the pipeline over a plan: one reader (files and archive entries, in order: a zip is read sequentially) feeds a
/// bounded queue; workers each take an image through the cloud's stages in memory (<see cref="LocalPipeline"/>:
/// segmentation, <c>parallel</c> at a time, the classification queue, classification batched across the images waiting)
/// and draw it. A cell's classification does not depend on the cells it is batched with, so the results do not depend
/// on scheduling or on <c>parallel</c>.
/// Each image goes to <paramref name="results"/> as it finishes, with the path of its annotated copy; nothing of it is
/// kept here, so memory does not grow with the number of images.
/// </summary>
internal static class AnalysisRun
{
    /// <param name="stop">Stops the run (Ctrl+C): no further image is read, and the images already read are analysed
    /// and handed on, so the results hold every image before the first not read, in input order, and nothing half done.</param>
    public static async Task<RunOutcome> ExecuteAsync(
        AnalysisPlan plan, LocalPipeline pipeline, string outputDir, int parallel, bool annotate, OrderedResults results,
        Action<ImageResult> progress, CancellationToken stop)
    {
        var queue = Channel.CreateBounded<(PlannedImage Image, byte[]? Data, string? Error)>(
            new BoundedChannelOptions(parallel * 2) { SingleWriter = true });
        long readTicks = 0, segmentTicks = 0, classifyTicks = 0, annotateTicks = 0;
        int analysed = 0;
        var clock = Stopwatch.StartNew();
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(stop);

        var reader = Task.Run(async () =>
        {
            try
            {
                foreach (var image in plan.Images)
                {
                    await results.EnterAsync(stopReading.Token);
                    long t0 = Stopwatch.GetTimestamp();
                    var (data, error) = Read(image);
                    Interlocked.Add(ref readTicks, Stopwatch.GetElapsedTime(t0).Ticks);
                    // An image read is always analysed (the workers drain the queue), so the results stay a prefix of the inputs.
                    await queue.Writer.WriteAsync((image, data, error), CancellationToken.None);
                }
            }
            catch (OperationCanceledException) when (stopReading.IsCancellationRequested)
            {
            }
            finally
            {
                queue.Writer.Complete();
            }
        }, CancellationToken.None);

        try
        {
            // The images read are finished whatever happens to the run: each is in memory and takes a fraction of a second.
            await Parallel.ForEachAsync(
                queue.Reader.ReadAllAsync(CancellationToken.None),
                new ParallelOptions { MaxDegreeOfParallelism = pipeline.InFlight },
                async (item, ct) =>
                {
                    var (image, data, error) = item;
                    ImageResult result;
                    string? annotated = null;
                    if (data is null)
                    {
                        result = ImageResult.Failure(image.Source, error!, pipeline.Classes);
                    }
                    else
                    {
                        try
                        {
                            var local = await pipeline.AnalyzeAsync(image.Name, image.Source, data, ct);
                            using var decoded = local.Decoded;
                            Interlocked.Add(ref segmentTicks, TimeSpan.FromMilliseconds(local.SegmentMs).Ticks);
                            Interlocked.Add(ref classifyTicks, TimeSpan.FromMilliseconds(local.ClassifyMs).Ticks);
                            result = local.Result;
                            if (annotate && result.Status != ImageStatus.Failed)
                            {
                                long t0 = Stopwatch.GetTimestamp();
                                annotated = WriteAnnotated(outputDir, image.Name, data, local, pipeline.Classes);
                                Interlocked.Add(ref annotateTicks, Stopwatch.GetElapsedTime(t0).Ticks);
                            }
                        }
                        catch (Exception e) when (e is not OperationCanceledException)
                        {
                            // One image must never stop a run of thousands: an unexpected error fails that image, with its cause.
                            result = ImageResult.Failure(image.Source, $"analysis failed: {e.GetType().Name}: {e.Message}", pipeline.Classes);
                        }
                    }

                    results.Add(image.Index, ImageRecord.From(result, annotated));
                    Interlocked.Increment(ref analysed);
                    progress(result);
                });
        }
        catch
        {
            await stopReading.CancelAsync(); // the reader may wait for room in the window that will never come
            throw;
        }

        await reader;

        return new RunOutcome(
            new StageSeconds(Seconds(readTicks), Seconds(segmentTicks), Seconds(classifyTicks), Seconds(annotateTicks)), clock.Elapsed, plan.Images.Count - analysed);
    }

    private static (byte[]? Data, string? Error) Read(PlannedImage image)
    {
        if (image.Error is not null)
        {
            return (null, image.Error);
        }

        try
        {
            return image.File is not null
                ? (ImageFile.ReadAll(image.File), null)
                : (image.Archive!.Read(image.Entry!), null);
        }
        catch (FileNotFoundException)
        {
            return (null, InputFiles.Gone);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArchiveEntryException or InvalidImageException)
        {
            return (null, e.Message);
        }
    }

    /// <summary>Writes <c>annotated/NAME.jpg</c> and returns its path relative to the output folder.</summary>
    private static string WriteAnnotated(string outputDir, string name, byte[] data, LocalImage local, CellClasses classes)
    {
        // The image as segmented, when the pipeline kept it (LocalPipeline keepDecoded), else decoded again.
        using var again = local.Decoded is null ? ImageDecoder.Decode(data) : null;
        using var drawn = Annotator.Draw(local.Decoded ?? again!, local.Result.Cells, local.Contours, classes.All);
        var relative = $"annotated/{Path.ChangeExtension(name, ".jpg")}";
        var path = Path.GetFullPath(Path.Combine(outputDir, relative));
        if (!path.StartsWith(Path.GetFullPath(outputDir) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"output name '{name}' leaves the output folder"); // names are checked when planned; this is the last guard
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Cv2.ImEncode(".jpg", drawn, out var jpeg, new ImageEncodingParam(ImwriteFlags.JpegQuality, 90));
        File.WriteAllBytes(path, jpeg);
        return relative;
    }

    private static double Seconds(long timeSpanTicks) => Math.Round(TimeSpan.FromTicks(timeSpanTicks).TotalSeconds, 3);
}
