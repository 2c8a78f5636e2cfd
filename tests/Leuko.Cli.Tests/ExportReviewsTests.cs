using System.Diagnostics;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using OpenCvSharp;

namespace Leuko.Cli.Tests;

/// <summary>
/// <c>leuko export reviews</c> against Azurite: reviewed cells are written class per folder with dataset.tsv, and the
/// training script's own loader (<c>models/training/dataset.py</c>'s <c>load_source</c>, which train.py reads every source with) reads them as a source.
/// </summary>
public class ExportReviewsTests
{
    private static readonly CellClasses Classes = new(
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"],
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"],
        ["IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"]);

    [PythonFact]
    public async Task ReviewedCellsAreExportedAsADatasetTheTrainingScriptReads()
    {
        await Azurite.RequireAsync();
        var prefix = $"uploads/{Azurite.Unique("export")}/";
        var tables = Azurite.Tables;
        var results = new TableResultStore(tables);
        var reviews = new TableReviewStore(tables);
        var blobs = new AzureBlobStore(Azurite.Blobs);
        await results.InitializeAsync(default);
        await reviews.InitializeAsync(default);
        await blobs.InitializeAsync(default);
        var service = new ReviewService(results, reviews, blobs, Classes);

        // Two analysed images of three cells each: one signed off after a reclassification, one with one cell moved and not signed off.
        var signed = await SeedAsync(results, blobs, prefix + "a.jpg", ["NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE"]);
        var open = await SeedAsync(results, blobs, prefix + "b.jpg", ["NEUTROPHIL", "EOSINOPHIL", "PLATELET"]);
        Assert.Null((await service.ReclassifyAsync(signed, 2, "LYMPHOCYTE", "reviewer", default)).Problem);
        Assert.Null((await service.SignOffImageAsync(signed, "reviewer", default)).Problem);
        Assert.Null((await service.ReclassifyAsync(open, 1, ReviewClasses.NotACell, "reviewer", default)).Problem);
        Assert.Null((await service.ReclassifyAsync(open, 0, "BASOPHIL", "reviewer2", default)).Problem);

        using var output = new TempDir();
        var run = await CliRunner.RunAsync("export", "reviews", "--storage", Azurite.ConnectionString, "--out", output.Path, "--source-prefix", prefix);
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("5 reviewed cells of 2 images (1 signed off)", run.Stdout);

        var lines = File.ReadAllLines(Path.Combine(output.Path, "dataset.tsv"));
        Assert.Equal(Commands.ExportCommand.Header, lines[0]);
        Assert.StartsWith("crop\tsource\tclass\tleukocytes\tmicronsPerPixel\tscaleSource\t", lines[0]); // leuko segment --dataset's columns first
        var rows = lines[1..].Select(l => l.Split('\t')).ToList();
        Assert.Equal(
            [
                (prefix + "a.jpg", "LYMPHOCYTE", "LYMPHOCYTE", "reviewer"), (prefix + "a.jpg", "MONOCYTE", "LYMPHOCYTE", "reviewer"),
                (prefix + "a.jpg", "NEUTROPHIL", "NEUTROPHIL", "reviewer"),
                (prefix + "b.jpg", "EOSINOPHIL", ReviewClasses.NotACell, "reviewer"), (prefix + "b.jpg", "NEUTROPHIL", "BASOPHIL", "reviewer2"),
            ],
            rows.Select(r => (r[1], r[6], r[7], r[8])).OrderBy(r => r.Item1, StringComparer.Ordinal).ThenBy(r => r.Item2, StringComparer.Ordinal).ToList());
        foreach (var row in rows)
        {
            Assert.Equal(row[2], row[7]); // the class is the reviewed one
            Assert.StartsWith(row[2] + "/", row[0]); // in its class's folder
            Assert.True(File.Exists(Path.Combine(output.Path, row[0])), $"no crop {row[0]}");
            Assert.Equal(("3", "0.12", "estimated"), (row[3], row[4], row[5]));
        }

        // The training script reads it as a source: the four cells of its classes (not-a-cell is no class of the model), labelled as reviewed.
        var labels = await LoadSourceAsync(output.Path);
        var classes = "BASOPHIL EOSINOPHIL LYMPHOCYTE MONOCYTE NEUTROPHIL IMMATURE_GRANULOCYTE ERYTHROBLAST PLATELET".Split(' ');
        Assert.Equal(
            rows.Where(r => r[2] != ReviewClasses.NotACell).Select(r => Array.IndexOf(classes, r[2])).Order(),
            labels.Order());
    }

    /// <summary>An analysed image with one cell per class given, its crops in blob storage; its id.</summary>
    private static async Task<string> SeedAsync(TableResultStore results, AzureBlobStore blobs, string source, IReadOnlyList<string> classes)
    {
        var upload = source["uploads/".Length..];
        var id = Leuko.Pipeline.Stages.PipelineIds.Image(upload);
        const string version = "\"0x8DC0FFEE\"";
        var cells = new List<CellRow>();
        for (int i = 0; i < classes.Count; i++)
        {
            using var crop = new Mat(64, 64, MatType.CV_8UC3, new Scalar(40 * i, 120, 200));
            Cv2.ImEncode(".png", crop, out var png);
            var name = $"{Leuko.Pipeline.Stages.PipelineIds.CropFolder(id, version)}{i}.png";
            await blobs.PutAsync(Containers.Crops, name, png, "image/png", null, default);
            cells.Add(new CellRow(id, i, classes[i], 0.9, new Dictionary<string, double> { [classes[i]] = 0.9 }, false, new Box(10 * i, 10, 40, 40), 1200, "", $"{Containers.Crops}/{name}",
                BlobETag: version));
        }

        await results.UpsertCellsAsync(id, cells, default);
        var counts = Classes.All.ToDictionary(c => c, c => classes.Count(x => x == c));
        var existing = await results.GetImageAsync(id, default);
        Assert.True(await results.TryWriteImageAsync(
            new ImageRow(id, source, upload, null, ImageStatus.Completed, null, 640, 480, classes.Count, 0, counts, "test", 1, 1, null, version, DateTimeOffset.UtcNow,
                new ScaleRecord(0.12, "estimated", 50)) { ETag = existing?.ETag }, default));
        return id;
    }

    /// <summary>Runs <c>dataset.load_source('lab', [DIR], None)</c> in models/training and returns its labels.</summary>
    private static async Task<int[]> LoadSourceAsync(string folder)
    {
        var training = RepositoryFolder.Find(Path.Combine("models", "training"));
        var start = new ProcessStartInfo(PythonFactAttribute.Python)
        {
            WorkingDirectory = training,
            ArgumentList = { "-c", $"import dataset; print('labels:', *(int(y) for y in dataset.load_source('lab', [{Quoted(folder)}], None)[1]))" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var python = Process.Start(start)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync();
        Assert.True(python.ExitCode == 0, $"dataset.load_source failed: {await stderr}");
        // The loader logs as it goes; the labels are the line this command printed.
        var line = (await stdout).Split('\n').Last(l => l.StartsWith("labels:", StringComparison.Ordinal));
        return line["labels:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
    }

    private static string Quoted(string path) => "'" + path.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
}
