using System.CommandLine;
using System.Diagnostics;
using Leuko.Core.Classification;
using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Cli.Commands;

/// <summary><c>leuko bench</c>: throughput figures, printed (never asserted in tests: machines are shared and noisy).</summary>
internal static class BenchCommand
{
    /// <summary>A bench's <c>--seconds</c>: how long to measure, above 0 (NaN, 0 or less measured nothing and printed it).</summary>
    private static Option<double> SecondsOption(string description, double seconds)
    {
        var option = new Option<double>("--seconds") { Description = description, DefaultValueFactory = _ => seconds };
        option.Validators.Add(r =>
        {
            if (r.TryGetValue<double>(out var v) && !(v > 0 && v <= 24 * 3600))
            {
                r.AddError("--seconds must be above 0 (and at most a day)");
            }
        });
        return option;
    }

    public static Command Create() =>
        new("bench", "Measure throughput on this machine.")
        {
            CreateAnalysis(),
            CreateMemory(),
            CreateSegmentation(),
            CreateClassification(),
            ServeBenchmark.Create(),
            StorageBenchmark.Create(),
        };

    private static Command CreateAnalysis()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = "Images, folders or zip archives to analyse again and again (e.g. ../shared/data/bccd/JPEGImages).",
            Arity = ArgumentArity.OneOrMore,
        };
        var seconds = SecondsOption("Minimum time to measure each parallelism.", 20);
        var parallel = new Option<int[]>("--parallel")
        {
            Description = "Parallelisms to measure (default: 1 and the number of cores).",
            DefaultValueFactory = _ => Environment.ProcessorCount > 1 ? [1, Environment.ProcessorCount] : [1],
            AllowMultipleArgumentsPerToken = true,
        };
        parallel.Validators.Add(r =>
        {
            if (r.TryGetValue<int[]>(out var values) && values is not null && values.Any(v => v is < 1 or > 256))
            {
                r.AddError("--parallel takes parallelisms between 1 and 256"); // as leuko analyze --parallel
            }
        });
        var profileImages = new Option<int>("--profile-images")
        {
            Description = "Images (of the first in the inputs) whose CPU time is profiled stage by stage on one thread; 0: no profile.",
            DefaultValueFactory = _ => 100,
        };
        profileImages.Validators.Add(r =>
        {
            if (r.TryGetValue<int>(out var v) && v < 0)
            {
                r.AddError("--profile-images must be 0 or more");
            }
        });
        var model = EvaluateClassification.ModelOption();
        var command = new Command("analyze", "End-to-end images per second of leuko analyze (read, decode, segment, classify, annotate, write results and report), with where the time goes.")
        {
            inputs, seconds, parallel, profileImages, model,
        };
        command.SetAction((parse, ct) => RunAnalysis(
            parse.GetRequiredValue(inputs), parse.GetValue(seconds), parse.GetRequiredValue(parallel), parse.GetValue(profileImages), parse.GetRequiredValue(model),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    private static async Task<int> RunAnalysis(
        string[] inputs, double seconds, int[] parallels, int profileImages, string modelPath, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        string[] formats = ["json", "csv", "html"];
        var scratch = Directory.CreateTempSubdirectory("leuko-bench-");
        try
        {
            using (var probe = Analysis.AnalysisPlan.Create(inputs, Leuko.Pipeline.Archives.ArchiveLimits.Default))
            {
                if (probe.Images.Count == 0)
                {
                    stderr.WriteLine("error: no images in the inputs given");
                    return ExitCodes.BadUsage;
                }

                stdout.WriteLine($"End-to-end benchmark: {probe.Images.Count} images per pass, {Environment.ProcessorCount} cores");
            }

            foreach (int parallel in parallels)
            {
                // As leuko analyze --parallel N loads it.
                using var sessionOptions = LeukocyteClassifier.SessionOptionsFor(parallel);
                using var classifier = EvaluateClassification.LoadClassifier(modelPath, stderr, sessionOptions);
                if (classifier is null)
                {
                    return ExitCodes.BadUsage;
                }

                // Warm-up pass: first-call costs (ONNX Runtime, OpenCV, JIT) are not throughput.
                using (var warm = Analysis.AnalysisPlan.Create(inputs, Leuko.Pipeline.Archives.ArchiveLimits.Default))
                {
                    await AnalyzeCommand.AnalyzeAsync(warm, classifier, Path.Combine(scratch.FullName, $"warm-up-{parallel}"), formats, parallel, _ => { }, ct);
                }

                int images = 0, passes = 0;
                double read = 0, segment = 0, classify = 0, annotate = 0, reports = 0;
                var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed.TotalSeconds < seconds)
                {
                    if (ct.IsCancellationRequested)
                    {
                        stderr.WriteLine("interrupted: no figure is printed for a measurement stopped before its time");
                        return ExitCodes.Interrupted; // a stopped pass finishes the images it read; the bench stops with it
                    }

                    using var plan = Analysis.AnalysisPlan.Create(inputs, Leuko.Pipeline.Archives.ArchiveLimits.Default);
                    var output = Path.Combine(scratch.FullName, $"p{parallel}-{passes++}");
                    var passStart = clock.Elapsed;
                    var summary = (await AnalyzeCommand.AnalyzeAsync(plan, classifier, output, formats, parallel, _ => { }, ct)).Summary;
                    var st = summary.StageSeconds;
                    images += summary.Images;
                    (read, segment, classify, annotate) = (read + st.Read, segment + st.Segment, classify + st.Classify, annotate + st.Annotate);
                    reports += (clock.Elapsed - passStart).TotalSeconds - summary.Seconds; // finishing results.json, .csv, report.html
                    Directory.Delete(output, recursive: true);
                }

                double wall = clock.Elapsed.TotalSeconds;
                double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
                double work = read + segment + classify + annotate;
                stdout.WriteLine($"  --parallel {parallel}: {images / wall,7:0.0} images/s, model {classifier.Card.Name} {classifier.Card.Version} ({images} images, {passes} passes, {wall:0.0} s)");
                stdout.WriteLine(
                    $"      per image: read {Ms(read)}, decode+segment {Ms(segment)}, classify {Ms(classify)}, annotate+write {Ms(annotate)} ms; " +
                    $"results and report {Ms(reports)} ms; the stages are {work / ((wall - reports) * parallel) * 100:0}% of the workers' time " +
                    "(the rest: hand-offs between the stages through the in-memory blobs, queue and tables)");
                stdout.WriteLine($"      process CPU: {Ms(cpu)} ms per image ({cpu / wall:0.00} of {Environment.ProcessorCount} cores busy)");

                string Ms(double total) => (total * 1000 / Math.Max(images, 1)).ToString("0.00");
            }

            if (profileImages > 0)
            {
                PrintProfile(inputs, profileImages, modelPath, stdout, stderr);
            }

            return ExitCodes.Success;
        }
        finally
        {
            scratch.Delete(recursive: true);
        }
    }

    /// <summary>
    /// The inputs that are images, read: a file that is not (or cannot be read) is said in a <c>skipped:</c> line and
    /// left out of the measurement, as it would fail alone in a run.
    /// </summary>
    private static IEnumerable<(InputFile File, byte[] Data)> Decodable(IEnumerable<InputFile> files, TextWriter stderr)
    {
        foreach (var file in files)
        {
            byte[] data;
            try
            {
                data = ImageFile.ReadAll(file.Path);
                ImageDecoder.Decode(data).Dispose(); // before the clock: one that fails would fail the whole measurement
            }
            catch (Exception e) when (e is InvalidImageException or IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"skipped: {TerminalText.OneLine(file.Path)}: {TerminalText.OneLine(e.Message)}");
                continue;
            }

            yield return (file, data);
        }
    }

    /// <summary>CPU milliseconds per image by stage, on one thread (ONNX Runtime on it too), and the classifier's GFLOP/s.</summary>
    private static void PrintProfile(string[] inputs, int limit, string modelPath, TextWriter stdout, TextWriter stderr)
    {
        if (!ThreadCpuClock.IsSupported)
        {
            stdout.WriteLine("  CPU by stage: not measured (thread CPU time is read on Linux only)");
            return;
        }

        var files = InputFiles.Expand(inputs); // images only: an archive's entries are not profiled
        if (files.Count == 0)
        {
            return;
        }

        using var sessionOptions = LeukocyteClassifier.SessionOptionsFor(Environment.ProcessorCount); // one thread: all its CPU on this one
        using var classifier = EvaluateClassification.LoadClassifier(modelPath, stderr, sessionOptions);
        if (classifier is null)
        {
            return;
        }

        var p = StageProfile.Run(files, classifier, new LeukocyteSegmenter(), limit);
        long views = p.Views;
        string Ms(double total) => (total / Math.Max(p.Images, 1)).ToString("0.00");
        stdout.WriteLine(
            $"  CPU ms per image by stage, one thread, {p.Images} images ({p.Cells} cells): read {Ms(p.Read)}, decode {Ms(p.Decode)}, " +
            $"scale estimate and field colours {Ms(p.Scale)}, segment {Ms(p.Segment)}, crop hand-off {Ms(p.HandOff)}, classify {Ms(p.Classify)}, " +
            $"annotate {Ms(p.Annotate)}; total {Ms(p.Total)}");
        stdout.WriteLine($"      classify: {Gflops(classifier.Card, views, p.Classify)} ({p.Classify / Math.Max(p.Cells, 1):0.00} CPU ms per cell, {views / (double)Math.Max(p.Cells, 1):0.##} views each)");
    }

    /// <summary>The classifier's achieved GFLOP/s over <paramref name="views"/> views run in <paramref name="milliseconds"/>, from the card's FLOPs per view.</summary>
    internal static string Gflops(ModelCard card, long views, double milliseconds) =>
        card.FlopsPerView is { } flops && milliseconds > 0
            ? $"{views * (double)flops / (milliseconds * 1e6):0.0} GFLOP/s ({flops / 1e9:0.###} GFLOP per view)"
            : "GFLOP/s unknown (the model card gives no flopsPerView: models/training/flops.py writes it)";

    private static Command CreateMemory()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = "Images or folders to repeat into each run (e.g. samples/bccd/JPEGImages).",
            Arity = ArgumentArity.OneOrMore,
        };
        var counts = new Option<int[]>("--images")
        {
            Description = "Run sizes: a leuko analyze process per size, over this many images (the inputs repeated, as links).",
            DefaultValueFactory = _ => [1000, 10000],
            AllowMultipleArgumentsPerToken = true,
        };
        counts.Validators.Add(r =>
        {
            if (r.TryGetValue<int[]>(out var n) && (n is not { Length: > 0 } || n.Any(c => c < 1)))
            {
                r.AddError("--images takes one or more counts of at least 1");
            }
        });
        var parallel = new Option<int>("--parallel") { Description = "leuko analyze --parallel.", DefaultValueFactory = _ => Environment.ProcessorCount };
        var model = EvaluateClassification.ModelOption();
        var command = new Command("memory", "Peak resident memory of leuko analyze (every output written) over runs of different sizes: flat when nothing is held per image.")
        {
            inputs, counts, parallel, model,
        };
        command.SetAction((parse, ct) => RunMemory(
            parse.GetRequiredValue(inputs), parse.GetRequiredValue(counts), parse.GetValue(parallel), parse.GetRequiredValue(model),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    private static async Task<int> RunMemory(
        string[] inputs, int[] counts, int parallel, string modelPath, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var images = InputFiles.Expand(inputs);
        if (images.Count == 0)
        {
            stderr.WriteLine("error: no images in the inputs given");
            return ExitCodes.BadUsage;
        }

        stdout.WriteLine($"Memory benchmark: leuko analyze --parallel {parallel} over {images.Count} images repeated, {Environment.ProcessorCount} cores");
        var peaks = new List<(int Images, double Mb)>();
        foreach (int count in counts)
        {
            var scratch = Directory.CreateTempSubdirectory("leuko-bench-memory-");
            try
            {
                var folder = Directory.CreateDirectory(Path.Combine(scratch.FullName, "in")).FullName;
                for (int i = 0; i < count; i++)
                {
                    var image = images[i % images.Count];
                    File.CreateSymbolicLink(Path.Combine(folder, $"{i:0000000}{Path.GetExtension(image.Path)}"), Path.GetFullPath(image.Path));
                }

                var clock = Stopwatch.StartNew();
                var (exit, output) = await RunChildAsync(
                    ["analyze", folder, "--out", Path.Combine(scratch.FullName, "out"), "--parallel", $"{parallel}", "--model", modelPath], ct);
                var peak = output.LastOrDefault(l => l.StartsWith(AnalyzeCommand.PeakMemoryPrefix, StringComparison.Ordinal));
                if (exit is not (ExitCodes.Success or ExitCodes.SomeFailed) || peak is null)
                {
                    stderr.WriteLine($"error: leuko analyze over {count} images exited with {exit}:");
                    stderr.WriteLine(string.Join('\n', output.TakeLast(10)));
                    return ExitCodes.BadUsage;
                }

                double mb = double.Parse(peak[AnalyzeCommand.PeakMemoryPrefix.Length..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                peaks.Add((count, mb));
                stdout.WriteLine($"  {count,7} images: peak resident memory {mb,5:0} MB ({clock.Elapsed.TotalSeconds:0} s)");
            }
            finally
            {
                scratch.Delete(recursive: true);
            }
        }

        if (peaks.Count > 1 && peaks[^1].Images != peaks[0].Images)
        {
            double perImage = (peaks[^1].Mb - peaks[0].Mb) * 1024 / (peaks[^1].Images - peaks[0].Images);
            stdout.WriteLine($"  growth: {perImage:0.00} KB per image from {peaks[0].Images} to {peaks[^1].Images} images");
        }

        return ExitCodes.Success;
    }

    /// <summary>Runs this <c>leuko</c> again with <paramref name="args"/>; its stdout and stderr lines, together.</summary>
    private static async Task<(int Exit, List<string> Output)> RunChildAsync(string[] args, CancellationToken ct)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(BenchCommand).Assembly.Location); // run as `dotnet leuko.dll`
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var child = Process.Start(start)!;
        var output = new List<string>();
        var stdout = child.StandardOutput.ReadToEndAsync(ct);
        var stderr = child.StandardError.ReadToEndAsync(ct);
        try
        {
            await child.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            child.Kill(entireProcessTree: true);
            throw;
        }

        output.AddRange((await stdout).Split('\n'));
        output.AddRange((await stderr).Split('\n'));
        return (child.ExitCode, output);
    }

    private static Command CreateClassification()
    {
        var images = new Argument<string[]>("images")
        {
            Description = "Images or folders whose leukocytes are cut out and classified (e.g. samples/).",
            Arity = ArgumentArity.OneOrMore,
        };
        var seconds = SecondsOption("Minimum time to measure each batch size.", 5);
        var model = EvaluateClassification.ModelOption();
        var command = new Command("classification", "Crops per second of classification (preprocessing and inference) at batch 1 and batch 16, on one thread of calls.")
        {
            images, seconds, model,
        };
        command.SetAction(parse => RunClassification(
            parse.GetRequiredValue(images), parse.GetValue(seconds), parse.GetRequiredValue(model), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command;
    }

    private static int RunClassification(string[] paths, double seconds, string modelPath, TextWriter stdout, TextWriter stderr)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        using var classifier = EvaluateClassification.LoadClassifier(modelPath, stderr);
        if (classifier is null)
        {
            return ExitCodes.BadUsage;
        }

        var segmenter = new LeukocyteSegmenter();
        var crops = new List<Mat>();
        foreach (var (_, data) in Decodable(InputFiles.Expand(paths), stderr))
        {
            using var image = ImageDecoder.Decode(data);
            using var result = segmenter.Segment(image);
            crops.AddRange(result.Leukocytes.Select(l => l.Crop.Clone()));
        }

        if (crops.Count == 0)
        {
            stderr.WriteLine("error: no leukocytes found in the images given");
            return ExitCodes.BadUsage;
        }

        stdout.WriteLine(
            $"Classification benchmark: {crops.Count} crops, model {classifier.Card.Name} {classifier.Card.Version} " +
            $"({classifier.Card.Input.Width}x{classifier.Card.Input.Height}), {Environment.ProcessorCount} cores");
        foreach (int batch in new[] { 1, 16 })
        {
            var batches = Enumerable.Range(0, 64).Select(b => Enumerable.Range(0, batch).Select(i => crops[((b * batch) + i) % crops.Count]).ToList()).ToList();
            classifier.Classify(batches[0]); // warm-up
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            int classified = 0, next = 0;
            long viewsBefore = classifier.ViewsRun;
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                classified += classifier.Classify(batches[next++ % batches.Count]).Count;
            }

            stdout.WriteLine(
                $"  batch {batch,2}: {classified / clock.Elapsed.TotalSeconds,8:0.0} crops/s  ({clock.Elapsed.TotalMilliseconds / (classified / (double)batch):0.00} ms per call), " +
                Gflops(classifier.Card, classifier.ViewsRun - viewsBefore, clock.Elapsed.TotalMilliseconds) +
                $", {(classifier.ViewsRun - viewsBefore) / (double)classified:0.##} views per crop" +
                $", process CPU {(Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMilliseconds / classified:0.00} ms per crop");
        }

        foreach (var crop in crops)
        {
            crop.Dispose();
        }

        return ExitCodes.Success;
    }

    private static Command CreateSegmentation()
    {
        var images = new Argument<string[]>("images")
        {
            Description = "Images or folders to segment (e.g. samples/ or BCCD JPEGImages/).",
            Arity = ArgumentArity.OneOrMore,
        };
        var seconds = SecondsOption("Minimum time to measure each configuration.", 5);
        var command = new Command("segmentation", "Images per second of decode + segmentation, on one thread and on all cores.")
        {
            images, seconds,
        };
        command.SetAction(parse => Run(parse.GetRequiredValue(images), parse.GetValue(seconds), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command;
    }

    private static int Run(string[] paths, double seconds, TextWriter stdout, TextWriter stderr)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        var encoded = Decodable(InputFiles.Expand(paths), stderr).Select(d => d.Data).ToArray();
        if (encoded.Length == 0)
        {
            stderr.WriteLine("error: no images to measure");
            return ExitCodes.BadUsage;
        }

        using (var first = ImageDecoder.Decode(encoded[0]))
        {
            stdout.WriteLine($"Segmentation benchmark: {encoded.Length} images (first {first.Width}x{first.Height}), {Environment.ProcessorCount} cores");
        }

        var segmenter = new LeukocyteSegmenter();
        var decodeTimes = new List<double>();
        var scaleTimes = new List<double>();
        var segmentTimes = new List<double>();
        for (int i = 0; i < Math.Min(encoded.Length, 5); i++)
        {
            SegmentOnce(segmenter, encoded[i], null, null, null); // warm-up: JIT, OpenCV's lazy initialisation
        }

        var clock = Stopwatch.StartNew();
        int count = 0;
        while (clock.Elapsed.TotalSeconds < seconds || count < encoded.Length)
        {
            SegmentOnce(segmenter, encoded[count % encoded.Length], decodeTimes, scaleTimes, segmentTimes);
            count++;
        }

        double serial = count / clock.Elapsed.TotalSeconds;
        clock.Restart();
        int parallelCount = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            Parallel.For(0, encoded.Length, i => SegmentOnce(segmenter, encoded[i], null, null, null));
            parallelCount += encoded.Length;
        }

        double parallel = parallelCount / clock.Elapsed.TotalSeconds;
        stdout.WriteLine($"  one thread:   {serial,7:0.0} images/s  (medians: decode {Median(decodeTimes):0.00} ms, " +
            $"scale estimate and field colours {Median(scaleTimes):0.00} ms, segment at that scale {Median(segmentTimes):0.00} ms, p95 {Percentile(segmentTimes, 0.95):0.00} ms)");
        stdout.WriteLine($"  all cores:    {parallel,7:0.0} images/s");
        return ExitCodes.Success;
    }

    /// <summary>Decode, the scale estimate with the field colours, and segmentation at that scale: the work of <c>Segment(image)</c>, timed apart.</summary>
    private static void SegmentOnce(
        LeukocyteSegmenter segmenter, byte[] data, List<double>? decodeTimes, List<double>? scaleTimes, List<double>? segmentTimes)
    {
        long t0 = Stopwatch.GetTimestamp();
        using Mat image = ImageDecoder.Decode(data);
        long t1 = Stopwatch.GetTimestamp();
        var (scale, field) = new RedCellScaleEstimator(segmenter.Options.Scale).EstimateWithField(image);
        long t2 = Stopwatch.GetTimestamp();
        using var result = segmenter.Segment(image, scale, field);
        long t3 = Stopwatch.GetTimestamp();
        decodeTimes?.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
        scaleTimes?.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
        segmentTimes?.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
    }

    private static double Median(List<double> values) => Percentile(values, 0.5);

    /// <summary>The <paramref name="q"/> quantile of <paramref name="values"/> (nearest rank); 0 for none.</summary>
    internal static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[(int)Math.Round(q * (sorted.Count - 1))];
    }
}
