using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Leuko.Cli.Commands;
using Leuko.Core.Imaging;
using Leuko.Pipeline;
using Leuko.Pipeline.Archives;
using Leuko.Tests;

namespace Leuko.Cli.Tests;

public class AnalyzeCommandTests
{
    private const int Sigterm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    private static JsonNode Results(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))!;

    private static JsonArray Images(JsonNode results) => results["images"]!.AsArray();

    private static JsonNode Image(JsonNode results, string sourceEnd) =>
        Assert.Single(Images(results), i => i!["source"]!.GetValue<string>().EndsWith(sourceEnd, StringComparison.Ordinal))!;

    /// <summary>Writes <paramref name="source"/> as <paramref name="transform"/> makes it to <paramref name="path"/>; returns the path.</summary>
    private static string Transformed(string source, string path, Action<OpenCvSharp.Mat, OpenCvSharp.Mat> transform)
    {
        using var image = OpenCvSharp.Cv2.ImRead(source);
        using var output = new OpenCvSharp.Mat();
        transform(image, output);
        OpenCvSharp.Cv2.ImWrite(path, output);
        return path;
    }

    private static Task<CliResult> Analyze(string output, params string[] inputs) =>
        CliRunner.RunAsync(["analyze", .. inputs, "--out", output]);

    [Fact]
    public async Task CellsOfAStainUnlikeEveryTrainingMicroscopeAreFlaggedAndTheRunSaysSo()
    {
        using var temp = new TempDir();
        var field = CliRunner.SampleImage("BloodImage_00000.jpg");
        // The same field as a microscope with a greener lamp, or another stain, would give it: three quarters of its green.
        var recoloured = Transformed(field, Path.Combine(temp.Path, "greener-lamp.png"), (image, output) => OpenCvSharp.Cv2.Multiply(image, new OpenCvSharp.Scalar(1, 0.75, 1), output));

        var plain = await Analyze(Path.Combine(temp.Path, "plain"), field);
        var shifted = await Analyze(Path.Combine(temp.Path, "shifted"), recoloured);

        Assert.Equal(0, plain.ExitCode);
        Assert.Equal(0, shifted.ExitCode);
        var before = Results(Path.Combine(temp.Path, "plain"));
        var after = Results(Path.Combine(temp.Path, "shifted"));
        Assert.Equal(0, before["summary"]!["unfamiliarStain"]!.GetValue<int>());
        Assert.DoesNotContain("unfamiliar-stain", plain.Stderr);
        var cells = Image(after, "greener-lamp.png")["cells"]!.AsArray();
        Assert.NotEmpty(cells);
        Assert.All(cells, c =>
        {
            Assert.True(c!["needsReview"]!.GetValue<bool>());
            Assert.Equal("unfamiliar-stain", c["reviewReason"]!.GetValue<string>());
        });
        Assert.Equal(cells.Count, after["summary"]!["unfamiliarStain"]!.GetValue<int>());
        Assert.Contains($"warning: {cells.Count} of {cells.Count} cells look unlike every microscope the model was trained on", shifted.Stderr);
    }

    [Fact]
    public async Task CellsOfAnImageCoarserThanTheModelsInputAreFlaggedLowResolutionAndTheRunSaysSo()
    {
        using var temp = new TempDir();
        var field = CliRunner.SampleImage("BloodImage_00000.jpg");
        // The same field as a quarter of the magnification would show it (BCCD is about 0.08 µm per pixel): 0.32 µm per
        // pixel, so the cell's 18 µm window is 56 pixels, fewer than the model's 64.
        var small = Transformed(field, Path.Combine(temp.Path, "quarter.png"), (image, output) =>
            OpenCvSharp.Cv2.Resize(image, output, new OpenCvSharp.Size(image.Width / 4, image.Height / 4), interpolation: OpenCvSharp.InterpolationFlags.Area));

        var plain = await CliRunner.RunAsync("analyze", field, "--out", Path.Combine(temp.Path, "plain"), "--microns-per-pixel", "0.08");
        var coarse = await CliRunner.RunAsync("analyze", small, "--out", Path.Combine(temp.Path, "coarse"), "--microns-per-pixel", "0.32");

        Assert.Equal(0, plain.ExitCode);
        Assert.Equal(0, coarse.ExitCode);
        Assert.Equal(0, Results(Path.Combine(temp.Path, "plain"))["summary"]!["lowResolution"]!.GetValue<int>());
        Assert.DoesNotContain("low-resolution", plain.Stderr);
        var after = Results(Path.Combine(temp.Path, "coarse"));
        var cells = Image(after, "quarter.png")["cells"]!.AsArray();
        Assert.NotEmpty(cells);
        Assert.All(cells, c => Assert.True(c!["needsReview"]!.GetValue<bool>()));
        int low = cells.Count(c => c!["reviewReason"]!.GetValue<string>() == "low-resolution");
        Assert.True(low > 0, "no cell flagged low-resolution");
        // Only the reasons that come before it may take its place: the cell's kind, and its stain.
        Assert.All(cells, c => Assert.Contains(c!["reviewReason"]!.GetValue<string>(), new[] { "low-resolution", "other-cell", "possible-other-cell", "unfamiliar-stain" }));
        Assert.Equal(low, after["summary"]!["lowResolution"]!.GetValue<int>());
        Assert.Contains($"warning: {low} of {cells.Count} cells are from images coarser than the model's input (64 px across its 18 µm window", coarse.Stderr);
    }

    [Fact]
    public async Task AWebPInAFolderIsAnalysedAsItsJpegIsAndEachKeepsItsAnnotatedImage()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        using (var field = OpenCvSharp.Cv2.ImRead(CliRunner.SampleImage("BloodImage_00000.jpg")))
        {
            // Lossless, so that the pixels are the JPEG's as decoded.
            OpenCvSharp.Cv2.ImEncode(".webp", field, out byte[] webp, [(int)OpenCvSharp.ImwriteFlags.WebPQuality, 101]);
            File.WriteAllBytes(Path.Combine(inputs.Path, "field.webp"), webp);
        }

        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "field.jpg"));

        var r = await Analyze(output.Path, inputs.Path);

        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = Results(output.Path);
        Assert.Empty(results["skipped"]!.AsArray());
        var (jpeg, webpCells) = (Image(results, "field.jpg")["cells"]!.ToJsonString(), Image(results, "field.webp")["cells"]!.ToJsonString());
        Assert.Equal(jpeg, webpCells);
        Assert.Equal("completed", Image(results, "field.webp")["status"]!.GetValue<string>());

        // Two inputs whose names differ only in their extension keep an annotated image each (both were annotated/field.jpg).
        var annotated = new[] { "field.jpg", "field.webp" }.Select(n => Image(results, n)["annotated"]!.GetValue<string>()).ToList();
        Assert.Equal(["annotated/field.jpg", "annotated/field~2.jpg"], annotated);
        Assert.All(annotated, a => Assert.True(File.Exists(Path.Combine(output.Path, a)), a));
    }

    [Fact]
    public async Task AFoldersFilesThatAreNotImagesByTheirNamesAreListedAsSkippedAndABrokenLinkFailsWithItsReason()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "field.jpg"));
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "IMG_0001")); // a JPEG without extension
        File.WriteAllText(Path.Combine(inputs.Path, "notes.txt"), "day 1");
        File.WriteAllBytes(Path.Combine(inputs.Path, ".DS_Store"), [0, 0, 0, 1]);
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "gone.jpg"), Path.Combine(inputs.Path, "no-such-file.jpg"));

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(1, r.ExitCode); // the broken link
        var results = Results(output.Path);
        Assert.Equal(["field.jpg", "gone.jpg"], Images(results).Select(i => Path.GetFileName(i!["source"]!.GetValue<string>())));
        Assert.Equal("the file is gone: removed after the run began, or a link to nothing", Image(results, "gone.jpg")["error"]!.GetValue<string>());
        var skipped = results["skipped"]!.AsArray();
        Assert.Equal([".DS_Store", "IMG_0001", "notes.txt"], skipped.Select(s => Path.GetFileName(s!["source"]!.GetValue<string>())));
        Assert.Equal("operating-system metadata", skipped[0]!["reason"]!.GetValue<string>());
        Assert.StartsWith("not an image by its name (no extension): ", skipped[1]!["reason"]!.GetValue<string>());
        Assert.StartsWith("not an image by its name (.txt): ", skipped[2]!["reason"]!.GetValue<string>());
        Assert.Equal(3, results["summary"]!["skipped"]!.GetValue<int>());
        Assert.Contains("3 files skipped (not images: listed in the results)", r.Stdout);

        // Named on the command line, the file without extension is read by its content.
        using var named = new TempDir();
        Assert.Equal(0, (await Analyze(named.Path, Path.Combine(inputs.Path, "IMG_0001"))).ExitCode);
        Assert.Equal("completed", Image(Results(named.Path), "IMG_0001")["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task APipeADeviceOrAFileNoImageCanBeIsNotReadAndLinkedFoldersAreSearchedOnce()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "field.jpg"));
        var day2 = Directory.CreateDirectory(Path.Combine(inputs.Path, "day2")).FullName;
        File.Copy(CliRunner.SampleImage("BloodImage_00037.jpg"), Path.Combine(day2, "other.jpg"));
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", Path.Combine(inputs.Path, "pipe.jpg")))
        {
            await mkfifo.WaitForExitAsync(); // a named pipe: opening it waits for a writer that never comes
        }

        using (var big = File.Create(Path.Combine(inputs.Path, "big.jpg")))
        {
            big.SetLength(ImageFile.MaxBytes + 1); // sparse: no disk used, and nothing worth reading
        }

        Directory.CreateSymbolicLink(Path.Combine(day2, "up"), ".."); // a loop: a link to the folder that holds it
        Directory.CreateSymbolicLink(Path.Combine(inputs.Path, "a-link"), day2); // another name for day2, before it by name
        Directory.CreateSymbolicLink(Path.Combine(inputs.Path, "self"), inputs.Path);
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "linked.jpg"), "field.jpg"); // a link's own length is its target's name's
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "pipe-link.jpg"), Path.Combine(inputs.Path, "pipe.jpg"));
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "big-link.jpg"), Path.Combine(inputs.Path, "big.jpg"));
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "loop-a.jpg"), "loop-b.jpg");
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "loop-b.jpg"), "loop-a.jpg");

        var run = Analyze(output.Path, inputs.Path, "/dev/zero"); // a device that never ends
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(3)))); // it used to wait on the pipe, or search the loops without end
        var r = await run;

        Assert.Equal(1, r.ExitCode);
        var images = Images(Results(output.Path));
        Assert.Equal(["big-link.jpg", "big.jpg", "day2/other.jpg", "field.jpg", "linked.jpg", "loop-a.jpg", "loop-b.jpg", "pipe-link.jpg", "pipe.jpg", "/dev/zero"],
            images.Select(i => i!["source"]!.GetValue<string>()).Select(s => s.StartsWith(inputs.Path, StringComparison.Ordinal) ? Path.GetRelativePath(inputs.Path, s) : s));
        Assert.Equal(["failed", "failed", "completed", "completed", "completed", "failed", "failed", "failed", "failed", "failed"], images.Select(i => i!["status"]!.GetValue<string>()));
        Assert.All(images.Take(2), i => Assert.StartsWith("file too large (268,435,457 bytes): an image file is at most 256 MB", i!["error"]!.GetValue<string>()));
        Assert.Equal(images[3]!["cells"]!.ToJsonString(), images[4]!["cells"]!.ToJsonString()); // the link reads as the file it leads to
        Assert.All(images.Skip(5).Take(2), i => Assert.Contains("symbolic links", i!["error"]!.GetValue<string>()));
        Assert.All(images.Skip(7), i => Assert.Equal(ImageFile.Empty, i!["error"]!.GetValue<string>()));
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public async Task AFolderWithoutImagesIsAnErrorThatSaysWhatItHolds()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        File.WriteAllText(Path.Combine(inputs.Path, "notes.txt"), "day 1");

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(ExitCodes.BadUsage, r.ExitCode);
        Assert.Contains("no images found in", r.Stderr);
        Assert.Contains("none of the 1 files found is (", r.Stderr);
        Assert.Contains("notes.txt: not an image by its name (.txt)", r.Stderr);
    }

    [Theory]
    [InlineData("analyze")]
    [InlineData("segment")]
    [InlineData("segment --dataset")]
    [InlineData("export reviews")]
    public async Task AnOutputFolderThatCannotBeMadeIsOneErrorBeforeAnyWork(string command)
    {
        using var temp = new TempDir();
        var file = Path.Combine(temp.Path, "results.json");
        File.WriteAllText(file, "kept");
        string[] arguments = command switch
        {
            "segment --dataset" => ["segment", "--dataset", CliRunner.SampleImages],
            "export reviews" => ["export", "reviews", "--storage", "UseDevelopmentStorage=true"], // the folder is checked before the storage
            _ => [command, CliRunner.SampleImage("BloodImage_00000.jpg")],
        };
        foreach (var (output, says) in new[] { (file, "is a file; give a folder"), (Path.Combine(file, "out"), "cannot write to the output folder") })
        {
            var r = await CliRunner.RunAsync([.. arguments, "--out", output]);

            Assert.Equal(ExitCodes.BadUsage, r.ExitCode);
            Assert.Contains($"error: ", r.Stderr);
            Assert.Contains(says, r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.Equal("", r.Stdout);
        }

        Assert.Equal("kept", File.ReadAllText(file));
        Assert.Equal([file], Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public async Task AnOutputFolderInsideTheInputsIsNotReadAsInputsByTheNextRun()
    {
        using var temp = new TempDir();
        foreach (var name in new[] { "BloodImage_00000.jpg", "BloodImage_00009.jpg" })
        {
            File.Copy(CliRunner.SampleImage(name), Path.Combine(temp.Path, name));
        }

        var output = Path.Combine(temp.Path, "results");
        var first = await Analyze(output, temp.Path);
        var again = await Analyze(output, temp.Path);

        Assert.Equal(ExitCodes.Success, first.ExitCode);
        Assert.Equal(ExitCodes.Success, again.ExitCode);
        Assert.True(Directory.GetFiles(Path.Combine(output, "annotated")).Length == 2, first.Stdout);
        Assert.StartsWith("2 images in ", again.Stdout); // not the first run's annotated copies too
        Assert.Equal(2, Images(Results(output)).Count);
        Assert.Empty(Results(output)["skipped"]!.AsArray()); // nor its results.json, results.csv and report.html

        Directory.Delete(output, recursive: true);
        var segmented = Path.Combine(temp.Path, "segmented");
        var segmentedOnce = await CliRunner.RunAsync("segment", temp.Path, "--out", segmented);
        var segmentedAgain = await CliRunner.RunAsync("segment", temp.Path, "--out", segmented);
        Assert.StartsWith("2 images: ", segmentedOnce.Stdout);
        Assert.StartsWith("2 images: ", segmentedAgain.Stdout); // not the first run's crops too
    }

    [Theory]
    [InlineData("analyze")]
    [InlineData("segment")]
    [InlineData("segment --dataset")]
    public async Task TheInputFolderItselfAsTheOutputFolderIsRefused(string command)
    {
        using var temp = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(temp.Path, "BloodImage_00000.jpg"));
        string[] arguments = command == "segment --dataset" ? ["segment", "--dataset", temp.Path] : [command, temp.Path];

        var r = await CliRunner.RunAsync([.. arguments, "--out", Path.Combine(temp.Path, ".")]);

        Assert.Equal(ExitCodes.BadUsage, r.ExitCode);
        Assert.Contains("is also an input folder", r.Stderr);
        Assert.Equal(["BloodImage_00000.jpg"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task TheSampleFieldsGiveEveryOutput()
    {
        using var temp = new TempDir();
        var r = await Analyze(temp.Path, CliRunner.SampleImages);

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("6 images", r.Stdout);
        Assert.Contains("report.html", r.Stdout);
        var results = Results(temp.Path);
        Assert.Equal(2, results["schemaVersion"]!.GetValue<int>());
        Assert.Equal(6, Images(results).Count);
        var summary = results["summary"]!;
        Assert.Equal(6, summary["completed"]!.GetValue<int>());
        int cells = summary["cells"]!.GetValue<int>();
        Assert.Equal(7, cells); // the samples' annotations hold 7 leukocytes, all found
        // The five-part differential plus the other cells seen account for every cell.
        Assert.Equal(["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"], summary["differential"]!.AsObject().Select(c => c.Key));
        Assert.Equal(["IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"], summary["otherCells"]!.AsObject().Select(c => c.Key));
        int counted = summary["differential"]!.AsObject().Sum(c => c.Value!["count"]!.GetValue<int>());
        Assert.Equal(cells, counted + summary["otherCells"]!.AsObject().Sum(c => c.Value!.GetValue<int>()));
        if (counted > 0)
        {
            Assert.Equal(100.0, summary["differential"]!.AsObject().Sum(c => c.Value!["percent"]!.GetValue<double>()), 0);
        }

        // Each share comes with its exact 95% interval, which holds it.
        Assert.All(summary["differential"]!.AsObject(), c =>
        {
            var (low, high) = BinomialInterval.Percent(c.Value!["count"]!.GetValue<int>(), counted);
            Assert.Equal(Math.Round(low, 1), c.Value!["percentLow"]!.GetValue<double>());
            Assert.Equal(Math.Round(high, 1), c.Value!["percentHigh"]!.GetValue<double>());
            Assert.InRange(c.Value!["percent"]!.GetValue<double>(), c.Value!["percentLow"]!.GetValue<double>(), c.Value!["percentHigh"]!.GetValue<double>());
        });

        foreach (var image in Images(results))
        {
            Assert.Equal(["source", "status", "error", "width", "height", "annotated", "scale", "orientation", "cells", "differential", "otherCells"], image!.AsObject().Select(p => p.Key));
            Assert.Equal(1, image["orientation"]!.GetValue<int>()); // the samples have no EXIF orientation
            Assert.True(File.Exists(Path.Combine(temp.Path, image["annotated"]!.GetValue<string>())));
            // BCCD fields are full of red cells: the scale is measured, near BCCD's 0.08 µm/px (one field of a packed
            // smear can be off by half: 2% of the 292 BCCD fields are estimated above 0.13).
            Assert.Equal("estimated", image["scale"]!["source"]!.GetValue<string>());
            Assert.InRange(image["scale"]!["micronsPerPixel"]!.GetValue<double>(), 0.08 / 1.7, 0.08 * 1.7);
            foreach (var cell in image["cells"]!.AsArray())
            {
                Assert.Equal(["index", "box", "class", "confidence", "probabilities", "needsReview", "area", "reviewReason"], cell!.AsObject().Select(p => p.Key));
                Assert.Equal(cell["needsReview"]!.GetValue<bool>(), cell["reviewReason"] is not null);
            }
        }

        var scales = Images(results).Select(i => i!["scale"]!["micronsPerPixel"]!.GetValue<double>()).Order().ToList();
        Assert.InRange((scales[2] + scales[3]) / 2, 0.065, 0.1); // the median field

        var csv = File.ReadAllLines(Path.Combine(temp.Path, "results.csv"));
        Assert.Equal(
            "source,cell,class,confidence,needs_review,x,y,width,height,area,review_reason,microns_per_pixel,scale_source," +
            "p_basophil,p_eosinophil,p_lymphocyte,p_monocyte,p_neutrophil,p_immature_granulocyte,p_erythroblast,p_platelet", csv[0]);
        Assert.Equal(cells, csv.Length - 1);
        Assert.True(File.Exists(Path.Combine(temp.Path, "report.html")));
    }

    [Fact]
    public async Task AGivenScaleOverridesTheEstimate()
    {
        using var estimated = new TempDir();
        using var given = new TempDir();
        var sample = Path.Combine(CliRunner.SampleImages, "BloodImage_00037.jpg");
        Assert.Equal(0, (await Analyze(estimated.Path, sample)).ExitCode);
        var r = await CliRunner.RunAsync(["analyze", sample, "--out", given.Path, "--microns-per-pixel", "0.2"]);

        Assert.Equal(0, r.ExitCode);
        var scale = Image(Results(given.Path), "BloodImage_00037.jpg")["scale"]!;
        Assert.Equal("given", scale["source"]!.GetValue<string>());
        Assert.Equal(0.2, scale["micronsPerPixel"]!.GetValue<double>());
        Assert.Equal("estimated", Image(Results(estimated.Path), "BloodImage_00037.jpg")["scale"]!["source"]!.GetValue<string>());
    }

    [Fact]
    public async Task BadFilesFailAloneAndEveryInputIsReportedOnce()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "good1.jpg"));
        File.Copy(CliRunner.SampleImage("BloodImage_00009.jpg"), Path.Combine(inputs.Path, "good2.jpg"));
        File.WriteAllBytes(Path.Combine(inputs.Path, "empty.jpg"), []);
        File.WriteAllText(Path.Combine(inputs.Path, "text.png"), "this is not a picture");
        var jpeg = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        File.WriteAllBytes(Path.Combine(inputs.Path, "truncated.jpg"), jpeg[..(jpeg.Length / 2)]);
        File.WriteAllText(Path.Combine(inputs.Path, "notes.txt"), "not an image extension: not an input of a folder");

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(1, r.ExitCode);
        var results = Results(output.Path);
        Assert.Equal(["empty.jpg", "good1.jpg", "good2.jpg", "text.png", "truncated.jpg"],
            Images(results).Select(i => Path.GetFileName(i!["source"]!.GetValue<string>())));
        foreach (var bad in new[] { "empty.jpg", "text.png", "truncated.jpg" })
        {
            var image = Image(results, bad);
            Assert.Equal("failed", image["status"]!.GetValue<string>());
            Assert.False(string.IsNullOrWhiteSpace(image["error"]!.GetValue<string>()));
            Assert.Contains($"failed: {image["source"]}", r.Stderr);
        }

        Assert.All(new[] { "good1.jpg", "good2.jpg" }, good => Assert.Equal("completed", Image(results, good)["status"]!.GetValue<string>()));
        Assert.Equal(3, results["summary"]!["failed"]!.GetValue<int>());
    }

    [Fact]
    public async Task AJpegWithDataAfterItsEndIsAnalysedAndOneCutShortIsNot()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var jpeg = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        // What a camera or editor appends after the end-of-image marker: here 10 KB, with bytes that look like markers.
        var trailer = Enumerable.Range(0, 10_000).Select(i => (byte)(i % 7 == 0 ? 0xFF : i % 251)).ToArray();
        File.WriteAllBytes(Path.Combine(inputs.Path, "trailer.jpg"), [.. jpeg, .. trailer]);
        File.WriteAllBytes(Path.Combine(inputs.Path, "cut.jpg"), jpeg[..(jpeg.Length - 300)]);
        File.WriteAllBytes(Path.Combine(inputs.Path, "plain.jpg"), jpeg);

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(1, r.ExitCode);
        var results = Results(output.Path);
        var trailing = Image(results, "trailer.jpg");
        Assert.Equal("completed", trailing["status"]!.GetValue<string>());
        Assert.Equal(Image(results, "plain.jpg")["cells"]!.ToJsonString(), trailing["cells"]!.ToJsonString());
        var cut = Image(results, "cut.jpg");
        Assert.Equal("failed", cut["status"]!.GetValue<string>());
        Assert.Contains("truncated JPEG: the file ends before its end-of-image marker", cut["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ResultsDoNotDependOnParallelism()
    {
        using var one = new TempDir();
        using var four = new TempDir();
        var samples = Path.Combine(AppContext.BaseDirectory, "samples");
        Assert.Equal(0, (await CliRunner.RunAsync("analyze", samples, "--out", one.Path, "--parallel", "1")).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("analyze", samples, "--out", four.Path, "--parallel", "4")).ExitCode);

        var a = Results(one.Path);
        var b = Results(four.Path);
        Assert.Equal(Directory.GetFiles(samples, "*.jp*g", SearchOption.AllDirectories).Length, Images(a).Count);
        Assert.Equal(Images(a).ToJsonString(), Images(b).ToJsonString());
        Assert.Equal(a["summary"]!["differential"]!.ToJsonString(), b["summary"]!["differential"]!.ToJsonString());
        Assert.Equal(1, a["summary"]!["parallel"]!.GetValue<int>());
        Assert.Equal(4, b["summary"]!["parallel"]!.GetValue<int>());
        Assert.Equal(File.ReadAllText(Path.Combine(one.Path, "results.csv")), File.ReadAllText(Path.Combine(four.Path, "results.csv")));
    }

    [Fact]
    public async Task AnArchiveIsAnalysedSafely()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var image = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        var zip = Path.Combine(inputs.Path, "batch.zip");
        File.WriteAllBytes(zip, Zips.Build(
            ("day1/field.jpg", image),
            ("../escape.jpg", image),
            ("/tmp/absolute.jpg", image),
            ("day1/../../up.jpg", image),
            ("readme.txt", "hello"u8.ToArray()),
            ("inner.zip", Zips.Build(("nested.jpg", image))),
            ("bomb.bmp", new byte[20_000_000])));
        var outside = Path.Combine(inputs.Path, "out");

        var r = await Analyze(outside, zip);

        Assert.Equal(1, r.ExitCode);
        var results = Results(outside);
        Assert.Equal(
            new[] { "day1/field.jpg", "../escape.jpg", "/tmp/absolute.jpg", "day1/../../up.jpg", "bomb.bmp" }.Select(e => $"{zip}!{e}"),
            Images(results).Select(i => i!["source"]!.GetValue<string>()));
        var field = Image(results, "!day1/field.jpg");
        Assert.Equal("completed", field["status"]!.GetValue<string>());
        var cell = field["cells"]![0]!;
        Assert.True(cell["class"]!.GetValue<string>() == "NEUTROPHIL" || cell["needsReview"]!.GetValue<bool>(), cell.ToJsonString()); // the sample's annotated neutrophil, or flagged
        Assert.Equal("annotated/batch/day1/field.jpg", field["annotated"]!.GetValue<string>());
        foreach (var unsafeName in new[] { "!../escape.jpg", "!/tmp/absolute.jpg", "!day1/../../up.jpg" })
        {
            var refused = Image(results, unsafeName);
            Assert.Equal("failed", refused["status"]!.GetValue<string>());
            Assert.Contains("unsafe name", refused["error"]!.GetValue<string>());
        }

        Assert.Contains("compression ratio", Image(results, "!bomb.bmp")["error"]!.GetValue<string>());
        var skipped = results["skipped"]!.AsArray();
        Assert.Equal(["readme.txt", "inner.zip"], skipped.Select(s => s!["source"]!.GetValue<string>().Split('!')[1]));
        Assert.Contains("nested archive", skipped[1]!["reason"]!.GetValue<string>());
        Assert.Equal(2, results["summary"]!["skipped"]!.GetValue<int>());

        // Nothing was written outside the output folder, and nothing but the one good field inside annotated/.
        Assert.Equal([zip], Directory.GetFiles(inputs.Path));
        Assert.Equal(["out"], Directory.GetDirectories(inputs.Path).Select(Path.GetFileName));
        Assert.Equal([Path.Combine(outside, "annotated", "batch", "day1", "field.jpg")], Directory.GetFiles(Path.Combine(outside, "annotated"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ANameWithALineBreakOrAnEscapeIsPrintedOnOneLineAndKeptInTheResults()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var forged = Path.Combine(inputs.Path, "a\nfailed: forged\u001b[2J.jpg"); // a name Linux allows
        File.WriteAllText(forged, "not a JPEG");
        var zip = Path.Combine(inputs.Path, "batch.zip");
        File.WriteAllBytes(zip, Zips.Build(("b\r\nfailed: forged too.jpg", File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg")))));

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain(r.Stderr.Split('\n'), line => line.StartsWith("failed: forged", StringComparison.Ordinal));
        Assert.DoesNotContain('\u001b', r.Stderr);
        Assert.DoesNotContain('\r', r.Stderr);
        Assert.Contains(@"a\nfailed: forged\u001b[2J.jpg: ", r.Stderr);
        Assert.Contains(@"!b\r\nfailed: forged too.jpg: unsafe name in archive", r.Stderr);
        Assert.Equal(new[] { forged, $"{zip}!b\r\nfailed: forged too.jpg" }.Order(StringComparer.Ordinal),
            Images(Results(output.Path)).Select(i => i!["source"]!.GetValue<string>()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task CorruptEntriesFailAndDuplicateOrLongNamesAreAnalysedUnderTheirOwnSources()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var image = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        var other = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00037.jpg"));
        var longName = string.Join('/', Enumerable.Range(0, 12).Select(i => $"{new string('d', 90)}{i}")) + "/" + new string('f', 300) + ".jpg";
        var zip = Path.Combine(inputs.Path, "batch.zip");
        File.WriteAllBytes(zip, Zips.WithCorruptFirstEntry(Zips.Build(System.IO.Compression.CompressionLevel.NoCompression,
            ("bad.jpg", image), ("dup.jpg", image), ("dup.jpg", other), ("DUP.JPG", image), (longName, other))));

        var r = await Analyze(output.Path, zip);

        Assert.Equal(1, r.ExitCode); // the corrupt entry
        var results = Results(output.Path);
        Assert.Equal(new[] { "bad.jpg", "dup.jpg", "dup.jpg", "DUP.JPG", longName }.Select(e => $"{zip}!{e}"),
            Images(results).Select(i => i!["source"]!.GetValue<string>()));
        var bad = Images(results)[0]!;
        Assert.Equal("failed", bad["status"]!.GetValue<string>());
        Assert.StartsWith("corrupt entry: the CRC-32", bad["error"]!.GetValue<string>());

        // Every other entry is analysed, each with an annotated image of its own: both of one name, and the long one.
        var analysed = Images(results).Skip(1).ToList();
        Assert.All(analysed, i => Assert.Equal("completed", i!["status"]!.GetValue<string>()));
        var annotated = analysed.Select(i => i!["annotated"]!.GetValue<string>()).ToList();
        Assert.Equal(["annotated/batch/dup.jpg", "annotated/batch/dup~2.jpg", "annotated/batch/DUP~3.jpg"], annotated[..3]);
        Assert.Equal(analysed[0]!["cells"]!.ToJsonString(), analysed[2]!["cells"]!.ToJsonString());
        Assert.NotEqual(analysed[0]!["cells"]!.ToJsonString(), analysed[1]!["cells"]!.ToJsonString()); // the second dup.jpg is the other field
        Assert.Equal(Images(results)[4]!["cells"]!.ToJsonString(), analysed[1]!["cells"]!.ToJsonString());
        Assert.All(annotated, a => Assert.True(File.Exists(Path.Combine(output.Path, a)), a));
        Assert.DoesNotContain("PathTooLong", r.Stderr);
    }

    [Fact]
    public async Task TheExifOrientationIsAppliedAndRecorded()
    {
        // A camera held sideways stores the field as it was shot and says "turn 90° clockwise" (EXIF 6): the results are of
        // the field as viewers show it, the same as of a copy turned losslessly.
        using var inputs = new TempDir();
        using var output = new TempDir();
        var jpeg = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        File.WriteAllBytes(Path.Combine(inputs.Path, "sideways.jpg"), Exif.Jpeg(jpeg, 6));
        using (var decoded = OpenCvSharp.Cv2.ImDecode(jpeg, OpenCvSharp.ImreadModes.Color))
        using (var turned = new OpenCvSharp.Mat())
        {
            OpenCvSharp.Cv2.Rotate(decoded, turned, OpenCvSharp.RotateFlags.Rotate90Clockwise);
            OpenCvSharp.Cv2.ImEncode(".png", turned, out var png);
            File.WriteAllBytes(Path.Combine(inputs.Path, "turned.png"), png);
            OpenCvSharp.Cv2.ImEncode(".png", decoded, out var plain);
            File.WriteAllBytes(Path.Combine(inputs.Path, "tagged.png"), Exif.Png(plain, 6));
        }

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(0, r.ExitCode);
        var results = Results(output.Path);
        var sideways = Image(results, "sideways.jpg");
        var turnedCopy = Image(results, "turned.png");
        var tagged = Image(results, "tagged.png");
        Assert.Equal(6, sideways["orientation"]!.GetValue<int>());
        Assert.Equal(6, tagged["orientation"]!.GetValue<int>());
        Assert.Equal(1, turnedCopy["orientation"]!.GetValue<int>());
        Assert.All(new[] { sideways, turnedCopy, tagged }, i => Assert.Equal((480, 640), (i["width"]!.GetValue<int>(), i["height"]!.GetValue<int>())));
        Assert.Equal(turnedCopy["cells"]!.ToJsonString(), tagged["cells"]!.ToJsonString());
        Assert.Equal(turnedCopy["cells"]!.ToJsonString(), sideways["cells"]!.ToJsonString()); // the same pixels, turned exactly
        using var drawn = OpenCvSharp.Cv2.ImRead(Path.Combine(output.Path, sideways["annotated"]!.GetValue<string>()));
        Assert.Equal(new OpenCvSharp.Size(480, 640), drawn.Size());
    }

    [Fact]
    public async Task AnArchiveOrAnImageIsKnownByItsContentNotItsName()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var image = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        var photo = Path.Combine(inputs.Path, "photo.zip");
        File.WriteAllBytes(photo, image);
        var batch = Path.Combine(inputs.Path, "batch.jpg");
        File.WriteAllBytes(batch, Zips.Build(("field.jpg", image)));

        var r = await Analyze(output.Path, photo, batch);

        Assert.Equal(0, r.ExitCode);
        var results = Results(output.Path);
        Assert.Equal([$"{photo}", $"{batch}!field.jpg"], Images(results).Select(i => i!["source"]!.GetValue<string>()));
        Assert.All(Images(results), i => Assert.Equal("completed", i!["status"]!.GetValue<string>()));
        Assert.Equal(Image(results, "photo.zip")["cells"]!.ToJsonString(), Image(results, "!field.jpg")["cells"]!.ToJsonString());
    }

    [Fact]
    public async Task AnArchiveWithNoImagesFailsWithItsReason()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var empty = Path.Combine(inputs.Path, "empty.zip");
        File.WriteAllBytes(empty, Zips.Build());
        var folders = Path.Combine(inputs.Path, "folders.zip");
        File.WriteAllBytes(folders, Zips.Build(("day1/", []), ("day1/morning/", [])));
        var notes = Path.Combine(inputs.Path, "notes.zip");
        File.WriteAllBytes(notes, Zips.Build(("readme.txt", "no pictures here"u8.ToArray())));
        var plain = Path.Combine(inputs.Path, "plain.jpg");
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), plain);

        var r = await Analyze(output.Path, inputs.Path);

        Assert.Equal(1, r.ExitCode);
        var results = Results(output.Path);
        Assert.Equal([empty, folders, notes, plain], Images(results).Select(i => i!["source"]!.GetValue<string>()));
        foreach (var archive in new[] { empty, folders, notes })
        {
            var failed = Image(results, Path.GetFileName(archive));
            Assert.Equal("failed", failed["status"]!.GetValue<string>());
            Assert.Contains("archive holds no images", failed["error"]!.GetValue<string>());
            Assert.Contains($"failed: {archive}", r.Stderr);
        }

        Assert.Contains("readme.txt", Image(results, "notes.zip")["error"]!.GetValue<string>());
        Assert.Equal("completed", Image(results, "plain.jpg")["status"]!.GetValue<string>());
        Assert.Equal(3, results["summary"]!["failed"]!.GetValue<int>());
    }

    [Fact]
    public async Task ArchiveLimitsRefuseTheWholeArchiveAndTheRunGoesOn()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var image = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        var many = Path.Combine(inputs.Path, "many.zip");
        File.WriteAllBytes(many, Zips.Build(Enumerable.Range(0, 6).Select(i => ($"f{i}.jpg", image)).ToArray()));
        var big = Path.Combine(inputs.Path, "big.zip");
        File.WriteAllBytes(big, Zips.Build(CompressionLevel.NoCompression, ("a.jpg", image), ("b.jpg", image), ("c.jpg", image)));
        var notZip = Path.Combine(inputs.Path, "broken.zip");
        File.WriteAllText(notZip, "PK but not really");
        var plain = Path.Combine(inputs.Path, "plain.jpg");
        File.WriteAllBytes(plain, image);

        int exit = await AnalyzeCommand.RunAsync(
            [many, big, notZip, plain], output.Path, ["json"], 2, Leuko.Core.Classification.LeukocyteClassifier.DefaultModelPath,
            new ArchiveLimits(MaxEntries: 5, MaxTotalBytes: image.Length * 3L - 1), TextWriter.Null, TextWriter.Null, CancellationToken.None);

        Assert.Equal(1, exit);
        var results = Results(output.Path);
        Assert.Equal([many, big, notZip, plain], Images(results).Select(i => i!["source"]!.GetValue<string>()));
        Assert.Contains("6 entries, more than the limit of 5", Image(results, "many.zip")["error"]!.GetValue<string>());
        Assert.Contains("uncompressed bytes, more than the limit", Image(results, "big.zip")["error"]!.GetValue<string>());
        Assert.Contains("not a readable zip archive", Image(results, "broken.zip")["error"]!.GetValue<string>());
        Assert.Equal("completed", Image(results, "plain.jpg")["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task AStoppedRunWritesTheResultsOfEveryImageItReadInInputOrderAndSaysItWasInterrupted()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var samples = Directory.GetFiles(CliRunner.SampleImages).Order(StringComparer.Ordinal).ToArray();
        for (int i = 0; i < 60; i++)
        {
            File.CreateSymbolicLink(Path.Combine(inputs.Path, $"field{i:000}.jpg"), samples[i % samples.Length]);
        }

        using var classifier = Leuko.Core.Classification.LeukocyteClassifier.Load(Leuko.Core.Classification.LeukocyteClassifier.DefaultModelPath);
        using var plan = Leuko.Cli.Analysis.AnalysisPlan.Create([inputs.Path], ArchiveLimits.Default);
        using var stop = new CancellationTokenSource();
        int seen = 0;

        // Stopped when the first image is done: the images already read (a window of parallel x 8 at most) are finished.
        var outcome = await AnalyzeCommand.AnalyzeAsync(plan, classifier, output.Path, ["json", "csv", "html"], 1,
            _ => { if (Interlocked.Increment(ref seen) == 1) { stop.Cancel(); } }, stop.Token);

        var results = Results(output.Path);
        int done = Images(results).Count;
        Assert.InRange(done, 1, 59);
        Assert.Equal(done, seen);
        Assert.Equal(Enumerable.Range(0, done).Select(i => $"field{i:000}.jpg"), Images(results).Select(i => Path.GetFileName(i!["source"]!.GetValue<string>())));
        Assert.Equal(60 - done, results["summary"]!["notAnalysed"]!.GetValue<int>());
        Assert.Equal(done, outcome.Summary.Images);
        Assert.Equal(done, Directory.GetFiles(Path.Combine(output.Path, "annotated")).Length);
        Assert.Contains("Not analysed (the run was interrupted)", File.ReadAllText(Path.Combine(output.Path, "report.html")));
        Assert.Empty(Directory.GetFiles(output.Path, "*.part"));

        // Stopped before it starts: every result file says so, with no image in it, and the command exits with 130.
        using var none = new TempDir();
        var stderr = new StringWriter();
        int exit = await AnalyzeCommand.RunAsync([inputs.Path], none.Path, ["json", "csv", "html"], 1, Leuko.Core.Classification.LeukocyteClassifier.DefaultModelPath,
            ArchiveLimits.Default, TextWriter.Null, stderr, new CancellationToken(canceled: true));
        Assert.Equal(ExitCodes.Interrupted, exit);
        Assert.Contains("interrupted: 0 of 60 images analysed", stderr.ToString());
        Assert.Equal(60, Results(none.Path)["summary"]!["notAnalysed"]!.GetValue<int>());
        Assert.Empty(Images(Results(none.Path)));
    }

    [Fact]
    public async Task SigtermStopsARunCleanlyWithTheResultsSoFar()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        var samples = Directory.GetFiles(CliRunner.SampleImages).Order(StringComparer.Ordinal).ToArray();
        for (int i = 0; i < 3000; i++) // far more than any machine analyses before the signal: the run is stopped, not finished
        {
            File.CreateSymbolicLink(Path.Combine(inputs.Path, $"field{i:0000}.jpg"), samples[i % samples.Length]);
        }

        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "leuko.dll"), "analyze", inputs.Path, "--out", output.Path })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var stdoutText = process.StandardOutput.ReadToEndAsync();
        var stderrLines = new List<string>();
        var progressed = new TaskCompletionSource();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (stderrLines)
            {
                stderrLines.Add(e.Data);
            }

            if (e.Data.StartsWith("analyze: ", StringComparison.Ordinal))
            {
                progressed.TrySetResult(); // the progress line: images are being analysed
            }
        };
        process.BeginErrorReadLine();
        await progressed.Task.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(0, Kill(process.Id, Sigterm));

        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        string stderr;
        lock (stderrLines)
        {
            stderr = string.Join('\n', stderrLines);
        }

        Assert.True(process.ExitCode == ExitCodes.Interrupted, $"exit {process.ExitCode}: {stderr}");
        var results = Results(output.Path);
        int done = Images(results).Count;
        Assert.InRange(done, 1, 2999);
        Assert.Equal(3000 - done, results["summary"]!["notAnalysed"]!.GetValue<int>());
        Assert.Contains($"interrupted: {done} of 3000 images analysed", stderr);
        Assert.StartsWith($"{done} images in ", await stdoutText);
        Assert.Empty(Directory.GetFiles(output.Path, "*.part"));
        Assert.True(File.Exists(Path.Combine(output.Path, "report.html")));
    }

    [Fact]
    public async Task AResultFileThatCannotBePutInPlaceIsSaidAndTheOthersAreWritten()
    {
        using var output = new TempDir();
        Directory.CreateDirectory(Path.Combine(output.Path, "results.json")); // in the way of the file

        var r = await Analyze(output.Path, CliRunner.SampleImage("BloodImage_00000.jpg"));

        Assert.Equal(ExitCodes.OutputFailed, r.ExitCode);
        Assert.Contains($"error: not written: {Path.Combine(output.Path, "results.json")}: ", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Contains("wrote ", r.Stdout);
        Assert.StartsWith("source,", File.ReadAllText(Path.Combine(output.Path, "results.csv")));
        Assert.True(File.Exists(Path.Combine(output.Path, "report.html")));
        Assert.Empty(Directory.GetFiles(output.Path, "*.part"));
    }

    [Fact]
    public async Task AFileErrorThatEndsACommandIsOneLineAndExit4()
    {
        using var output = new TempDir();
        Directory.CreateDirectory(Path.Combine(output.Path, "segmentation.json")); // leuko segment's results cannot be written

        var r = await CliRunner.RunAsync("segment", CliRunner.SampleImage("BloodImage_00000.jpg"), "--out", output.Path);

        Assert.Equal(ExitCodes.OutputFailed, r.ExitCode);
        Assert.StartsWith("error: ", r.Stderr.Split('\n').Last(l => l.Length > 0));
        Assert.Contains("segmentation.json", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.DoesNotContain("Unhandled exception", r.Stderr);
    }

    [Theory]
    [InlineData("--format", "json,pdf")]
    [InlineData("--format", "")]
    [InlineData("--format", ",")]
    [InlineData("--parallel", "0")]
    public async Task BadOptionsAreUsageErrors(string option, string value)
    {
        using var temp = new TempDir();
        var r = await CliRunner.RunAsync("analyze", CliRunner.SampleImages, "--out", temp.Path, option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(option, r.Stderr);
    }

    [Fact]
    public async Task AMissingInputIsAUsageError()
    {
        using var temp = new TempDir();
        var r = await Analyze(temp.Path, Path.Combine(temp.Path, "nowhere"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("no such file or folder", r.Stderr);
    }

    [Fact]
    public async Task FormatsChooseTheFilesWritten()
    {
        using var temp = new TempDir();
        var r = await CliRunner.RunAsync("analyze", CliRunner.SampleImage("BloodImage_00000.jpg"), "--out", temp.Path, "--format", "csv");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["results.csv"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }
}
