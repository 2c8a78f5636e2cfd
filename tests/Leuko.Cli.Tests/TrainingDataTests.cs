using System.Diagnostics;
using OpenCvSharp;

namespace Leuko.Cli.Tests;

/// <summary>The training data loader (<c>models/training/dataset.py</c>) on a source laid out as <c>leuko segment --dataset</c> writes it.</summary>
public sealed class TrainingDataTests : IDisposable
{
    private static readonly string[] Kinds =
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"];

    private readonly string _folder = Directory.CreateTempSubdirectory("leuko-dataset-").FullName;

    public TrainingDataTests()
    {
        var tsv = new List<string> { "crop\tsource\tclass" };
        for (int i = 0; i < Kinds.Length; i++)
        {
            Directory.CreateDirectory(Path.Combine(_folder, Kinds[i]));
            using var crop = new Mat(64, 64, MatType.CV_8UC3, new Scalar(30 * i, 100, 200));
            var name = $"{Kinds[i]}/cell{i}.png";
            Cv2.ImWrite(Path.Combine(_folder, name), crop);
            tsv.Add($"{name}\tfield{i}.jpg\t{Kinds[i].ToLowerInvariant()}");
        }

        File.WriteAllLines(Path.Combine(_folder, "dataset.tsv"), tsv);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [PythonFact]
    public async Task EachKindIsItsOwnClassByDefault()
    {
        var (classes, labels) = await LoadAsync(merge: false);
        Assert.Equal(Kinds, classes);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], labels);
    }

    [PythonFact]
    public async Task MergedTheThreeOtherKindsAreOneClassAfterTheFive()
    {
        // train.py --merge-other: the experiment of one "other" class (models/README.md, "Classes").
        var (classes, labels) = await LoadAsync(merge: true);
        Assert.Equal([.. Kinds[..5], "OTHER"], classes);
        Assert.Equal([0, 1, 2, 3, 4, 5, 5, 5], labels);
    }

    private async Task<(string[] Classes, int[] Labels)> LoadAsync(bool merge)
    {
        var training = RepositoryFolder.Find(Path.Combine("models", "training"));
        var code = "import dataset\n" + (merge ? "dataset.merge_other()\n" : "") +
            "from dataset import CLASSES\n" +
            $"labels = dataset.load_source('lab', ['{_folder.Replace("'", "\\'")}'], None)[1]\n" +
            "print('classes:', *CLASSES)\nprint('labels:', *(int(y) for y in labels))\n";
        var start = new ProcessStartInfo(PythonFactAttribute.Python)
        {
            WorkingDirectory = training, ArgumentList = { "-c", code }, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var python = Process.Start(start)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync();
        Assert.True(python.ExitCode == 0, $"dataset.load_source failed: {await stderr}");
        var lines = (await stdout).Split('\n');
        string[] After(string key) => lines.Last(l => l.StartsWith(key, StringComparison.Ordinal))[key.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (After("classes:"), After("labels:").Select(int.Parse).ToArray());
    }
}
