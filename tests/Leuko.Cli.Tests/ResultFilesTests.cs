using System.Text.Json;
using System.Text.Json.Nodes;
using Leuko.Cli.Analysis;
using Leuko.Cli.Commands;
using Leuko.Tests;

namespace Leuko.Cli.Tests;

/// <summary>
/// results.json, results.csv and report.html are written as images finish (memory flat in the number of images):
/// in input order whatever finishes first, with the bytes the whole document serialized at once would have.
/// </summary>
public class ResultFilesTests
{
    [Fact]
    public async Task ResultsJsonHasTheBytesOfTheWholeDocumentSerializedAtOnce()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        foreach (var sample in Directory.GetFiles(CliRunner.SampleImages, "*.jpg"))
        {
            File.Copy(sample, Path.Combine(inputs.Path, Path.GetFileName(sample)));
        }

        File.WriteAllText(Path.Combine(inputs.Path, "notes.png"), "not a picture");
        File.WriteAllBytes(Path.Combine(inputs.Path, "mixed.zip"), Zips.Build(
            ("field.jpg", File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"))), ("readme.txt", "text"u8.ToArray())));

        var r = await CliRunner.RunAsync("analyze", inputs.Path, "--out", output.Path, "--parallel", "2");

        Assert.Equal(1, r.ExitCode);
        var written = File.ReadAllText(Path.Combine(output.Path, "results.json"));
        var document = JsonSerializer.Deserialize<ResultsDocument>(written, Json.Options)!;
        Assert.Equal(8, document.Images.Count);
        Assert.Single(document.Skipped);
        Assert.Equal(JsonSerializer.Serialize(document, Json.Options), written);
        Assert.Empty(Directory.GetFiles(output.Path, "*.part")); // each file is written as FILE.part and renamed when complete
    }

    [Fact]
    public async Task EveryFileIsInInputOrderWhateverFinishesFirstAndTheFailuresPrintedAreCapped()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        // The first input takes the longest (a real field); the 25 after it fail at once, so they finish first.
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "00.jpg"));
        for (int i = 1; i <= 25; i++)
        {
            File.WriteAllText(Path.Combine(inputs.Path, $"{i:00}.jpg"), "not a picture");
        }

        File.Copy(CliRunner.SampleImage("BloodImage_00009.jpg"), Path.Combine(inputs.Path, "26.jpg"));

        var r = await CliRunner.RunAsync("analyze", inputs.Path, "--out", output.Path, "--parallel", "4");

        Assert.Equal(1, r.ExitCode);
        var expected = Enumerable.Range(0, 27).Select(i => $"{i:00}.jpg").ToList();
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(output.Path, "results.json")))!;
        Assert.Equal(expected, results["images"]!.AsArray().Select(i => Path.GetFileName(i!["source"]!.GetValue<string>())));
        Assert.Equal(25, results["summary"]!["failed"]!.GetValue<int>());

        var csvSources = File.ReadAllLines(Path.Combine(output.Path, "results.csv")).Skip(1).Select(l => Path.GetFileName(l.Split(',')[0])).Distinct();
        Assert.Equal(["00.jpg", "26.jpg"], csvSources);

        var html = File.ReadAllText(Path.Combine(output.Path, "report.html"));
        var failedRows = html.Split("<tr class=\"failed\"><td>").Skip(1).Select(row => Path.GetFileName(row[..row.IndexOf('<')])).ToList();
        Assert.Equal(expected[1..26], failedRows);
        Assert.True(html.IndexOf("00.jpg with its leukocytes", StringComparison.Ordinal) < html.IndexOf("26.jpg with its leukocytes", StringComparison.Ordinal));

        var printed = r.Stderr.Split('\n').Where(l => l.StartsWith("failed: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(AnalyzeCommand.FailuresShown, printed.Count);
        Assert.Contains("01.jpg: unsupported format", printed[0]); // the first failures, in input order
        Assert.Contains($"... and {25 - AnalyzeCommand.FailuresShown} more failed", r.Stderr);
    }

    [Fact]
    public async Task ImagesAreHandedOnInOrderAndTheWindowBoundsWhatIsHeld()
    {
        var handed = new List<string>();
        using var ordered = new OrderedResults(window: 2, image => handed.Add(image.Source));
        await ordered.EnterAsync(CancellationToken.None);
        await ordered.EnterAsync(CancellationToken.None);
        var third = ordered.EnterAsync(CancellationToken.None);
        Assert.False(third.IsCompleted); // two images read and not handed on: the reader waits

        ordered.Add(1, Record("b"));
        Assert.Empty(handed); // b waits for a
        Assert.False(third.IsCompleted);

        ordered.Add(0, Record("a"));
        Assert.Equal(["a", "b"], handed);
        await third.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Throws<InvalidOperationException>(() => ordered.Add(1, Record("b")));
    }

    private static ImageRecord Record(string source) =>
        new(source, "failed", "x", null, null, null, null, null, [], new Dictionary<string, Leuko.Pipeline.ClassCount>(), new Dictionary<string, int>());
}
