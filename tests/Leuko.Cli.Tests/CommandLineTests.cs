using System.Text.Json;

namespace Leuko.Cli.Tests;

public sealed class CommandLineTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("segment", "--help")]
    [InlineData("evaluate", "--help")]
    [InlineData("evaluate", "segmentation", "--help")]
    [InlineData("bench", "--help")]
    [InlineData("bench", "segmentation", "--help")]
    [InlineData("evaluate", "classification", "--help")]
    [InlineData("bench", "classification", "--help")]
    [InlineData("bench", "memory", "--help")]
    [InlineData("upload", "--help")]
    public async Task Every_command_has_help(params string[] args)
    {
        var result = await CliRunner.RunAsync(args);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("Usage:", result.Stdout);
    }

    [Fact]
    public async Task Segment_writes_square_crops_masks_and_a_summary()
    {
        using var dir = new TempDir();
        var result = await CliRunner.RunAsync("segment", CliRunner.SampleImages, "--out", dir.Path, "--masks");

        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "segmentation.json")));
        var images = json.RootElement.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(6, images.Count);
        Assert.All(images, i => Assert.Equal("completed", i.GetProperty("status").GetString()));
        var cells = images.SelectMany(i => i.GetProperty("leukocytes").EnumerateArray()).ToList();
        Assert.Equal(7, cells.Count);
        Assert.Equal(7, json.RootElement.GetProperty("summary").GetProperty("leukocytes").GetInt32());
        foreach (var cell in cells)
        {
            var crop = Path.Combine(dir.Path, cell.GetProperty("crop").GetString()!);
            using var image = OpenCvSharp.Cv2.ImRead(crop);
            Assert.False(image.Empty(), crop);
            Assert.Equal(image.Width, image.Height);
        }

        var masks = images[0].GetProperty("masks");
        foreach (var kind in new[] { "background", "erythrocyte", "leukocyte" })
        {
            Assert.True(File.Exists(Path.Combine(dir.Path, masks.GetProperty(kind).GetString()!)), kind);
        }
    }

    [Fact]
    public async Task Bad_files_are_reported_and_the_rest_go_on()
    {
        using var dir = new TempDir();
        var inputs = Path.Combine(dir.Path, "in");
        Directory.CreateDirectory(inputs);
        File.Copy(Path.Combine(CliRunner.SampleImages, "BloodImage_00037.jpg"), Path.Combine(inputs, "good.jpg"));
        File.WriteAllText(Path.Combine(inputs, "notes.png"), "not an image");
        File.WriteAllBytes(Path.Combine(inputs, "empty.jpg"), []);
        var bytes = File.ReadAllBytes(Path.Combine(CliRunner.SampleImages, "BloodImage_00000.jpg"));
        File.WriteAllBytes(Path.Combine(inputs, "truncated.jpg"), bytes[..(bytes.Length / 3)]);

        var result = await CliRunner.RunAsync("segment", inputs, "--out", Path.Combine(dir.Path, "out"));

        Assert.Equal(1, result.ExitCode);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.Path, "out", "segmentation.json")));
        var byName = json.RootElement.GetProperty("images").EnumerateArray()
            .ToDictionary(i => Path.GetFileName(i.GetProperty("source").GetString()!));
        Assert.Equal(4, byName.Count);
        Assert.Equal("completed", byName["good.jpg"].GetProperty("status").GetString());
        Assert.Contains("unsupported format", byName["notes.png"].GetProperty("error").GetString());
        Assert.Contains("empty", byName["empty.jpg"].GetProperty("error").GetString());
        Assert.Contains("truncated JPEG", byName["truncated.jpg"].GetProperty("error").GetString());
        Assert.Contains("notes.png", result.Stderr);
    }

    [Fact]
    public async Task Segment_refuses_a_missing_input()
    {
        using var dir = new TempDir();
        var result = await CliRunner.RunAsync("segment", Path.Combine(dir.Path, "nope"), "--out", dir.Path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("no such file or folder", result.Stderr);
    }

    [Fact]
    public async Task Evaluate_segmentation_json_is_exactly_one_object_with_the_documented_keys()
    {
        var result = await CliRunner.RunAsync("evaluate", "segmentation", "--voc", CliRunner.SamplesVoc, "--json");

        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout); // throws if anything else is on stdout
        var keys = json.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(["images", "truth", "detected", "truePositives", "falsePositives", "falseNegatives", "precision", "recall", "f1", "meanIoU"], keys);
        Assert.Equal(6, json.RootElement.GetProperty("images").GetInt32());
        Assert.Equal(7, json.RootElement.GetProperty("truePositives").GetInt32());
        Assert.Equal(1.0, json.RootElement.GetProperty("precision").GetDouble());
        Assert.Equal(1.0, json.RootElement.GetProperty("recall").GetDouble());
    }

    [Fact]
    public async Task Evaluate_segmentation_prints_a_table_by_default()
    {
        var result = await CliRunner.RunAsync("evaluate", "segmentation", "--voc", CliRunner.SamplesVoc, "--iou", "0.3");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("precision", result.Stdout);
        Assert.Contains("IoU >= 0.3", result.Stdout);
    }

    [Fact]
    public async Task Evaluate_segmentation_refuses_a_folder_that_is_not_VOC()
    {
        using var dir = new TempDir();
        var result = await CliRunner.RunAsync("evaluate", "segmentation", "--voc", dir.Path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("Annotations/", result.Stderr);
    }

    [Fact]
    public async Task Evaluate_segmentation_refuses_an_IoU_outside_0_to_1()
    {
        var result = await CliRunner.RunAsync("evaluate", "segmentation", "--voc", CliRunner.SamplesVoc, "--iou", "1.5");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--iou", result.Stderr);
    }

    [Theory]
    [InlineData("segmentation")]
    [InlineData("classification")]
    public async Task A_bench_leaves_out_an_input_that_is_no_image_and_says_so(string bench)
    {
        using var dir = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(dir.Path, "field.jpg"));
        File.WriteAllText(Path.Combine(dir.Path, "notes.jpg"), "not a photograph");

        var result = await CliRunner.RunAsync("bench", bench, dir.Path, "--seconds", "0.2");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"skipped: {Path.Combine(dir.Path, "notes.jpg")}: unsupported format", result.Stderr);
        Assert.DoesNotContain("Unhandled exception", result.Stderr); // it ended the bench
    }

    [Theory]
    [InlineData("not xml", "is not a readable annotation")]
    [InlineData("<annotation><object><name>WBC</name><bndbox><xmin>abc</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object></annotation>", "bndbox xmin 'abc' is not a pixel coordinate")]
    public async Task Evaluate_segmentation_names_the_annotation_it_cannot_read(string xml, string says)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "JPEGImages"));
        Directory.CreateDirectory(Path.Combine(dir.Path, "Annotations"));
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(dir.Path, "JPEGImages", "BloodImage_00000.jpg"));
        File.WriteAllText(Path.Combine(dir.Path, "Annotations", "BloodImage_00000.xml"), xml);

        var result = await CliRunner.RunAsync("evaluate", "segmentation", "--voc", dir.Path);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(says, result.Stderr);
        Assert.Contains("BloodImage_00000.xml", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public async Task Evaluate_classification_json_is_exactly_one_object_with_the_documented_keys()
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells, "--json");

        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal(
            ["samples", "unsegmented", "accuracy", "macroPrecision", "macroRecall", "macroF1", "coverage", "acceptedAccuracy",
             "otherSamples", "otherSilentlyInDifferential", "flaggedBy", "scoring", "classes", "perClass", "confusion", "groups"],
            root.EnumerateObject().Select(p => p.Name).ToArray());
        int files = Directory.GetFiles(cells, "*", SearchOption.AllDirectories).Count(f => !f.EndsWith(".md", StringComparison.Ordinal));
        Assert.Equal(files, root.GetProperty("samples").GetInt32());
        Assert.Equal(
            ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"],
            root.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray());
        var confusion = root.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.Equal(files, confusion.Sum(r => r.Sum()) + root.GetProperty("unsegmented").GetInt32());
        var classes = root.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray();
        for (int i = 0; i < classes.Length; i++)
        {
            var folder = Path.Combine(cells, classes[i]);
            Assert.Equal(Directory.Exists(folder) ? Directory.GetFiles(folder).Length : 0, confusion[i].Sum());
        }
        foreach (var name in new[] { "precision", "recall", "f1", "support" })
        {
            Assert.True(root.GetProperty("perClass").GetProperty("MONOCYTE").TryGetProperty(name, out _), name);
        }
    }

    [Fact]
    public async Task Evaluate_classification_cells_writes_each_cells_single_view_and_eight_view_outputs_as_the_classifier_computes_them()
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        using var dir = new TempDir();
        var tsv = Path.Combine(dir.Path, "cells.tsv");
        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells, "--json", "--cells", tsv);

        Assert.Equal(0, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var lines = File.ReadAllLines(tsv);
        Assert.Equal("image\tlabel\tstainDistance\tplainDistance\tdihedralDistance\tplainLogits\tdihedralLogits", lines[0]);
        Assert.Equal(json.RootElement.GetProperty("samples").GetInt32() - json.RootElement.GetProperty("unsegmented").GetInt32(), lines.Length - 1);
        using var classifier = Leuko.Core.Classification.LeukocyteClassifier.Load(Leuko.Core.Classification.LeukocyteClassifier.DefaultModelPath);
        foreach (var line in lines.Skip(1).Take(3))
        {
            var f = line.Split('\t');
            Assert.Equal(Path.GetFileName(Path.GetDirectoryName(f[0])), f[1]);
            using var image = Leuko.Core.Imaging.ImageDecoder.DecodeFile(f[0]);
            using var segmented = new Leuko.Core.Segmentation.LeukocyteSegmenter().Segment(image);
            var input = classifier.Preprocess([segmented.Leukocytes[0].Crop]);
            var (plain, plainDistance) = classifier.Run(input, 1);
            var (eight, eightDistance) = classifier.DihedralMean(input, 1);
            float[] Parse(string s) => [.. s.Split(',').Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture))];
            Assert.Equal(plain, Parse(f[5]));
            Assert.Equal(eight, Parse(f[6]));
            Assert.Equal(plainDistance![0], float.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(eightDistance![0], float.Parse(f[4], System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public async Task Evaluate_classification_by_group_with_every_image_its_own_group_counts_the_images_right()
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        using var dir = new TempDir();
        var images = Directory.GetFiles(cells, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".md", StringComparison.Ordinal)).ToArray();
        var groups = Path.Combine(dir.Path, "groups.tsv");
        // A header, then one group per image but the first, which the file leaves out: a group of its own all the same.
        File.WriteAllLines(groups, ["file\tsource_image", .. images.Skip(1).Select((f, i) => $"{Path.GetRelativePath(cells, f).Replace('\\', '/')}\tphoto{i}")]);

        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells, "--json", "--groups", groups);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"warning: 1 of {images.Length} images are not in --groups", result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        var g = root.GetProperty("groups");
        Assert.Equal(images.Length, g.GetProperty("count").GetInt32());
        int right = (int)Math.Round(root.GetProperty("accuracy").GetDouble() * images.Length);
        Assert.Equal(right, g.GetProperty("right").GetInt32());
        var interval = g.GetProperty("interval95").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.InRange(g.GetProperty("accuracy").GetDouble(), interval[0], interval[1]);
        Assert.Equal(images.Length, g.GetProperty("perClass").EnumerateObject().Sum(c => c.Value.GetProperty("total").GetInt32()));
    }

    [Fact]
    public async Task Evaluate_classification_by_group_counts_a_groups_images_once()
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        using var dir = new TempDir();
        var groups = Path.Combine(dir.Path, "groups.tsv");
        // Every image of a class from one photograph: as many groups as classes.
        var images = Directory.GetFiles(cells, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".md", StringComparison.Ordinal)).ToArray();
        File.WriteAllLines(groups, images.Select(f => $"{Path.GetRelativePath(cells, f)}\t{Path.GetFileName(Path.GetDirectoryName(f))}"));

        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells, "--groups", groups);

        Assert.Equal(0, result.ExitCode);
        int classes = images.Select(f => Path.GetDirectoryName(f)).Distinct().Count();
        Assert.Contains($"by group (groups.tsv): {classes} groups, ", result.Stdout);
        Assert.DoesNotContain("warning", result.Stderr);
    }

    [Theory]
    [InlineData("EOSINOPHIL/kaggle_0_3072.jpeg photo1", "line 1 of --groups")]
    [InlineData("elsewhere/a.jpg\tphoto1", "names none of the")]
    public async Task Evaluate_classification_refuses_a_groups_file_it_cannot_use(string line, string says)
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        using var dir = new TempDir();
        var groups = Path.Combine(dir.Path, "groups.tsv");
        File.WriteAllText(groups, line + "\n");

        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells, "--groups", groups);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains(says, result.Stderr);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task Evaluate_classification_prints_the_confusion_matrix_by_default()
    {
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", cells);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("confusion (rows: truth, columns: prediction)", result.Stdout);
    }

    [Fact]
    public async Task A_bad_model_file_is_refused_before_any_image_is_read()
    {
        using var dir = new TempDir();
        var model = Path.Combine(dir.Path, "broken.onnx");
        File.WriteAllText(model, "not a model");
        var result = await CliRunner.RunAsync("evaluate", "classification", "--data", dir.Path, "--model", model);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("model card not found", result.Stderr);
    }

    [Fact]
    public async Task Segment_dataset_writes_one_crop_per_image_in_the_same_folders()
    {
        using var dir = new TempDir();
        var cells = Path.Combine(AppContext.BaseDirectory, "samples", "cells");
        var result = await CliRunner.RunAsync("segment", "--dataset", cells, "--out", dir.Path, "--size", "64");

        Assert.Equal(0, result.ExitCode);
        var index = File.ReadAllLines(Path.Combine(dir.Path, "dataset.tsv"));
        Assert.Equal("crop\tsource\tclass\tleukocytes\tmicronsPerPixel\tscaleSource", index[0]);
        Assert.Equal(Directory.GetFiles(cells, "*.jp*g", SearchOption.AllDirectories).Length, index.Length - 1);
        foreach (var row in index.Skip(1).Select(l => l.Split('\t')))
        {
            Assert.StartsWith(row[2] + "/", row[0]);
            using var crop = OpenCvSharp.Cv2.ImRead(Path.Combine(dir.Path, row[0]));
            Assert.Equal(new OpenCvSharp.Size(64, 64), crop.Size());
        }

        Assert.Single(File.ReadAllLines(Path.Combine(dir.Path, "unsegmented.tsv"))); // header only

        // the field colours stain.py fits the field check on: one row per crop, glass brighter than red cells in every channel
        var fields = File.ReadAllLines(Path.Combine(dir.Path, "fields.tsv"));
        Assert.Equal("crop\twhiteB\twhiteG\twhiteR\twhitePixels\tredB\tredG\tredR\tredPixels", fields[0]);
        Assert.Equal(index.Skip(1).Select(l => l.Split('\t')[0]), fields.Skip(1).Select(l => l.Split('\t')[0]));
        foreach (var row in fields.Skip(1).Select(l => l.Split('\t').Skip(1).Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray()))
        {
            Assert.True(row[3] > 0 && row[7] > 0, string.Join(' ', row));
            Assert.True(row[0] > row[4] && row[1] > row[5] && row[2] > row[6], string.Join(' ', row));
        }
    }

    [Fact]
    public async Task Segment_needs_either_inputs_or_a_dataset()
    {
        using var dir = new TempDir();
        var result = await CliRunner.RunAsync("segment", "--out", dir.Path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--dataset", result.Stderr);
    }
}
