using System.CommandLine;
using Leuko.Azure.Hosting;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko serve</c>: the cloud pipeline on one machine against Azurite or a real storage account: watches
/// <c>uploads/</c> and <c>archives/</c>, runs segmentation and classification, and serves the HTTP API of the function app.
/// </summary>
internal static class ServeCommand
{
    /// <summary>Where the HTTP API listens unless <c>--urls</c> says otherwise.</summary>
    internal const string DefaultUrls = "http://127.0.0.1:7071";

    public static Command Create()
    {
        var storage = new Option<string>("--storage")
        {
            Description = "Storage connection string (blobs, tables, and the storage-queue transport), e.g. UseDevelopmentStorage=true for Azurite.",
            Required = true,
        };
        var transport = new Option<string>("--transport")
        {
            Description = "Queue between segmentation and classification: storage-queue (Azurite) or service-bus (needs --service-bus).",
            DefaultValueFactory = _ => Transports.StorageQueue,
        };
        transport.AcceptOnlyFromAmong(Transports.StorageQueue, Transports.ServiceBus);
        var serviceBus = new Option<string?>("--service-bus") { Description = "Service Bus connection string, for --transport service-bus." };
        var urls = new Option<string>("--urls") { Description = "Where the HTTP API listens.", DefaultValueFactory = _ => DefaultUrls };
        var queue = new Option<string>("--queue") { Description = "The classification queue's name.", DefaultValueFactory = _ => "classify" };
        var queueLock = new Option<int>("--queue-lock")
        {
            Description = "Seconds a storage-queue message stays locked (renewed while it is handled); after a crash, messages reappear this long after.",
            DefaultValueFactory = _ => 60,
        };

        // On the option itself, as every command's ranges are: a command's validators read an option the user left
        // out as default(T) (0 here), not its DefaultValueFactory value, so the README's command was refused.
        queueLock.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 2 or > 600)
            {
                r.AddError("--queue-lock must be between 2 and 600 seconds");
            }
        });
        var stuckAfter = new Option<int>("--stuck-after")
        {
            Description = "Seconds an image may stay classifying, or a batch expanding, unchanged before it is failed as stuck (with the reason).",
            DefaultValueFactory = _ => 3600,
        };
        stuckAfter.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 10)
            {
                r.AddError("--stuck-after must be at least 10 seconds");
            }
        });
        var loopbackWebhooks = new Option<bool>("--allow-loopback-webhooks")
        {
            Description = "Development: accept webhook subscribers on this machine (http://127.0.0.1:PORT/...). Private and metadata addresses stay refused.",
        };
        var webhookRetry = new Option<double[]>("--webhook-retry")
        {
            Description = "Seconds to wait before each webhook retry, one value per retry (Leuko:WebhookRetrySeconds); after the last, the delivery is dead-lettered.",
            DefaultValueFactory = _ => WebhookOptions.Default.RetrySchedule.Select(t => t.TotalSeconds).ToArray(),
            AllowMultipleArgumentsPerToken = true,
        };
        webhookRetry.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double[]>() is not { Length: > 0 } waits || waits.Any(w => w is not (> 0 and <= MaxWebhookRetrySeconds)))
            {
                r.AddError($"--webhook-retry takes one or more waits in seconds, each above 0 and at most {MaxWebhookRetrySeconds} (7 days)");
            }
        });
        var secretsKeyFile = new Option<string?>("--secrets-key-file")
        {
            Description = "The local key file that encrypts webhook signing secrets at rest (Leuko:SecretsKeyFile; created 0600 when absent). Default: ~/.config/leuko/webhook-secrets.key.",
        };
        var model = EvaluateClassification.ModelOption();
        var command = new Command("serve", "Run the cloud pipeline locally against Azurite or a storage account: watch uploads/ and archives/, classify, and serve the HTTP API.")
        {
            storage, transport, serviceBus, urls, queue, queueLock, stuckAfter, webhookRetry, loopbackWebhooks, secretsKeyFile, model,
        };
        command.Validators.Add(r =>
        {
            // Only a --transport given on the command line can be service-bus (the default is storage-queue).
            if (r.GetValue(transport) == Transports.ServiceBus && string.IsNullOrWhiteSpace(r.GetValue(serviceBus)))
            {
                r.AddError("--transport service-bus needs --service-bus CONNECTION_STRING");
            }
        });
        command.SetAction((parse, ct) => RunAsync(
            new PipelineOptions
            {
                Storage = parse.GetRequiredValue(storage),
                Transport = parse.GetRequiredValue(transport),
                ServiceBus = parse.GetValue(serviceBus),
                Queue = parse.GetRequiredValue(queue),
                QueueVisibilityTimeout = TimeSpan.FromSeconds(parse.GetValue(queueLock)),
                StuckAfter = TimeSpan.FromSeconds(parse.GetValue(stuckAfter)),
                WebhookQueue = parse.GetRequiredValue(queue) + "-webhooks",
                WebhookRetrySeconds = parse.GetRequiredValue(webhookRetry),
                AllowLoopbackWebhooks = parse.GetValue(loopbackWebhooks),
                PublicApiUrl = parse.GetRequiredValue(urls).Split(';')[0].TrimEnd('/') + "/api",
                Model = parse.GetRequiredValue(model),
                SecretsKeyFile = parse.GetValue(secretsKeyFile),
            },
            parse.GetRequiredValue(urls), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    /// <summary>The longest wait <c>--webhook-retry</c> takes: a storage-queue message is hidden for at most 7 days.</summary>
    internal const int MaxWebhookRetrySeconds = 7 * 24 * 3600;

    internal static async Task<int> RunAsync(PipelineOptions options, string urls, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning).AddFilter("Azure", LogLevel.Warning);
        builder.Services.AddLeukoPipeline(options);
        builder.Services.AddHostedService(sp => new UploadWatcher(
            sp.GetRequiredService<Leuko.Pipeline.Storage.IBlobStore>(), sp.GetRequiredService<Leuko.Pipeline.Storage.IResultStore>(),
            sp.GetRequiredService<SegmentationStage>(), sp.GetRequiredService<ArchiveStage>(), sp.GetRequiredService<ILogger<UploadWatcher>>(),
            maxAttempts: options.MaxAttempts));
        var app = builder.Build();
        MapApi(app);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or global::Azure.RequestFailedException or IOException or Leuko.Core.Classification.ModelLoadException)
        {
            stderr.WriteLine($"error: cannot start: {e.Message}");
            return ExitCodes.BadUsage;
        }

        stdout.WriteLine($"leuko serve: watching uploads/ and archives/ ({options.Transport}); API on {string.Join(", ", app.Urls)}/api");
        stdout.WriteLine("Upload images to the 'uploads' container or zip archives to 'archives'; read GET /api/images/{id} and /api/batches/{id}. Ctrl+C stops.");
        try
        {
            await app.WaitForShutdownAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }

        await app.StopAsync(CancellationToken.None);
        return ExitCodes.Success;
    }

    /// <summary>The HTTP API, the same routes as the function app.</summary>
    internal static void MapApi(WebApplication app)
    {
        app.MapGet("/api/health", async (Leuko.Pipeline.Storage.IResultStore results, PipelineOptions options, Leuko.Core.Classification.LeukocyteClassifier classifier, CancellationToken ct) =>
        {
            await results.GetImageAsync("health-check", ct); // reaches the table service
            return Results.Json(new { status = "ok", model = $"{classifier.Card.Name} {classifier.Card.Version}", transport = options.Transport }, PipelineJson.Options);
        });
        app.MapGet(ApiRoutes.Images + "/{id}", async (string id, PipelineQueries queries, CancellationToken ct) =>
            await queries.GetImageAsync(id, ct) is { } image ? Results.Json(image, PipelineJson.Options) : Results.NotFound(new { error = $"no image '{id}'" }));
        app.MapGet(ApiRoutes.Images + "/{id}/annotated", async (string id, PipelineQueries queries, CancellationToken ct) =>
            await queries.GetAnnotatedPngAsync(id, ct) is { } png ? Results.File(png, "image/png") : Results.NotFound(new { error = $"no analysed image '{id}'" }));
        app.MapGet(ApiRoutes.Batches + "/{id}", async (string id, PipelineQueries queries, CancellationToken ct) =>
            await queries.GetBatchAsync(id, ct) is { } batch ? Results.Json(batch, PipelineJson.Options) : Results.NotFound(new { error = $"no batch '{id}'" }));

        app.MapWebhookApi();
    }
}

/// <summary>The HTTP API's routes (the function app's, under its <c>api</c> prefix): <c>leuko serve</c> maps them, <c>leuko upload</c> prints them.</summary>
internal static class ApiRoutes
{
    public const string Images = "/api/images";

    public const string Batches = "/api/batches";
}
