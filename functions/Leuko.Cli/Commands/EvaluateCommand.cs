using System.CommandLine;
using System.Text.Json;
using Leuko.Core.Evaluation;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;

namespace Leuko.Cli.Commands;

/// <summary><c>leuko evaluate</c>: measure the science against annotated data.</summary>
internal static class EvaluateCommand
{
    public static Command Create() =>
        new("evaluate", "Measure segmentation and classification against annotated data.")
        {
            CreateSegmentation(),
            EvaluateClassification.Create(),
        };

    private static Command CreateSegmentation()
    {
        var voc = new Option<DirectoryInfo>("--voc")
        {
            Description = "Pascal-VOC folder with JPEGImages/ and Annotations/ (WBC boxes), e.g. BCCD.",
            Required = true,
        };
        var iou = new Option<double>("--iou") { Description = "IoU a detection needs to match a truth box.", DefaultValueFactory = _ => 0.5 };
        iou.Validators.Add(r =>
        {
            if (r.TryGetValue<double>(out var v) && !(v > 0 && v <= 1)) // NaN too
            {
                r.AddError("--iou must be in (0, 1]");
            }
        });
        var json = new Option<bool>("--json") { Description = "Print exactly one JSON object with the metrics on stdout." };
        var errors = new Option<bool>("--list-errors") { Description = "List each image with a false positive or false negative on stderr." };
        var micronsPerPixel = ScaleOption.Create();
        var command = new Command("segmentation", "Detection precision, recall, F1 and mean IoU of the segmenter's leukocyte boxes.")
        {
            voc, iou, json, errors, micronsPerPixel,
        };
        command.SetAction((parse, ct) => RunSegmentationAsync(
            parse.GetRequiredValue(voc).FullName, parse.GetValue(iou), parse.GetValue(json), parse.GetValue(errors), ScaleOption.Of(parse.GetValue(micronsPerPixel)),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    internal static Task<int> RunSegmentationAsync(
        string vocPath, double iou, bool json, bool listErrors, Leuko.Core.Scale.ImageScale? scale, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return Task.FromResult(ExitCodes.MissingDependency);
        }

        IReadOnlyList<VocImage> images;
        try
        {
            images = VocDataset.Load(vocPath);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or System.Xml.XmlException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        var segmenter = new LeukocyteSegmenter();
        var detections = new IReadOnlyList<OpenCvSharp.Rect>[images.Count];
        var failures = new string?[images.Count];
        var progress = new Progress("evaluate", images.Count, stderr);
        Parallel.For(0, images.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            try
            {
                using var image = ImageDecoder.DecodeFile(images[i].ImagePath);
                using var result = segmenter.Segment(image, scale);
                detections[i] = result.Leukocytes.Select(l => l.Box).ToList();
            }
            catch (InvalidImageException e)
            {
                // An unreadable field detects nothing: its truth boxes count as missed.
                failures[i] = e.Message;
                detections[i] = [];
            }

            progress.Advance();
        });

        var evaluator = new DetectionEvaluator(iou);
        for (int i = 0; i < images.Count; i++)
        {
            var match = evaluator.Add(images[i].ImagePath, images[i].Leukocytes, detections[i]);
            if (failures[i] is { } reason)
            {
                stderr.WriteLine($"failed: {TerminalText.OneLine(images[i].ImagePath)}: {TerminalText.OneLine(reason)}");
            }
            else if (listErrors && (match.FalsePositives > 0 || match.FalseNegatives > 0))
            {
                stderr.WriteLine(
                    $"{Path.GetFileName(match.Image)}: FP {match.FalsePositives}, FN {match.FalseNegatives}; " +
                    $"truth [{string.Join(' ', match.Truth.Select(Format))}] detected [{string.Join(' ', match.Detected.Select(Format))}]");
            }
        }

        var m = evaluator.Metrics();
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                images = m.Images,
                truth = m.Truth,
                detected = m.Detected,
                truePositives = m.TruePositives,
                falsePositives = m.FalsePositives,
                falseNegatives = m.FalseNegatives,
                precision = Math.Round(m.Precision, 4),
                recall = Math.Round(m.Recall, 4),
                f1 = Math.Round(m.F1, 4),
                meanIoU = Math.Round(m.MeanIoU, 4),
            }));
        }
        else
        {
            stdout.WriteLine($"Segmentation on {vocPath} (IoU >= {iou:0.##})");
            stdout.WriteLine($"  images           {m.Images,8}");
            stdout.WriteLine($"  truth boxes      {m.Truth,8}");
            stdout.WriteLine($"  detected         {m.Detected,8}");
            stdout.WriteLine($"  true positives   {m.TruePositives,8}");
            stdout.WriteLine($"  false positives  {m.FalsePositives,8}");
            stdout.WriteLine($"  false negatives  {m.FalseNegatives,8}");
            stdout.WriteLine($"  precision        {m.Precision,8:0.0000}");
            stdout.WriteLine($"  recall           {m.Recall,8:0.0000}");
            stdout.WriteLine($"  F1               {m.F1,8:0.0000}");
            stdout.WriteLine($"  mean IoU         {m.MeanIoU,8:0.0000}");
        }

        return Task.FromResult(ExitCodes.Success);
    }

    private static string Format(OpenCvSharp.Rect r) => $"{r.X},{r.Y},{r.Width}x{r.Height}";
}
