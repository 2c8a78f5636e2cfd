using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko segment --dataset</c>: training crops from a class-per-folder dataset, cut by the same segmenter that serves,
/// so that training and inference see the same pixels.
/// </summary>
internal static class DatasetCrops
{
    /// <summary>
    /// The target cell of a labelled frame is its largest leukocyte. The Kaggle frames are shifted, rotated and zoomed
    /// copies of BCCD photographs: the labelled cell is often off-centre or cut by the border, so nearness to the centre
    /// says little, while a second leukocyte in the frame is usually one the photographer did not centre on and is seldom
    /// the larger (83 of the 9,935 Kaggle frames segmented show more than one; their crops were checked by eye).
    /// </summary>
    public static Leukocyte? Target(SegmentationResult result) => result.Leukocytes.Count > 0 ? result.Leukocytes[0] : null;

    public static Task<int> RunAsync(DirectoryInfo root, DirectoryInfo output, int? size, ImageScale? scale, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return Task.FromResult(ExitCodes.MissingDependency);
        }

        if (!root.Exists)
        {
            stderr.WriteLine($"error: no such folder: '{root.FullName}'");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        if (OutputFolder.Create(output.FullName, stderr) is null)
        {
            return Task.FromResult(ExitCodes.BadUsage);
        }

        IReadOnlyList<InputFile> files;
        try
        {
            files = InputFiles.Expand([root.FullName], output: output.FullName);
        }
        catch (OutputAmongInputsException e)
        {
            stderr.WriteLine($"error: {TerminalText.OneLine(e.Message)}");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        if (files.Count == 0)
        {
            stderr.WriteLine($"error: no images under '{root.FullName}'");
            return Task.FromResult(ExitCodes.BadUsage);
        }

        var segmenter = new LeukocyteSegmenter(SegmentationOptions.LabelledFrame);
        var rows = new (string? Crop, int Cells, ImageScale? Scale, string? Problem, FieldColours? Colours)[files.Count];
        var progress = new Progress("segment dataset", files.Count, stderr);
        Parallel.For(0, files.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
        {
            rows[i] = CropOne(segmenter, files[i], output.FullName, size, scale);
            progress.Advance();
        });

        using (var index = new StreamWriter(Path.Combine(output.FullName, "dataset.tsv")))
        using (var unsegmented = new StreamWriter(Path.Combine(output.FullName, "unsegmented.tsv")))
        using (var fields = new StreamWriter(Path.Combine(output.FullName, "fields.tsv")))
        {
            fields.WriteLine("crop\twhiteB\twhiteG\twhiteR\twhitePixels\tredB\tredG\tredR\tredPixels");
            index.WriteLine("crop\tsource\tclass\tleukocytes\tmicronsPerPixel\tscaleSource");
            unsegmented.WriteLine("source\treason");
            for (int i = 0; i < files.Count; i++)
            {
                var label = ClassOf(files[i].Name);
                if (rows[i].Crop is { } crop)
                {
                    index.WriteLine(FormattableString.Invariant($"{crop}\t{files[i].Name}\t{label}\t{rows[i].Cells}\t{rows[i].Scale!.MicronsPerPixel:0.####}\t{rows[i].Scale!.SourceName}"));
                    var c = rows[i].Colours!;
                    fields.WriteLine(FormattableString.Invariant(
                        $"{crop}\t{c.WhiteBgr[0]}\t{c.WhiteBgr[1]}\t{c.WhiteBgr[2]}\t{c.WhitePixels}\t{c.RedBgr[0]}\t{c.RedBgr[1]}\t{c.RedBgr[2]}\t{c.RedPixels}"));
                }
                else
                {
                    unsegmented.WriteLine($"{files[i].Name}\t{rows[i].Problem}");
                }
            }
        }

        int cropped = rows.Count(r => r.Crop is not null);
        stdout.WriteLine($"{files.Count} images: {cropped} crops, {files.Count - cropped} without a leukocyte or unreadable " +
                         $"(listed in {Path.Combine(output.FullName, "unsegmented.tsv")}). Index: {Path.Combine(output.FullName, "dataset.tsv")}");
        return Task.FromResult(ExitCodes.Success);
    }

    /// <summary>The class of a dataset image is its top-level folder.</summary>
    private static string ClassOf(string relativePath)
    {
        int slash = relativePath.IndexOf('/');
        return slash > 0 ? relativePath[..slash] : string.Empty;
    }

    private static (string? Crop, int Cells, ImageScale? Scale, string? Problem, FieldColours? Colours) CropOne(LeukocyteSegmenter segmenter, InputFile file, string output, int? size, ImageScale? scale)
    {
        try
        {
            using var image = ImageDecoder.DecodeFile(file.Path);
            using var result = segmenter.Segment(image, scale);
            if (Target(result) is not { } target)
            {
                return (null, 0, result.Scale, "no leukocyte found", null);
            }

            var crop = Path.ChangeExtension(file.Name, ".png");
            SegmentCommand.WriteCrop(output, crop, target.Crop, size);
            return (crop, result.Leukocytes.Count, result.Scale, null, result.Field);
        }
        catch (Exception e) when (e is InvalidImageException or IOException or UnauthorizedAccessException)
        {
            return (null, 0, null, e.Message, null);
        }
        catch (OpenCvSharp.OpenCVException e)
        {
            throw new InvalidOperationException($"segmenting '{file.Path}' failed: {e.Message}", e);
        }
    }
}
