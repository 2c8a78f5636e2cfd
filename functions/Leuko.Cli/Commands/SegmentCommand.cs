using System.CommandLine;
using System.Text.Json;
using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Cli.Commands;

/// <summary><c>leuko segment</c>: cut every leukocyte out of images, with the masks and a JSON summary.</summary>
internal static class SegmentCommand
{
    /// <summary>Version of the segmentation.json layout; raised on any incompatible change.</summary>
    public const int SchemaVersion = 1;

    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = $"Image files ({Leuko.Core.Imaging.ImageFormats.Names}) and folders (searched recursively).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var output = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for crops/, masks/ and segmentation.json (or, with --dataset, the crops in the dataset's folder structure).", Required = true };
        var dataset = new Option<DirectoryInfo>("--dataset")
        {
            Description = "A class-per-folder dataset (e.g. EOSINOPHIL/, LYMPHOCYTE/, ...): write one crop per image, of its target cell " +
                "(the largest leukocyte), in the same folder structure, with dataset.tsv, fields.tsv (each image's glass and red-cell colours) and unsegmented.tsv.",
        };
        var size = new Option<int?>("--size") { Description = "Resize crops to SIZE x SIZE pixels, as the classifier does (default: native resolution)." };
        size.Validators.Add(r =>
        {
            if (r.TryGetValue<int?>(out var v) && v is < 8 or > 1024)
            {
                r.AddError("--size must be between 8 and 1024");
            }
        });
        var masks = new Option<bool>("--masks") { Description = "Also write the background, erythrocyte and leukocyte masks of each image, and an overlay of the cells found." };
        var micronsPerPixel = ScaleOption.Create();
        var command = new Command("segment", "Find the leukocytes in images and write a square crop of each, with segmentation.json.")
        {
            inputs, output, masks, dataset, size, micronsPerPixel,
        };
        command.Validators.Add(r =>
        {
            bool hasInputs = r.GetValue(inputs) is { Length: > 0 };
            bool hasDataset = r.GetValue(dataset) is not null;
            if (hasInputs == hasDataset)
            {
                r.AddError("give either image files and folders, or --dataset DIR");
            }
        });
        command.SetAction((parse, cancellationToken) => parse.GetValue(dataset) is { } root
            ? DatasetCrops.RunAsync(root, parse.GetRequiredValue(output), parse.GetValue(size), ScaleOption.Of(parse.GetValue(micronsPerPixel)), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken)
            : RunAsync(parse.GetRequiredValue(inputs), parse.GetRequiredValue(output), parse.GetValue(masks), parse.GetValue(size), ScaleOption.Of(parse.GetValue(micronsPerPixel)), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return command;
    }

    internal static Task<int> RunAsync(
        string[] inputPaths, DirectoryInfo output, bool writeMasks, int? size, ImageScale? scale, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return Task.FromResult(ExitCodes.MissingDependency);
        }

        if (OutputFolder.Create(output.FullName, stderr) is null)
        {
            return Task.FromResult(ExitCodes.BadUsage);
        }

        IReadOnlyList<InputFile> files;
        try
        {
            files = InputFiles.Expand(inputPaths, output: output.FullName);
        }
        catch (Exception e) when (e is FileNotFoundException or OutputAmongInputsException)
        {
            stderr.WriteLine($"error: {TerminalText.OneLine(e.Message)}");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        var segmenter = new LeukocyteSegmenter();
        var records = new ImageRecord[files.Count];
        var progress = new Progress("segment", files.Count, stderr);
        Parallel.For(0, files.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            records[i] = SegmentOne(segmenter, files[i], output.FullName, writeMasks, size, scale);
            progress.Advance();
        });

        var summary = new SummaryRecord(
            records.Length,
            records.Count(r => r.Status == "completed"),
            records.Count(r => r.Status == "no-leukocytes"),
            records.Count(r => r.Status == "failed"),
            records.Sum(r => r.Leukocytes?.Count ?? 0),
            Math.Round(progress.Elapsed.TotalSeconds, 3));
        var document = new SegmentationDocument(SchemaVersion, records, summary);
        var jsonPath = Path.Combine(output.FullName, "segmentation.json");
        File.WriteAllText(jsonPath, JsonSerializer.Serialize(document, Json.Options));
        stdout.WriteLine(
            $"{summary.Images} images: {summary.Completed} with leukocytes ({summary.Leukocytes} cells), " +
            $"{summary.NoLeukocytes} without, {summary.Failed} failed. Results: {jsonPath}");
        foreach (var failed in records.Where(r => r.Status == "failed"))
        {
            stderr.WriteLine($"failed: {TerminalText.OneLine(failed.Source)}: {TerminalText.OneLine(failed.Error)}");
        }

        return Task.FromResult(summary.Failed > 0 ? ExitCodes.SomeFailed : ExitCodes.Success);
    }

    private static ImageRecord SegmentOne(LeukocyteSegmenter segmenter, InputFile file, string output, bool writeMasks, int? size, ImageScale? scale)
    {
        try
        {
            using var image = ImageDecoder.DecodeFile(file.Path);
            using var result = segmenter.Segment(image, scale, masks: writeMasks);
            var stem = Path.ChangeExtension(file.Name, null);
            var cells = new List<CellRecord>();
            for (int i = 0; i < result.Leukocytes.Count; i++)
            {
                var cell = result.Leukocytes[i];
                var cropName = $"crops/{stem}_{i}.png";
                WriteCrop(output, cropName, cell.Crop, size);
                cells.Add(new CellRecord(
                    i, new BoxRecord(cell.Box.X, cell.Box.Y, cell.Box.Width, cell.Box.Height), cell.Area, cell.NucleusArea,
                    new PointRecord(Math.Round(cell.Centroid.X, 1), Math.Round(cell.Centroid.Y, 1)), cropName));
            }

            Dictionary<string, string>? maskNames = null;
            if (writeMasks)
            {
                maskNames = new()
                {
                    ["background"] = $"masks/{stem}_background.png",
                    ["erythrocyte"] = $"masks/{stem}_erythrocyte.png",
                    ["leukocyte"] = $"masks/{stem}_leukocyte.png",
                    ["overlay"] = $"masks/{stem}_overlay.png",
                };
                Write(output, maskNames["background"], result.BackgroundMask!);
                Write(output, maskNames["erythrocyte"], result.ErythrocyteMask!);
                Write(output, maskNames["leukocyte"], result.LeukocyteMask);
                using var overlay = Overlay(image, result);
                Write(output, maskNames["overlay"], overlay);
            }

            return new ImageRecord(file.Path, cells.Count > 0 ? "completed" : "no-leukocytes", null, image.Width, image.Height, Leuko.Pipeline.ScaleRecord.Of(result.Scale), cells, maskNames);
        }
        catch (Exception e) when (e is InvalidImageException or IOException or UnauthorizedAccessException)
        {
            return new ImageRecord(file.Path, "failed", e.Message, null, null, null, null, null);
        }
    }

    private static Mat Overlay(Mat image, SegmentationResult result)
    {
        var overlay = image.Clone();
        var outline = new Scalar(0, 200, 0);
        foreach (var cell in result.Leukocytes)
        {
            Cv2.DrawContours(overlay, [cell.Contour], 0, outline, 2, LineTypes.AntiAlias);
            Cv2.Rectangle(overlay, cell.Box, new Scalar(0, 220, 255), 1);
        }

        return overlay;
    }

    internal static void WriteCrop(string output, string relative, Mat crop, int? size)
    {
        if (size is { } n)
        {
            using var resized = Crops.Resize(crop, n);
            Write(output, relative, resized);
        }
        else
        {
            Write(output, relative, crop);
        }
    }

    internal static void Write(string output, string relative, Mat image)
    {
        var path = Path.Combine(output, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!Cv2.ImWrite(path, image))
        {
            throw new IOException($"could not write '{path}'");
        }
    }

    internal sealed record SegmentationDocument(int SchemaVersion, IReadOnlyList<ImageRecord> Images, SummaryRecord Summary);

    internal sealed record SummaryRecord(int Images, int Completed, int NoLeukocytes, int Failed, int Leukocytes, double Seconds);

    internal sealed record ImageRecord(
        string Source, string Status, string? Error, int? Width, int? Height, Leuko.Pipeline.ScaleRecord? Scale,
        IReadOnlyList<CellRecord>? Leukocytes, IReadOnlyDictionary<string, string>? Masks);

    internal sealed record CellRecord(int Index, BoxRecord Box, int Area, int NucleusArea, PointRecord Centroid, string Crop);

    internal sealed record BoxRecord(int X, int Y, int Width, int Height);

    internal sealed record PointRecord(double X, double Y);
}
