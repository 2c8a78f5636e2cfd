using System.CommandLine;
using System.Text.Json;
using Leuko.Core.Classification;
using Leuko.Core.Evaluation;
using Microsoft.ML.OnnxRuntime;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko evaluate classification</c>: end to end from raw labelled frames: segment with the options
/// <c>leuko analyze</c> uses, take the target cell (the largest), classify. It differs from analyze in one way only,
/// which it prints: a frame is scored by its largest cell, while analyze reports every cell it finds.
/// </summary>
internal static class EvaluateClassification
{
    /// <summary>Frames segmented before their crops are classified together: bounds memory on large datasets.</summary>
    private const int Chunk = 256;

    public static Command Create()
    {
        var data = new Option<DirectoryInfo>("--data")
        {
            Description = "Folder with one subfolder of images per class, named as the model's classes (BASOPHIL, EOSINOPHIL, LYMPHOCYTE, MONOCYTE, " +
                          "NEUTROPHIL, IMMATURE_GRANULOCYTE, ERYTHROBLAST, PLATELET; case-insensitive).",
            Required = true,
        };
        var model = ModelOption();
        var json = new Option<bool>("--json") { Description = "Print exactly one JSON object with the metrics on stdout." };
        var micronsPerPixel = ScaleOption.Create();
        var cells = new Option<FileInfo?>("--cells")
        {
            Description = "Also write every classified cell's raw model outputs to this TSV (label, stain distance, the single view's and the " +
                          "8-view mean's logits and feature distance), to fit a review rule or a test-time augmentation policy without running the model again " +
                          "(models/training/sure_policy.py).",
        };
        var groups = new Option<FileInfo?>("--groups")
        {
            Description = "Also score by group: a TSV of each image's path under --data (CLASS/file.jpg), a tab, and its group (the photograph, slide " +
                          "or patient it comes from). Where many images show one cell (augmented frames), the groups are what the accuracy is measured " +
                          "on: a group counts right when most of its images are, with a 95% interval. Images the file does not name are each a group of their own.",
        };
        var command = new Command("classification", "Accuracy, precision, recall, the review flag's coverage and accuracy, and the confusion matrix of segmentation + classification on labelled frames.")
        {
            data, model, json, micronsPerPixel, cells, groups,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(data).FullName, parse.GetRequiredValue(model), parse.GetValue(json),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct, ScaleOption.Of(parse.GetValue(micronsPerPixel)),
            parse.GetValue(cells)?.FullName, parse.GetValue(groups)?.FullName));
        return command;
    }

    /// <summary>One line per cell of the raw outputs <c>--cells</c> asks for (floats round-trip exactly).</summary>
    private static void WriteCells(StreamWriter writer, LeukocyteClassifier classifier, List<Mat> crops, List<FieldColours?> fields, List<(string Path, int Truth)> samples)
    {
        var stain = new double[crops.Count];
        var input = classifier.Preprocess(crops, classifier.HasStainCheck ? stain : null, fields); // as Classify flags it: crop or field

        var (plain, plainDistance) = classifier.Run(input, crops.Count);
        var (dihedral, dihedralDistance) = classifier.DihedralMean(input, crops.Count);
        int k = classifier.Card.Classes.Count;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string Row(float[] logits, int i) => string.Join(',', logits.Skip(i * k).Take(k).Select(v => v.ToString("R", inv)));
        string D(float[]? d, int i) => d is null ? "" : d[i].ToString("R", inv);
        for (int i = 0; i < crops.Count; i++)
        {
            writer.WriteLine(string.Join('\t', samples[i].Path.Replace('\t', ' '), classifier.Card.Classes[samples[i].Truth],
                classifier.HasStainCheck ? stain[i].ToString("R", inv) : "", D(plainDistance, i), D(dihedralDistance, i), Row(plain, i), Row(dihedral, i)));
        }
    }

    /// <summary>The exact 95% interval of the share of groups right, as a fraction.</summary>
    private static (double Low, double High) GroupInterval(GroupScores groups)
    {
        var (low, high) = Leuko.Pipeline.BinomialInterval.Percent(groups.Right, groups.Count);
        return (low / 100, high / 100);
    }

    /// <summary>
    /// Each image's group from <paramref name="path"/> (lines of path under <paramref name="dataPath"/>, a tab, group;
    /// a header line is a path that names no image), or null with the reason written where the file cannot be used.
    /// </summary>
    private static Dictionary<string, string>? ReadGroups(string path, string dataPath, List<(string Path, int Truth)> samples, TextWriter stderr)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"error: cannot read --groups '{path}': {TerminalText.OneLine(e.Message)}");
            return null;
        }

        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            var fields = lines[i].Split('\t');
            if (fields.Length < 2 || fields[0].Length == 0 || fields[1].Length == 0)
            {
                stderr.WriteLine($"error: line {i + 1} of --groups '{path}' is not 'image path<TAB>group'");
                return null;
            }

            byName[fields[0].Replace('\\', '/')] = fields[1];
        }

        var groupOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (image, _) in samples)
        {
            if (byName.TryGetValue(Path.GetRelativePath(dataPath, image).Replace(Path.DirectorySeparatorChar, '/'), out var group))
            {
                groupOf[image] = group;
            }
        }

        if (groupOf.Count == 0)
        {
            stderr.WriteLine($"error: --groups '{path}' names none of the {samples.Count} images under '{dataPath}' (its first column is an image's path under --data, as CLASS/file.jpg)");
            return null;
        }

        if (groupOf.Count < samples.Count)
        {
            stderr.WriteLine($"warning: {samples.Count - groupOf.Count} of {samples.Count} images are not in --groups '{path}': each is a group of its own");
        }

        return groupOf;
    }

    /// <summary>How these figures relate to what <c>leuko analyze</c> reports, printed with them.</summary>
    private const string ScoringNote =
        "segmented as leuko analyze does (same options and scale); each frame scored by its largest cell, where analyze reports every cell; a frame without a cell counts wrong";

    /// <summary>The <c>--model</c> option every classifying command shares.</summary>
    public static Option<string> ModelOption() => new("--model")
    {
        Description = "ONNX model with its card (name.json) beside it. Default: the bundled model.",
        DefaultValueFactory = _ => LeukocyteClassifier.DefaultModelPath,
    };

    /// <summary>Loads the classifier or writes why it cannot be loaded.</summary>
    public static LeukocyteClassifier? LoadClassifier(string path, TextWriter stderr, SessionOptions? options = null)
    {
        try
        {
            return LeukocyteClassifier.Load(path, options);
        }
        catch (ModelLoadException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return null;
        }
    }

    internal static Task<int> RunAsync(
        string dataPath, string modelPath, bool json, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken,
        Leuko.Core.Scale.ImageScale? scale = null, string? cellsPath = null, string? groupsPath = null)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return Task.FromResult(ExitCodes.MissingDependency);
        }

        using var classifier = LoadClassifier(modelPath, stderr);
        if (classifier is null)
        {
            return Task.FromResult(ExitCodes.BadUsage);
        }

        var classes = classifier.Card.Classes.ToList();
        var samples = new List<(string Path, int Truth)>();
        foreach (var folder in Directory.Exists(dataPath) ? Directory.GetDirectories(dataPath) : [])
        {
            int label = classes.FindIndex(c => c.Equals(Path.GetFileName(folder), StringComparison.OrdinalIgnoreCase));
            if (label < 0)
            {
                stderr.WriteLine($"warning: skipping '{folder}': not one of the model's classes ({string.Join(", ", classes)})");
                continue;
            }

            samples.AddRange(InputFiles.Expand([folder]).Select(f => (f.Path, label)));
        }

        if (samples.Count == 0)
        {
            stderr.WriteLine($"error: no labelled images in '{dataPath}': it needs one subfolder per class ({string.Join(", ", classes)})");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        Dictionary<string, string>? groupOf = null;
        if (groupsPath is not null)
        {
            groupOf = ReadGroups(groupsPath, dataPath, samples, stderr);
            if (groupOf is null)
            {
                return Task.FromResult(ExitCodes.BadUsage);
            }
        }

        using var cellsOut = cellsPath is null ? null : new StreamWriter(cellsPath);
        cellsOut?.WriteLine("image\tlabel\tstainDistance\tplainDistance\tdihedralDistance\tplainLogits\tdihedralLogits");

        // The options leuko analyze segments with, so that these figures predict what analyze reports.
        var segmenter = new LeukocyteSegmenter(SegmentationOptions.Default);
        var evaluator = new ClassificationEvaluator(classes, classifier.Card.Others);
        var progress = new Progress("evaluate", samples.Count, stderr);
        foreach (var chunk in samples.Chunk(Chunk))
        {
            var crops = new Mat?[chunk.Length];
            var fields = new FieldColours?[chunk.Length];
            Parallel.For(0, chunk.Length, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                try
                {
                    using var image = ImageDecoder.DecodeFile(chunk[i].Path);
                    using var result = segmenter.Segment(image, scale);
                    crops[i] = DatasetCrops.Target(result)?.Crop.Clone();
                    fields[i] = result.Field;
                }
                catch (InvalidImageException e)
                {
                    stderr.WriteLine($"failed: {TerminalText.OneLine(chunk[i].Path)}: {TerminalText.OneLine(e.Message)}");
                }

                progress.Advance();
            });

            var found = crops.Select((c, i) => (Crop: c, Index: i)).Where(t => t.Crop is not null).ToList();
            var predictions = classifier.Classify(found.Select(t => t.Crop!).ToList(), found.Select(t => fields[t.Index]).ToList());
            if (cellsOut is not null && found.Count > 0)
            {
                WriteCells(cellsOut, classifier, found.Select(t => t.Crop!).ToList(), found.Select(t => fields[t.Index]).ToList(), found.Select(t => chunk[t.Index]).ToList());
            }

            var predicted = new int?[chunk.Length];
            var review = new string?[chunk.Length];
            for (int k = 0; k < found.Count; k++)
            {
                predicted[found[k].Index] = classes.IndexOf(predictions[k].Label);
                review[found[k].Index] = predictions[k].ReviewReason;
            }

            for (int i = 0; i < chunk.Length; i++)
            {
                evaluator.Add(chunk[i].Truth, predicted[i], review[i], groupOf?.GetValueOrDefault(chunk[i].Path));
                crops[i]?.Dispose();
            }
        }

        var m = evaluator.Metrics();
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                samples = m.Samples,
                unsegmented = m.Unsegmented,
                accuracy = Math.Round(m.Accuracy, 4),
                macroPrecision = Math.Round(m.MacroPrecision, 4),
                macroRecall = Math.Round(m.MacroRecall, 4),
                macroF1 = Math.Round(m.MacroF1, 4),
                coverage = Math.Round(m.Coverage, 4),
                acceptedAccuracy = m.AcceptedAccuracy is { } aa ? Math.Round(aa, 4) : (double?)null,
                otherSamples = m.OtherSamples,
                otherSilentlyInDifferential = m.OtherSilentlyInDifferential is { } os ? Math.Round(os, 4) : (double?)null,
                flaggedBy = m.FlaggedBy,
                scoring = ScoringNote,
                classes = m.Classes,
                perClass = m.PerClass.ToDictionary(
                    kv => kv.Key,
                    kv => new { precision = Math.Round(kv.Value.Precision, 4), recall = Math.Round(kv.Value.Recall, 4), f1 = Math.Round(kv.Value.F1, 4), support = kv.Value.Support }),
                confusion = m.Confusion,
                groups = m.Groups is { } g ? new
                {
                    count = g.Count,
                    right = g.Right,
                    accuracy = Math.Round((double)g.Right / g.Count, 4),
                    interval95 = GroupInterval(g) switch { var (low, high) => new[] { Math.Round(low, 4), Math.Round(high, 4) } },
                    meanAccuracy = Math.Round(g.MeanAccuracy, 4),
                    perClass = g.PerClass.ToDictionary(kv => kv.Key, kv => new { right = kv.Value.Right, total = kv.Value.Total }),
                } : null,
            }));
            return Task.FromResult(ExitCodes.Success);
        }

        stdout.WriteLine($"Classification on {dataPath} with {classifier.Card.Name} {classifier.Card.Version}");
        stdout.WriteLine($"  samples {m.Samples}, unsegmented {m.Unsegmented} (counted wrong)");
        stdout.WriteLine($"  accuracy {m.Accuracy:0.0000}  macro precision {m.MacroPrecision:0.0000}  macro recall {m.MacroRecall:0.0000}  macro F1 {m.MacroF1:0.0000}");
        stdout.WriteLine($"  review: {m.Coverage:P1} accepted without review, {(m.AcceptedAccuracy is { } a ? a.ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture) : "n/a")} of them correct" +
                         (m.OtherSamples > 0 ? $"; other cells silently in the differential {m.OtherSilentlyInDifferential:P1} of {m.OtherSamples}" : ""));
        if (m.FlaggedBy.Count > 0)
        {
            stdout.WriteLine($"  flagged by: {string.Join(", ", m.FlaggedBy.Select(kv => $"{kv.Key} {kv.Value} ({(double)kv.Value / m.Samples:P1})"))}");
        }

        stdout.WriteLine($"  scoring: {ScoringNote}");
        if (m.Groups is { } groupScores)
        {
            var (low, high) = GroupInterval(groupScores);
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            stdout.WriteLine(string.Create(inv, $"  by group ({Path.GetFileName(groupsPath)}): {groupScores.Count} groups, {groupScores.Right} right by most of their images, " +
                                                $"{(double)groupScores.Right / groupScores.Count:0.0000} (95% interval {low:0.0000}-{high:0.0000}); mean of the groups' accuracies {groupScores.MeanAccuracy:0.0000}"));
            stdout.WriteLine("    " + string.Join("  ", groupScores.PerClass.Select(kv => $"{kv.Key} {kv.Value.Right}/{kv.Value.Total}")));
        }
        stdout.WriteLine();
        stdout.WriteLine($"  {"class",-12} {"precision",9} {"recall",7} {"f1",7} {"support",8}");
        foreach (var (name, s) in m.PerClass)
        {
            stdout.WriteLine($"  {name,-12} {s.Precision,9:0.0000} {s.Recall,7:0.0000} {s.F1,7:0.0000} {s.Support,8}");
        }

        stdout.WriteLine();
        stdout.WriteLine("  confusion (rows: truth, columns: prediction)");
        stdout.WriteLine($"  {string.Empty,-12} " + string.Join(" ", m.Classes.Select(c => $"{c[..Math.Min(4, c.Length)],6}")));
        for (int r = 0; r < m.Classes.Count; r++)
        {
            stdout.WriteLine($"  {m.Classes[r],-12} " + string.Join(" ", m.Confusion[r].Select(v => $"{v,6}")));
        }

        return Task.FromResult(ExitCodes.Success);
    }
}
