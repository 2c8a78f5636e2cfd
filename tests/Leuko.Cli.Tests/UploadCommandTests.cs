using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Leuko.Azure.Hosting;
using Leuko.Cli.Commands;
using Leuko.Core.Imaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Leuko.Cli.Tests;

/// <summary><c>leuko upload</c> against Azurite: blobs land where the pipeline reads them, under the ids it prints.</summary>
public class UploadCommandTests
{
    private static Task<CliResult> Upload(params string[] args) => CliRunner.RunAsync(["upload", .. args]);

    /// <summary>The printed lines: blob, then kind and id, then the URL to poll.</summary>
    private static Dictionary<string, (string Kind, string Id, string Url)> Lines(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split('\t'))
            .ToDictionary(p => p[0], p => (p[1].Split(' ')[0], p[1].Split(' ')[1], p[2]));

    [Fact]
    public async Task ImagesGoToUploadsAndArchivesToArchivesByContentAndThePrintedUrlsAnswer()
    {
        await Azurite.RequireAsync();
        using var inputs = new TempDir();
        var field = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        Directory.CreateDirectory(Path.Combine(inputs.Path, "ward"));
        File.WriteAllBytes(Path.Combine(inputs.Path, "ward", "field1.jpg"), field);
        File.WriteAllBytes(Path.Combine(inputs.Path, "photo.zip"), field); // a JPEG named .zip is an image
        File.WriteAllBytes(Path.Combine(inputs.Path, "fields.zip"), Zips.Build(("a.jpg", field)));
        File.WriteAllText(Path.Combine(inputs.Path, "notes.txt"), "not an input of a folder");
        var prefix = Azurite.Unique("upload");

        await using var api = await ApiAsync();
        var r = await Upload(inputs.Path, "--storage", Azurite.ConnectionString, "--prefix", prefix + "/", "--server", api.Urls.First());

        Assert.Equal(0, r.ExitCode);
        Assert.Contains("upload: 3/3 (100%)", r.Stderr);
        var lines = Lines(r.Stdout);
        var image = $"{prefix}/ward/field1.jpg";
        var renamed = $"{prefix}/photo.zip";
        var archive = $"{prefix}/fields.zip";
        Assert.Equal(new[] { $"archives/{archive}", $"uploads/{renamed}", $"uploads/{image}" }, lines.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(("image", PipelineIds.Image(image)), (lines[$"uploads/{image}"].Kind, lines[$"uploads/{image}"].Id));
        Assert.Equal(("image", PipelineIds.Image(renamed)), (lines[$"uploads/{renamed}"].Kind, lines[$"uploads/{renamed}"].Id));
        Assert.Equal(("batch", PipelineIds.Batch(archive)), (lines[$"archives/{archive}"].Kind, lines[$"archives/{archive}"].Id));
        Assert.Equal(field, (await Azurite.Blobs.GetBlobContainerClient(Containers.Uploads).GetBlobClient(image).DownloadContentAsync()).Value.Content.ToArray());

        // The pipeline's own stages, on the names uploaded, answer at the URLs printed.
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan }; // bounded by PollAsync's deadline
        await api.Services.GetRequiredService<SegmentationStage>().ProcessAsync(image, null, CancellationToken.None);
        var polled = await PollAsync(http, lines[$"uploads/{image}"].Url, body => body["status"]!.GetValue<string>() != "classifying");
        Assert.Equal("completed", polled["status"]!.GetValue<string>());
        Assert.Equal($"uploads/{image}", polled["source"]!.GetValue<string>());
        Assert.NotEmpty(polled["cells"]!.AsArray());

        var batch = await api.Services.GetRequiredService<ArchiveStage>().ExpandAsync(archive, CancellationToken.None);
        Assert.Equal(lines[$"archives/{archive}"].Id, batch.BatchId);
        var batchView = await PollAsync(http, lines[$"archives/{archive}"].Url, _ => true);
        Assert.Equal(1, batchView["total"]!.GetValue<int>());
    }

    [Fact]
    public async Task AGivenScaleTravelsAsEachBlobsMetadataAndSegmentationUsesIt()
    {
        await Azurite.RequireAsync();
        using var inputs = new TempDir();
        var field = File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg"));
        File.WriteAllBytes(Path.Combine(inputs.Path, "field.jpg"), field);
        File.WriteAllBytes(Path.Combine(inputs.Path, "fields.zip"), Zips.Build(("a.jpg", field)));
        var prefix = Azurite.Unique("upload-scale");

        var r = await Upload(inputs.Path, "--storage", Azurite.ConnectionString, "--prefix", prefix, "--microns-per-pixel", "0.2");

        Assert.Equal(0, r.ExitCode);
        foreach (var (container, name) in new[] { (Containers.Uploads, $"{prefix}/field.jpg"), (Containers.Archives, $"{prefix}/fields.zip") })
        {
            var properties = await Azurite.Blobs.GetBlobContainerClient(container).GetBlobClient(name).GetPropertiesAsync();
            Assert.Equal("0.2", properties.Value.Metadata[Containers.MicronsPerPixelKey]);
        }

        await using var api = await ApiAsync();
        var row = await api.Services.GetRequiredService<SegmentationStage>().ProcessAsync($"{prefix}/field.jpg", null, CancellationToken.None);
        Assert.Equal(("given", 0.2), (row.Scale!.Source, row.Scale.MicronsPerPixel));
        var refused = await Upload(inputs.Path, "--storage", Azurite.ConnectionString, "--microns-per-pixel", "0");
        Assert.Equal(ExitCodes.BadUsage, refused.ExitCode);
        Assert.Contains("--microns-per-pixel must be between", refused.Stderr);
    }

    [Fact]
    public async Task AMissingFileIsAUsageErrorAndNothingIsSent()
    {
        using var inputs = new TempDir();
        var r = await Upload(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "missing.jpg"), "--storage", Azurite.ConnectionString);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("no such file or folder", r.Stderr);
        Assert.Contains("missing.jpg", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public async Task ALinkToNothingAPipeOrAFileNoImageCanBeFailsWithItsReasonAndTheOthersAreSent()
    {
        await Azurite.RequireAsync();
        using var inputs = new TempDir();
        File.Copy(CliRunner.SampleImage("BloodImage_00000.jpg"), Path.Combine(inputs.Path, "field.jpg"));
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "broken.jpg"), Path.Combine(inputs.Path, "moved-away.jpg"));
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", Path.Combine(inputs.Path, "pipe.jpg")))
        {
            await mkfifo.WaitForExitAsync(); // opening a named pipe waits for a writer that never comes
        }

        using (var big = File.Create(Path.Combine(inputs.Path, "big.png")))
        {
            big.SetLength(ImageFile.MaxBytes + 1); // sparse
        }

        File.CreateSymbolicLink(Path.Combine(inputs.Path, "linked.jpg"), "field.jpg"); // sent as the file it leads to
        File.CreateSymbolicLink(Path.Combine(inputs.Path, "pipe-link.jpg"), "pipe.jpg");
        File.Copy(CliRunner.SampleImage("BloodImage_00009.jpg"), Path.Combine(inputs.Path, "tab\tname.jpg")); // a tab would split the printed line's columns
        var prefix = Azurite.Unique("upload-link");

        var run = Upload(inputs.Path, "--storage", Azurite.ConnectionString, "--prefix", prefix);
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromMinutes(3)))); // it used to wait on the pipe
        var r = await run;

        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"failed: {Path.Combine(inputs.Path, "broken.jpg")}: the file is gone: removed after the run began, or a link to nothing", r.Stderr);
        Assert.Contains($"failed: {Path.Combine(inputs.Path, "pipe.jpg")}: {ImageFile.Empty}", r.Stderr);
        Assert.Contains($"failed: {Path.Combine(inputs.Path, "big.png")}: file too large (268,435,457 bytes)", r.Stderr);
        Assert.Contains($"failed: {Path.Combine(inputs.Path, "pipe-link.jpg")}: {ImageFile.Empty}", r.Stderr);
        Assert.DoesNotContain("Could not find file", r.Stderr);
        Assert.Equal(new[] { $"uploads/{prefix}/field.jpg", $"uploads/{prefix}/linked.jpg", $"uploads/{prefix}/tab\\tname.jpg" }, Lines(r.Stdout).Keys.Order(StringComparer.Ordinal));
        Assert.Equal(File.ReadAllBytes(CliRunner.SampleImage("BloodImage_00000.jpg")),
            (await Azurite.Blobs.GetBlobContainerClient(Containers.Uploads).GetBlobClient($"{prefix}/linked.jpg").DownloadContentAsync()).Value.Content.ToArray());
    }

    [Fact]
    public async Task UnreachableStorageIsOneClearError()
    {
        // Azurite's published development key, at a port where nothing listens.
        const string nowhere = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
                               "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
                               "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;";
        var r = await Upload(CliRunner.SampleImages, "--storage", nowhere);

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("error: cannot reach the storage at http://127.0.0.1:9/devstoreaccount1", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public async Task AConnectionStringThatIsNotOneIsAUsageError()
    {
        var r = await Upload(CliRunner.SampleImages, "--storage", "not a connection string");

        Assert.Equal(2, r.ExitCode);
        Assert.Contains("error: --storage is not a storage connection string", r.Stderr);
    }

    /// <summary>The HTTP API of <c>leuko serve</c> on a free port, with the pipeline's stages and a queue of its own, and no watcher.</summary>
    private static async Task<WebApplication> ApiAsync()
    {
        var options = new PipelineOptions
        {
            Storage = Azurite.ConnectionString,
            Transport = Transports.StorageQueue,
            Queue = Azurite.Unique("upload"),
            QueueVisibilityTimeout = TimeSpan.FromSeconds(10),
            SecretsKeyFile = Path.Combine(Path.GetTempPath(), "leuko-tests", Guid.NewGuid().ToString("N"), "webhook-secrets.key"),
        };
        options.WebhookQueue = options.Queue + "-webhooks";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddLeukoPipeline(options).AddOpenApiAccess();
        var app = builder.Build();
        app.MapLeukoApi();
        await app.StartAsync();
        return app;
    }

    private static async Task<JsonNode> PollAsync(HttpClient http, string url, Func<JsonNode, bool> done)
    {
        // A 2-core machine at a load of 40 took over 30 s for one request: margins such a machine cannot break.
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        string last = "no answer";
        try
        {
            while (true)
            {
                using var response = await http.GetAsync(url, deadline.Token);
                last = $"{(int)response.StatusCode}";
                if (response.IsSuccessStatusCode && await response.Content.ReadFromJsonAsync<JsonNode>(deadline.Token) is { } body && done(body))
                {
                    return body;
                }

                await Task.Delay(200, deadline.Token);
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new TimeoutException($"{url} answered {last} until the deadline");
        }
    }
}
