using System.CommandLine;
using Leuko.Cli.Analysis;
using Leuko.Cli.Reports;
using Leuko.Core.Classification;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;
using Leuko.Pipeline;
using Leuko.Pipeline.Archives;

namespace Leuko.Cli.Commands;

/// <summary>What a run of <c>leuko analyze</c> gives back: its summary, the first failures, and the files written.</summary>
/// <param name="Unwritten">Result files that could not be written, each with the reason (a full disk, a folder in the way).</param>
internal sealed record AnalysisOutcome(RunSummary Summary, IReadOnlyList<ImageRecord> FirstFailures, IReadOnlyList<string> Written, IReadOnlyList<string> Unwritten);

/// <summary><c>leuko analyze</c>: the whole pipeline on one machine: find, classify, count and draw every leukocyte.</summary>
internal static class AnalyzeCommand
{
    private static readonly string[] Formats = ["json", "csv", "html"];

    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = $"Image files ({Leuko.Core.Imaging.ImageFormats.Names}), folders (searched recursively for images and zip archives) and zip archives.",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for results.json, results.csv, report.html and annotated/.", Required = true };
        var format = new Option<string[]>("--format")
        {
            Description = "Result files to write, comma-separated: json, csv, html (annotated/ images come with html).",
            DefaultValueFactory = _ => Formats,
            CustomParser = r => r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Select(f => f.ToLowerInvariant()).Distinct().ToArray(),
            AllowMultipleArgumentsPerToken = true,
        };
        format.Validators.Add(r =>
        {
            var formats = r.TryGetValue<string[]>(out var given) ? given : null;
            var bad = formats?.Where(f => !Formats.Contains(f)).ToList() ?? [];
            if (bad.Count > 0)
            {
                r.AddError($"unknown --format {string.Join(", ", bad)}: choose from {string.Join(", ", Formats)}");
            }
            else if (formats is { Length: 0 })
            {
                r.AddError($"--format names no result file: choose one or more of {string.Join(", ", Formats)}"); // a run that writes nothing is lost
            }
        });
        var parallel = new Option<int>("--parallel", "-p")
        {
            Description = "Images analysed at once (default: the number of cores). Results do not depend on it.",
            DefaultValueFactory = _ => Environment.ProcessorCount,
        };
        parallel.Validators.Add(r =>
        {
            if (r.TryGetValue<int>(out var v) && v is < 1 or > 256)
            {
                r.AddError("--parallel must be between 1 and 256");
            }
        });
        var model = EvaluateClassification.ModelOption();
        var micronsPerPixel = ScaleOption.Create();
        var command = new Command("analyze", "Find, classify and count the leukocytes in smear photographs; write results.json, results.csv, annotated images and report.html.")
        {
            inputs, output, format, parallel, model, micronsPerPixel,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(inputs), parse.GetRequiredValue(output).FullName, parse.GetRequiredValue(format), parse.GetValue(parallel),
            parse.GetRequiredValue(model), ArchiveLimits.Default, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct,
            ScaleOption.Of(parse.GetValue(micronsPerPixel))));
        return command;
    }

    internal static async Task<int> RunAsync(
        string[] inputPaths, string outputDir, string[] formats, int parallel, string modelPath, ArchiveLimits limits,
        TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken, ImageScale? scale = null)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        if (OutputFolder.Create(outputDir, stderr) is null)
        {
            return ExitCodes.BadUsage;
        }

        // OpenCV's first-call costs paid on another core while the model loads (a one-image run, ReadyToRun: 0.45-0.55 s
        // wall against 0.57-0.67 without, four interleaved runs each).
        var warmUp = Task.Run(WarmUp, CancellationToken.None);
        using var sessionOptions = LeukocyteClassifier.SessionOptionsFor(parallel);
        using var classifier = EvaluateClassification.LoadClassifier(modelPath, stderr, sessionOptions);
        await warmUp;
        if (classifier is null)
        {
            return ExitCodes.BadUsage;
        }

        AnalysisPlan plan;
        try
        {
            plan = AnalysisPlan.Create(inputPaths, limits, outputDir);
        }
        catch (Exception e) when (e is FileNotFoundException or OutputAmongInputsException)
        {
            stderr.WriteLine($"error: {TerminalText.OneLine(e.Message)}");
            return ExitCodes.BadUsage;
        }

        using (plan)
        {
            if (plan.Images.Count == 0)
            {
                stderr.WriteLine($"error: no images found in {string.Join(", ", inputPaths)} (images are {Leuko.Core.Imaging.ImageFormats.Names}; archives are zip)" +
                                 (plan.Skipped.Count > 0 ? $": none of the {plan.Skipped.Count:N0} files found is ({string.Join("; ", plan.Skipped.Take(3).Select(f => $"{TerminalText.OneLine(f.Source)}: {f.Reason}"))}{(plan.Skipped.Count > 3 ? "; ..." : "")})" : ""));
                return ExitCodes.BadUsage;
            }

            // Inputs that cannot be read fail alone, inside the run; a write that fails (a full disk) ends it, as every
            // command's file error does (LeukoCommand: one line, exit 4), its half files removed on the way out.
            var outcome = await RunProgress.RunAsync(stderr, plan.Images.Count, progress =>
                AnalyzeAsync(plan, classifier, outputDir, formats, parallel, progress, cancellationToken, scale));

            var card = classifier.Card;

            var s = outcome.Summary;
            stdout.WriteLine(
                $"{s.Images} images in {s.Seconds:0.0} s ({s.ImagesPerSecond:0.0}/s): {s.Completed} with leukocytes, {s.NoLeukocytes} without, " +
                $"{s.Failed} failed{(s.Skipped > 0 ? $", {s.Skipped} files skipped (not images: listed in the results)" : "")}.");
            stdout.WriteLine(
                $"{s.Cells} cells ({s.NeedsReview} to review): " +
                string.Join(", ", card.Differential.Select(c => $"{c} {s.Differential[c].Count} ({s.Differential[c].Percent:0.#}%)")) +
                (s.OtherCells.Values.Sum() > 0
                    ? "; other cells seen: " + string.Join(", ", s.OtherCells.Where(o => o.Value > 0).Select(o => $"{o.Value} {o.Key}"))
                    : ""));
            if (s.UnfamiliarStain > 0)
            {
                stderr.WriteLine(
                    $"warning: {s.UnfamiliarStain} of {s.Cells} cells look unlike every microscope the model was trained on (stain, lamp and camera; " +
                    $"review reason {ReviewReasons.UnfamiliarStain}): they are flagged whatever the model says; check the model on this microscope's " +
                    "own cells before relying on it (models/README.md)");
            }

            if (s.LowResolution > 0)
            {
                stderr.WriteLine(
                    $"warning: {s.LowResolution} of {s.Cells} cells are from images coarser than the model's input ({card.Input.Width} px across its " +
                    $"{card.Input.WindowMicrons ?? SegmentationOptions.Default.CropWindow:0.##} µm window; review reason {ReviewReasons.LowResolution}): they are flagged " +
                    "whatever the model says; photograph at a higher magnification, or give the scale (--microns-per-pixel) if the estimate in the results is wrong");
            }

            foreach (var path in outcome.Written)
            {
                var shown = Path.GetRelativePath(Environment.CurrentDirectory, path);
                stdout.WriteLine($"wrote {(shown.StartsWith("..", StringComparison.Ordinal) ? path : shown)}");
            }

            foreach (var failed in outcome.FirstFailures)
            {
                stderr.WriteLine($"failed: {TerminalText.OneLine(failed.Source)}: {TerminalText.OneLine(failed.Error)}");
            }

            if (s.Failed > outcome.FirstFailures.Count)
            {
                stderr.WriteLine($"... and {s.Failed - outcome.FirstFailures.Count} more failed (the first {FailuresShown} are shown; results.json and report.html list every one)");
            }

            if (s.NotAnalysed > 0)
            {
                stderr.WriteLine(
                    $"interrupted: {s.Images} of {plan.Images.Count} images analysed; the results written hold those {s.Images}, in input order " +
                    $"(the other {s.NotAnalysed} were not read: run again to analyse every image)");
            }

            foreach (var unwritten in outcome.Unwritten)
            {
                stderr.WriteLine($"error: not written: {TerminalText.OneLine(unwritten)}");
            }

            stderr.WriteLine(PeakMemoryLine());
            return outcome.Unwritten.Count > 0 ? ExitCodes.OutputFailed : s.NotAnalysed > 0 ? ExitCodes.Interrupted : s.Failed > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
        }
    }

    /// <summary>
    /// Runs the pipeline over <paramref name="plan"/> and writes the chosen result files into <paramref name="outputDir"/>
    /// as images finish, in input order. Nothing grows with the number of images but the first
    /// <see cref="FailuresShown"/> failures, kept to be printed at the end.
    /// </summary>
    internal static async Task<AnalysisOutcome> AnalyzeAsync(
        AnalysisPlan plan, LeukocyteClassifier classifier, string outputDir, string[] formats, int parallel, Action<ImageResult> progress,
        CancellationToken cancellationToken, ImageScale? scale = null)
    {
        Directory.CreateDirectory(outputDir);
        bool html = formats.Contains("html");
        var card = classifier.Card;
        var model = new ModelRecord(card.Name, card.Version, card.Classes, card.Differential, card.Others, card.ReviewThreshold);
        var files = new List<IResultFile>();
        try
        {
            if (formats.Contains("json"))
            {
                files.Add(new JsonReport(Path.Combine(outputDir, "results.json"), model, plan.Skipped));
            }

            if (formats.Contains("csv"))
            {
                files.Add(new CsvReport(Path.Combine(outputDir, "results.csv"), model));
            }

            if (html)
            {
                files.Add(new HtmlReport(Path.Combine(outputDir, "report.html"), model, plan.Skipped));
            }

            var totals = new RunTotals(CellClasses.Of(card));
            var failures = new List<ImageRecord>();
            using var ordered = new OrderedResults(window: parallel * 8, image =>
            {
                totals.Add(image);
                foreach (var file in files)
                {
                    file.Write(image);
                }

                if (image.Status == ImageStatus.Failed && failures.Count < FailuresShown)
                {
                    failures.Add(image);
                }
            });

            RunOutcome outcome;
            await using (var pipeline = new LocalPipeline(new LeukocyteSegmenter(), classifier, parallel, scale, keepDecoded: html))
            {
                outcome = await AnalysisRun.ExecuteAsync(plan, pipeline, outputDir, parallel, annotate: html, ordered, progress, cancellationToken);
            }

            var summary = totals.Summary(plan.Skipped.Count, outcome.Elapsed, parallel, outcome.Stages, outcome.NotAnalysed);
            // Each file on its own: one that cannot be put in place (a folder of its name, a full disk) leaves the others written.
            var written = new List<string>();
            var unwritten = new List<string>();
            foreach (var file in files)
            {
                try
                {
                    file.Complete(summary);
                    written.Add(file.Path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    unwritten.Add($"{file.Path}: {e.Message}");
                }
            }

            return new AnalysisOutcome(summary, failures, written, unwritten);
        }
        finally
        {
            foreach (var file in files)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>
    /// <see cref="LeukocyteSegmenter.WarmUp"/>, whose failure is not the run's: an OpenCV that cannot run fails each image
    /// with its reason, as it would without the warm-up.
    /// </summary>
    private static void WarmUp()
    {
        try
        {
            LeukocyteSegmenter.WarmUp();
        }
        catch (Exception e) when (e is OpenCvSharp.OpenCVException or DllNotFoundException or TypeInitializationException or BadImageFormatException)
        {
        }
    }

    /// <summary>The process's peak resident memory (VmHWM on Linux), the last line a run prints on stderr; <c>leuko bench memory</c> reads it.</summary>
    internal static string PeakMemoryLine()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return $"{PeakMemoryPrefix}{self.PeakWorkingSet64 / (1024.0 * 1024):0} MB";
    }

    internal const string PeakMemoryPrefix = "peak memory (resident): ";

    /// <summary>Failures printed at the end of a run; results.json and report.html list every one.</summary>
    internal const int FailuresShown = 20;
}
