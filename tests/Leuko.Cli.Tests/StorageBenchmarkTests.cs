using System.Text.RegularExpressions;
using Leuko.Tests;

namespace Leuko.Cli.Tests;

/// <summary><c>leuko bench storage</c> against Azurite: a figure for every kind of request, and nothing of its own left behind.</summary>
public class StorageBenchmarkTests
{
    private static readonly string[] Kinds =
    [
        "upload an image", "read the upload", "write a crop", "insert the image row", "replace the row if unchanged (If-Match)",
        "write a cell", "list the webhook subscriptions (3)", "send a classification message", "receive messages (32 a request; per message)",
        "delete a message handled", "one of each (an image with one cell)",
    ];

    [Fact]
    public async Task ItTimesEveryKindOfRequestTheCloudPathMakesAndDeletesWhatItMade()
    {
        await Azurite.RequireAsync();

        // Its own process stands in for the storage's: any process's CPU can be read.
        var result = await CliRunner.RunAsync("bench", "storage", "--storage", Azurite.ConnectionString, "--requests", "40", "--server-pid", Environment.ProcessId.ToString());

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("Storage benchmark: 40 requests of each kind", result.Stdout);
        foreach (var kind in Kinds)
        {
            var line = result.Stdout.Split('\n').Single(l => l.TrimStart().StartsWith(kind, StringComparison.Ordinal));
            var figures = Regex.Matches(line[(line.IndexOf(kind, StringComparison.Ordinal) + kind.Length)..], @"\d+\.\d\d").Select(m => double.Parse(m.Value)).ToList();
            Assert.True(figures.Count >= 2, line); // wall time (and its p50), or the per-image sum and its CPU
            Assert.True(figures[0] > 0, line);
        }

        Assert.Empty(await Leftovers());
    }

    [Fact]
    public async Task AProcessThatIsNotThereIsAUsageErrorBeforeAnyRequest()
    {
        var result = await CliRunner.RunAsync("bench", "storage", "--storage", "UseDevelopmentStorage=true", "--server-pid", "2147483647");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--server-pid 2147483647: no such process", result.Stderr);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task AStorageThatDoesNotAnswerIsOneErrorLine()
    {
        var result = await CliRunner.RunAsync("bench", "storage", "--storage",
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            "--requests", "1");

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("error: cannot reach the storage at http://127.0.0.1:9/devstoreaccount1", result.Stderr);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    /// <summary>Containers, tables and queues of the bench's naming still in the account.</summary>
    private static async Task<List<string>> Leftovers()
    {
        var found = new List<string>();
        await foreach (var c in Azurite.Blobs.GetBlobContainersAsync(prefix: "leukobench"))
        {
            found.Add("container " + c.Name);
        }

        await foreach (var t in Azurite.Tables.QueryAsync(filter: "TableName ge 'leukobench' and TableName lt 'leukobenci'"))
        {
            found.Add("table " + t.Name);
        }

        await foreach (var q in Azurite.Queues.GetQueuesAsync(prefix: "leukobench"))
        {
            found.Add("queue " + q.Name);
        }

        return found;
    }
}
