using System.Diagnostics;
using Leuko.Pipeline;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;

namespace Leuko.Integration.Tests;

/// <summary><c>leuko bench serve</c> as a real process, against the pipeline running on Azurite.</summary>
[Collection("Azurite")]
public class ServeBenchmarkTests
{
    [Fact]
    public async Task ItUploadsABurstWaitsForEveryRowAndPrintsThroughputAndLatency()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var folder = Path.Combine(AppContext.BaseDirectory, "samples", "bccd", "JPEGImages");
        int images = Directory.EnumerateFiles(folder, "*.jpg").Count();

        var (exit, stdout, stderr) = await LeukoAsync("bench", "serve", folder, "--storage", Azurite.ConnectionString, "--timeout", "600");

        Assert.True(exit == 0, $"exit {exit}: {stderr}");
        Assert.Matches(@"\d+\.\d\d images/s: " + images + @" final in [\d.]+ s from the first upload \(completed " + images + @"\)", stdout);
        Assert.Matches(@"upload-to-final latency: p50 [\d.]+ s, p95 [\d.]+ s, max [\d.]+ s", stdout);
        Assert.Contains($"final: {images}/{images} (100%)", stderr);

        // The images it waited for are the pipeline's rows of the blobs it uploaded, under a folder of its own.
        var uploaded = new List<string>();
        var prefix = stdout.Split('\n')[0].Split("/uploads/")[1].Split('/')[0];
        await foreach (var blob in Azurite.Blobs.GetBlobContainerClient(Containers.Uploads).GetBlobsAsync(global::Azure.Storage.Blobs.Models.BlobTraits.None, global::Azure.Storage.Blobs.Models.BlobStates.None, prefix + "/", CancellationToken.None))
        {
            uploaded.Add(blob.Name);
        }

        // The measured burst, and a warm-up pass over the same images before it, in folders of their own.
        Assert.Equal(2 * images, uploaded.Count);
        Assert.Equal(images, uploaded.Count(n => n.StartsWith(prefix + "/warm-up/", StringComparison.Ordinal)));
        Assert.Equal(images, uploaded.Count(n => n.StartsWith(prefix + "/burst/", StringComparison.Ordinal)));
        Assert.Contains($"warm-up: {images - 1}/{images - 1} (100%)", stderr);
        foreach (var name in uploaded)
        {
            Assert.Equal(ImageStatus.Completed, (await pipeline.Results.GetImageAsync(PipelineIds.Image(name), CancellationToken.None))?.Status);
        }
    }

    [Fact]
    public async Task WithNoPipelineWatchingItGivesUpAtTheTimeoutAndSaysWhy()
    {
        await Azurite.RequireAsync();
        var inputs = Directory.CreateTempSubdirectory("leuko-bench-serve-");
        try
        {
            File.Copy(Path.Combine(AppContext.BaseDirectory, "samples", "bccd", "JPEGImages", "BloodImage_00000.jpg"), Path.Combine(inputs.FullName, "a.jpg"));

            var (exit, _, stderr) = await LeukoAsync("bench", "serve", inputs.FullName, "--storage", Azurite.ConnectionString, "--timeout", "2");

            Assert.Equal(1, exit);
            Assert.Contains("the warm-up image was not final within 2 s", stderr);
        }
        finally
        {
            inputs.Delete(recursive: true);
        }
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> LeukoAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "leuko.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout, await stderr);
    }
}
