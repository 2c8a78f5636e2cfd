using System.CommandLine;
using System.Diagnostics;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs.Models;
using Leuko.Azure.Storage;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko bench serve</c>: the cloud path's throughput, measured from outside as a client sees it. Uploads a burst of
/// images to <c>uploads/</c> of a storage account that <c>leuko serve</c> (or the function app) watches, waits for
/// every image's row to be final, and prints images per second and the upload-to-final latency; a warm-up pass over the
/// same images goes first and is not counted (as in <c>leuko bench analyze</c>). The end of each image
/// is its row's <c>updated</c> time (written by the pipeline, on this machine's clock when serve runs here), so the
/// polling interval does not inflate the figures.
/// </summary>
internal static class ServeBenchmark
{
    /// <summary>Uploads at once: enough to keep a local Azurite busy without making the upload the bottleneck.</summary>
    private const int UploadConcurrency = 8;

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = "Images or folders of images to upload as one burst (e.g. ../shared/data/bccd/JPEGImages).",
            Arity = ArgumentArity.OneOrMore,
        };
        var storage = new Option<string>("--storage")
        {
            Description = "Storage connection string of the account leuko serve (or the function app) watches, e.g. UseDevelopmentStorage=true.",
            Required = true,
        };
        var timeout = new Option<int>("--timeout")
        {
            Description = "Seconds to wait for every image to be final before giving up (the images still pending are listed).",
            DefaultValueFactory = _ => 1800,
        };
        timeout.Validators.Add(r =>
        {
            if (r.TryGetValue<int>(out var v) && v < 1)
            {
                r.AddError("--timeout must be at least 1 second");
            }
        });
        var command = new Command(
            "serve",
            "Images per second and upload-to-final latency (p50, p95) of the cloud path: uploads a burst to a storage account that leuko serve or the function app watches, and waits for every row (after a warm-up pass over the same images, not counted).")
        {
            inputs, storage, timeout,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(inputs), parse.GetRequiredValue(storage), TimeSpan.FromSeconds(parse.GetValue(timeout)),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    internal static async Task<int> RunAsync(
        string[] paths, string connectionString, TimeSpan timeout, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        IReadOnlyList<InputFile> files;
        try
        {
            files = InputFiles.Expand(paths);
        }
        catch (FileNotFoundException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ExitCodes.BadUsage;
        }

        if (files.Count == 0)
        {
            stderr.WriteLine($"error: no images found in {string.Join(", ", paths)} (images are {Leuko.Core.Imaging.ImageFormats.Names})");
            return ExitCodes.BadUsage;
        }

        if (await UploadCommand.ConnectAsync(connectionString, stderr, cancellationToken) is not { } blobs)
        {
            return ExitCodes.BadUsage;
        }

        var rows = new TableResultStore(new TableServiceClient(connectionString));

        // A folder of its own per run: a second run uploads new blobs, never versions of the first run's.
        var folder = $"bench-{DateTime.UtcNow:yyyyMMddTHHmmss}-{Guid.NewGuid().ToString("n")[..6]}";
        var uploads = blobs.GetBlobContainerClient(Containers.Uploads);
        stdout.WriteLine($"Cloud-path benchmark: {files.Count} images to {uploads.Uri}/{folder}/, {Environment.ProcessorCount} cores");

        // Warm-up: one image first, its row awaited (so a storage nobody watches is said at once), then a pass over the
        // others, so that the host's first-burst costs (JIT and tiering of the storage client and the stages, ONNX
        // Runtime, connections, thread-pool growth) are not counted as throughput, as leuko bench analyze leaves out
        // its warm-up pass over the same inputs. Measured: a host's first burst of the 292 BCCD fields cost it 90 CPU
        // ms per image, the next 60.
        var warmUp = $"{folder}/warm-up/{files[0].Name}";
        await uploads.GetBlobClient(warmUp).UploadAsync(files[0].Path, new BlobUploadOptions(), cancellationToken);
        var warming = Stopwatch.StartNew();
        while (await rows.GetImageAsync(PipelineIds.Image(warmUp), cancellationToken) is not { IsFinal: true })
        {
            if (warming.Elapsed > timeout)
            {
                stderr.WriteLine($"error: the warm-up image was not final within {timeout.TotalSeconds:0} s: is leuko serve (or the function app) watching this storage?");
                return ExitCodes.SomeFailed;
            }

            await Task.Delay(PollInterval, cancellationToken);
        }

        var others = files.Skip(1).ToList();
        var (_, warmIds, _) = await UploadAsync($"{folder}/warm-up", others, "warm-up upload");
        await WaitAsync($"{folder}/warm-up", warmIds, "warm-up", warming);

        var clock = Stopwatch.StartNew();
        var (started, ids, failedUploads) = await UploadAsync($"{folder}/burst", files, "upload");
        double uploadSeconds = clock.Elapsed.TotalSeconds;
        var (final, pending) = await WaitAsync($"{folder}/burst", ids, "final", clock);

        async Task<(DateTimeOffset[] Started, string[] Ids, int Failed)> UploadAsync(string under, IReadOnlyList<InputFile> burst, string what)
        {
            var times = new DateTimeOffset[burst.Count];
            var imageIds = burst.Select(f => PipelineIds.Image($"{under}/{f.Name}")).ToArray();
            int failed = 0;
            var uploading = new Progress(what, burst.Count, stderr);
            await Parallel.ForEachAsync(
                Enumerable.Range(0, burst.Count), new ParallelOptions { MaxDegreeOfParallelism = UploadConcurrency, CancellationToken = cancellationToken },
                async (i, ct) =>
                {
                    times[i] = DateTimeOffset.UtcNow;
                    try
                    {
                        await uploads.GetBlobClient($"{under}/{burst[i].Name}").UploadAsync(burst[i].Path, new BlobUploadOptions(), ct);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException or RequestFailedException or AggregateException)
                    {
                        Interlocked.Increment(ref failed);
                        imageIds[i] = "";
                        stderr.WriteLine($"failed: {TerminalText.OneLine(burst[i].Path)}: {e.Message.Split('\n')[0].Trim()}");
                    }

                    uploading.Advance();
                });
            return (times, imageIds, failed);
        }

        // The final rows of the images uploaded under a folder, and how many were not final before the timeout.
        async Task<(ImageRow?[] Final, int Pending)> WaitAsync(string under, string[] imageIds, string what, Stopwatch since)
        {
            var rowsFound = new ImageRow?[imageIds.Length];
            var index = Enumerable.Range(0, imageIds.Length).Where(i => imageIds[i].Length > 0).ToDictionary(i => imageIds[i]);
            int left = index.Count;
            var waiting = new Progress(what, left, stderr);
            while (left > 0 && since.Elapsed < timeout)
            {
                // One query a poll for the rows of this folder that are final: waiting costs the storage (on the same
                // cores, for Azurite) a request or two a second, not a read per image. Each image's end is its row's
                // time, so the polling interval does not lengthen its latency.
                foreach (var row in await rows.FindFinalImagesAsync(under + "/", cancellationToken))
                {
                    if (index.TryGetValue(row.ImageId, out int i) && rowsFound[i] is null)
                    {
                        rowsFound[i] = row;
                        left--;
                        waiting.Advance();
                    }
                }

                if (left > 0)
                {
                    await Task.Delay(PollInterval, cancellationToken);
                }
            }

            return (rowsFound, left);
        }

        var done = Enumerable.Range(0, files.Count).Where(i => final[i] is not null).ToList();
        if (done.Count == 0)
        {
            stderr.WriteLine($"error: no image was final within {timeout.TotalSeconds:0} s: is leuko serve (or the function app) watching this storage?");
            return ExitCodes.SomeFailed;
        }

        var first = started.Where((_, i) => ids[i].Length > 0).Min();
        var last = done.Max(i => final[i]!.Updated);
        double seconds = Math.Max((last - first).TotalSeconds, 1e-3);
        var latencies = done.Select(i => Math.Max((final[i]!.Updated - started[i]).TotalSeconds, 0)).Order().ToList();
        var byStatus = done.GroupBy(i => final[i]!.Status).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}");
        stdout.WriteLine(
            $"  {done.Count / seconds,7:0.00} images/s: {done.Count} final in {seconds:0.0} s from the first upload ({string.Join(", ", byStatus)}); " +
            $"uploads took {uploadSeconds:0.0} s");
        stdout.WriteLine(
            $"      upload-to-final latency: p50 {BenchCommand.Percentile(latencies, 0.5):0.0} s, p95 {BenchCommand.Percentile(latencies, 0.95):0.0} s, max {latencies[^1]:0.0} s");
        var segment = done.Select(i => final[i]!.SegmentMs).OfType<double>().ToList();
        var classify = done.Select(i => final[i]!.ClassifyMs).OfType<double>().ToList();
        stdout.WriteLine(
            $"      per image, as the rows record it: segment {(segment.Count > 0 ? segment.Average() : 0):0} ms, " +
            $"classify {(classify.Count > 0 ? classify.Average() : 0):0} ms, {done.Sum(i => final[i]!.Cells)} cells");

        foreach (var i in Enumerable.Range(0, files.Count).Where(i => ids[i].Length > 0 && final[i] is null))
        {
            stderr.WriteLine($"not final after {timeout.TotalSeconds:0} s: uploads/{folder}/burst/{files[i].Name} (image {ids[i]})");
        }

        return pending > 0 || failedUploads > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
    }
}
