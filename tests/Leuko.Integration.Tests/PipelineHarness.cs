using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Leuko.Azure.Hosting;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Integration.Tests;

/// <summary>
/// The cloud pipeline in this process against Azurite, wired as <c>leuko serve</c> wires it (storage-queue transport,
/// the upload watcher, the classification consumer), with a queue of its own so that tests do not share messages.
/// </summary>
internal sealed class PipelineHarness : IAsyncDisposable
{
    private readonly IHost _host;

    private PipelineHarness(IHost host, PipelineOptions options)
    {
        _host = host;
        Options = options;
    }

    public PipelineOptions Options { get; }

    public IServiceProvider Services => _host.Services;

    public IResultStore Results => Services.GetRequiredService<IResultStore>();

    public PipelineQueries Queries => Services.GetRequiredService<PipelineQueries>();

    /// <param name="secretsKeyFile">The local key file of the webhook secrets; default: a new one of this harness's own.</param>
    public static async Task<PipelineHarness> StartAsync(
        string? queue = null, int maxAttempts = 3, bool watch = true, bool consume = true, string? secretsKeyFile = null)
    {
        await Azurite.RequireAsync();
        var options = new PipelineOptions
        {
            Storage = Azurite.ConnectionString,
            Transport = Transports.StorageQueue,
            Queue = queue ?? Azurite.Unique("classify"),
            MaxAttempts = maxAttempts,
            QueueVisibilityTimeout = TimeSpan.FromSeconds(5),
            AllowLoopbackWebhooks = true,
            WebhookRetrySeconds = [0.2, 0.5, 1],
            SecretsKeyFile = secretsKeyFile ?? TestSecrets.NewKeyFile(),
        };
        options.WebhookQueue = options.Queue + "-webhooks";
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddLeukoPipeline(options, runConsumer: consume);
        if (watch)
        {
            builder.Services.AddHostedService(sp => new UploadWatcher(
                sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<SegmentationStage>(),
                sp.GetRequiredService<ArchiveStage>(), sp.GetRequiredService<ILogger<UploadWatcher>>(), TimeSpan.FromMilliseconds(200), maxAttempts: maxAttempts));
        }

        var host = builder.Build();
        await host.StartAsync();
        return new PipelineHarness(host, options);
    }

    public static async Task UploadAsync(
        string container, string name, byte[] data, CancellationToken cancellationToken = default, IDictionary<string, string>? metadata = null)
    {
        var client = Azurite.Blobs.GetBlobContainerClient(container);
        await client.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await client.GetBlobClient(name).UploadAsync(new BinaryData(data), new global::Azure.Storage.Blobs.Models.BlobUploadOptions { Metadata = metadata }, cancellationToken);
    }

    /// <summary>Polls until every image is final, or fails after <paramref name="timeout"/> naming the images still pending.</summary>
    public static async Task<IReadOnlyList<ImageRow>> WaitForImagesAsync(IResultStore results, IReadOnlyList<string> uploadNames, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var rows = new List<ImageRow?>();
            foreach (var name in uploadNames)
            {
                rows.Add(await results.GetImageAsync(PipelineIds.Image(name), CancellationToken.None));
            }

            if (rows.All(r => r is { IsFinal: true }))
            {
                return rows!;
            }

            if (DateTime.UtcNow > deadline)
            {
                var waiting = uploadNames.Where((n, i) => rows[i] is not { IsFinal: true }).Select((n, i) => $"{n} ({rows[i]?.Status ?? "no row"})");
                Assert.Fail($"{waiting.Count()} of {uploadNames.Count} images not final after {timeout}: {string.Join(", ", waiting.Take(5))}");
            }

            await Task.Delay(250);
        }
    }

    /// <summary>The one message a test's own transport holds, taken (and settled) as a consumer would.</summary>
    public static async Task<ReceivedMessage> TakeAsync(InMemoryTransport transport)
    {
        ReceivedMessage? taken = null;
        transport.Complete();
        await transport.RunAsync((m, _) =>
        {
            taken = m;
            return Task.FromResult(MessageResult.Completed);
        }, CancellationToken.None);
        return taken ?? throw new InvalidOperationException("no message was sent");
    }

    /// <summary>The image's cell entities as stored (every version's), read from the table directly.</summary>
    public static async Task<List<TableEntity>> CellEntitiesAsync(string imageId)
    {
        var list = new List<TableEntity>();
        await foreach (var e in Azurite.Tables.GetTableClient(TableResultStore.CellsTable).QueryAsync<TableEntity>(x => x.PartitionKey == imageId))
        {
            list.Add(e);
        }

        return list;
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(10));
        _host.Dispose();
    }
}

/// <summary>The committed sample images, as (file name, bytes).</summary>
internal static class Samples
{
    public static IReadOnlyList<(string Name, byte[] Data)> All()
    {
        var root = Path.Combine(AppContext.BaseDirectory, "samples");
        return new[] { "bccd/JPEGImages", "cells" }
            .SelectMany(d => Directory.EnumerateFiles(Path.Combine(root, d), "*", SearchOption.AllDirectories))
            .Where(f => f.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".jpeg", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .Select(f => (Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllBytes(f)))
            .ToList();
    }
}
