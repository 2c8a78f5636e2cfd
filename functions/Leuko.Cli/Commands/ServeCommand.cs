using System.CommandLine;
using Leuko.Azure.Hosting;
using Leuko.Core.Classification;
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
            if (r.TryGetValue<int>(out var v) && v is < 2 or > 600)
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
            if (r.TryGetValue<int>(out var v) && v < 10)
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
            Description = "Seconds to wait before each webhook retry, one value per retry, separated by spaces (--webhook-retry 5 30 120; Leuko:WebhookRetrySeconds); after the last, the delivery is dead-lettered.",
            HelpName = "seconds",
            DefaultValueFactory = _ => WebhookOptions.Default.RetrySchedule.Select(t => t.TotalSeconds).ToArray(),
            AllowMultipleArgumentsPerToken = true,
        };
        webhookRetry.Validators.Add(r =>
        {
            if (r.TryGetValue<double[]>(out var waits) && (waits is not { Length: > 0 } || waits.Any(w => w is not (> 0 and <= MaxWebhookRetrySeconds))))
            {
                r.AddError($"--webhook-retry takes one or more waits in seconds, each above 0 and at most {MaxWebhookRetrySeconds} (7 days)");
            }
        });
        var secretsKeyFile = new Option<string?>("--secrets-key-file")
        {
            Description = "The local key file that encrypts webhook signing secrets at rest (Leuko:SecretsKeyFile; created 0600 when absent). Default: ~/.config/leuko/webhook-secrets.key.",
        };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = $"An admin key the HTTP API requires (header {ApiAccess.KeyHeader} or query {ApiAccess.KeyQuery}); default: ${ApiKeyVariable}. " +
                          "Without any key the API is open, which only a loopback --urls allows.",
        };
        var apiKeys = new Option<string?>("--api-keys")
        {
            Description = "A JSON file of named client keys in the Functions host secrets shape ({\"functionKeys\": [{\"name\": \"lims\", \"value\": \"...\"}]}), " +
                          "their roles from Leuko__ApiClients__NAME (e.g. read,subscribe).",
        };
        var model = EvaluateClassification.ModelOption();
        var micronsPerPixel = ScaleOption.Create();
        var command = new Command("serve", "Run the cloud pipeline locally against Azurite or a storage account: watch uploads/ and archives/, classify, and serve the HTTP API.")
        {
            storage, transport, serviceBus, urls, queue, queueLock, stuckAfter, webhookRetry, loopbackWebhooks, secretsKeyFile, apiKey, apiKeys, model,
            micronsPerPixel,
        };
        command.Validators.Add(r =>
        {
            // Only a --transport given on the command line can be service-bus (the default is storage-queue).
            if (r.GetValue(transport) == Transports.ServiceBus && string.IsNullOrWhiteSpace(r.GetValue(serviceBus)))
            {
                r.AddError("--transport service-bus needs --service-bus CONNECTION_STRING");
            }

            if (r.GetValue(transport) is null or Transports.StorageQueue && r.GetValue(queue) is { } name && !(IsStorageQueueName(name) && IsStorageQueueName(name + WebhookQueueSuffix)))
            {
                r.AddError($"--queue '{TerminalText.OneLine(name)}' is not a storage queue name: 3 to {63 - WebhookQueueSuffix.Length} lowercase letters, " +
                           $"digits and single hyphens, starting and ending with a letter or digit (the webhook queue is the name with {WebhookQueueSuffix})");
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
                WebhookQueue = parse.GetRequiredValue(queue) + WebhookQueueSuffix,
                WebhookRetrySeconds = parse.GetRequiredValue(webhookRetry),
                AllowLoopbackWebhooks = parse.GetValue(loopbackWebhooks),
                PublicApiUrl = parse.GetRequiredValue(urls).Split(';')[0].TrimEnd('/') + "/api",
                Model = parse.GetRequiredValue(model),
                SecretsKeyFile = parse.GetValue(secretsKeyFile),
                MicronsPerPixel = parse.GetValue(micronsPerPixel), // Leuko:MicronsPerPixel; an upload's metadata overrides it
            },
            parse.GetRequiredValue(urls),
            new ServeAccess(
                parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } key ? key : null),
                parse.GetValue(apiKeys)),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    /// <summary>The webhook delivery queue's name is the classification queue's with this after it.</summary>
    private const string WebhookQueueSuffix = "-webhooks";

    /// <summary>Azure Storage's rule for queue names: 3-63 lowercase letters, digits and single hyphens, a letter or digit at each end.</summary>
    internal static bool IsStorageQueueName(string name) =>
        name.Length is >= 3 and <= 63 && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') &&
        name[0] != '-' && name[^1] != '-' && !name.Contains("--", StringComparison.Ordinal);

    /// <summary>The environment variable that gives <c>--api-key</c> (kept out of the process list).</summary>
    internal const string ApiKeyVariable = "LEUKO_API_KEY";

    /// <summary>The keys <c>leuko serve</c> was given: an admin key, a file of named client keys; neither: open (loopback only).</summary>
    internal sealed record ServeAccess(string? AdminKey, string? KeysFile)
    {
        public static ServeAccess None { get; } = new(null, null);
    }

    /// <summary>
    /// Whether every address of <paramref name="urls"/> is this machine's own (127.0.0.0/8, ::1, localhost): only then
    /// may the API be open. Anything else (0.0.0.0, *, +, a host name, another address) is reachable from elsewhere.
    /// </summary>
    internal static bool IsLoopbackOnly(string urls) =>
        urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).All(url =>
            Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.IsLoopback);

    /// <summary>The longest wait <c>--webhook-retry</c> takes: a storage-queue message is hidden for at most 7 days.</summary>
    internal const int MaxWebhookRetrySeconds = 7 * 24 * 3600;

    internal static async Task<int> RunAsync(
        PipelineOptions options, string urls, ServeAccess access, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        bool keyed = access.AdminKey is not null || access.KeysFile is not null || !string.IsNullOrEmpty(builder.Configuration["Leuko:ApiKeysFile"]);
        if (!keyed && !IsLoopbackOnly(urls))
        {
            stderr.WriteLine($"error: --urls {urls} is reachable from other machines, and the API has no key: give --api-key KEY (or ${ApiKeyVariable}), " +
                             "or --api-keys FILE for named clients; without a key leuko serve listens on loopback only (127.0.0.1, ::1, localhost)");
            return ExitCodes.BadUsage;
        }

        if (!NativeDependencies.Check(stderr))
        {
            return ExitCodes.MissingDependency;
        }

        // What the command line got wrong is one line before the host starts (whose own failure log carries a stack).
        if (options.Storage is null || UploadCommand.Parse(options.Storage, stderr) is null)
        {
            return ExitCodes.BadUsage;
        }

        using var sessionOptions = LeukocyteClassifier.SessionOptionsFor(options.ModelCalls);
        if (EvaluateClassification.LoadClassifier(options.Model ?? LeukocyteClassifier.DefaultModelPath, stderr, sessionOptions) is not { } classifier)
        {
            return ExitCodes.BadUsage;
        }

        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning).AddFilter("Azure", LogLevel.Warning);
        // The host's own error for a start that failed is a stack trace; serve says why in one line (below). A service that
        // fails later is still logged, with its exception, at Critical as the host stops.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Services.AddLeukoPipeline(options, classifier: classifier);
        if (keyed)
        {
            builder.Services.AddLeukoApiAccess(access.AdminKey, access.KeysFile);
        }
        else
        {
            builder.Services.AddOpenApiAccess();
        }

        builder.Services.AddHostedService(sp => new UploadWatcher(
            sp.GetRequiredService<Leuko.Pipeline.Storage.IBlobStore>(), sp.GetRequiredService<Leuko.Pipeline.Storage.IResultStore>(),
            sp.GetRequiredService<SegmentationStage>(), sp.GetRequiredService<ArchiveStage>(), sp.GetRequiredService<ILogger<UploadWatcher>>(),
            maxAttempts: options.MaxAttempts));
        var app = builder.Build();
        app.MapLeukoApi();
        ApiAccess api;
        try
        {
            await app.StartAsync(cancellationToken);
            api = app.Services.GetRequiredService<ApiAccess>();
        }
        catch (Exception e) when (e is InvalidOperationException or global::Azure.RequestFailedException or IOException or Leuko.Core.Classification.ModelLoadException
                                      or Microsoft.Extensions.Options.OptionsValidationException or Leuko.Azure.Hosting.StorageUnreachableException
                                      or FormatException or ArgumentException or UnauthorizedAccessException)
        {
            // The storage service's messages go on with its request id and headers: the first line says it.
            stderr.WriteLine($"error: cannot start: {TerminalText.OneLine(e.Message.Split('\n')[0].Trim())}");
            return ExitCodes.BadUsage;
        }

        stdout.WriteLine($"leuko serve: watching uploads/ and archives/ ({options.Transport}); API on {string.Join(", ", app.Urls)}/api");
        stdout.WriteLine(api.IsOpen
            ? "API access: open, no key (loopback only, for development): every caller is admin. --api-key KEY requires one."
            : $"API access: a key is required ({ApiAccess.KeyHeader} header or {ApiAccess.KeyQuery} query); clients: " +
              string.Join(", ", api.Callers.Select(c => $"{c.Name} ({string.Join(",", c.Roles.Order(StringComparer.Ordinal))})")));
        stdout.WriteLine("Upload images to the 'uploads' container or zip archives to 'archives'; read GET /api/images/{id} and /api/batches/{id}. Ctrl+C stops.");
        stdout.WriteLine($"Review page: {app.Urls.First()}{LeukoApi.ReviewPagePath}");
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
}
