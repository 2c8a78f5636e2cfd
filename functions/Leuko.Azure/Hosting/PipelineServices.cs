using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Leuko.Azure.Messaging;
using Leuko.Azure.Storage;
using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Secrets;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>Registers the pipeline (stores, transport, stages, queries, the classification consumer, the sweeper) from configuration.</summary>
public static class PipelineServices
{
    public static IServiceCollection AddLeukoPipeline(this IServiceCollection services, IConfiguration configuration, bool runConsumer = true)
    {
        var options = new PipelineOptions();
        configuration.GetSection(PipelineOptions.Section).Bind(options);
        options.Storage ??= configuration["AzureWebJobsStorage"];
        options.StorageAccountName ??= configuration["AzureWebJobsStorage:accountName"];
        options.ManagedIdentityClientId ??= configuration["AzureWebJobsStorage:clientId"];
        options.PublicApiUrl ??= configuration["WEBSITE_HOSTNAME"] is { Length: > 0 } host ? $"https://{host}/api" : null;
        return services.AddLeukoPipeline(options, runConsumer);
    }

    /// <param name="classifier">The model, loaded by the caller (who reports a bad one itself); null: loaded from <see cref="PipelineOptions.Model"/> when first needed.</param>
    public static IServiceCollection AddLeukoPipeline(this IServiceCollection services, PipelineOptions options, bool runConsumer = true, LeukocyteClassifier? classifier = null)
    {
        services.AddSingleton(options);
        var clients = AzureClients.From(options);
        services.AddSingleton(clients);
        services.AddSingleton(clients.Blobs);
        services.AddSingleton(clients.Tables);
        services.AddSingleton<AzureBlobStore>();
        services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<AzureBlobStore>());
        services.AddSingleton<TableResultStore>();
        services.AddSingleton<IResultStore>(sp => sp.GetRequiredService<TableResultStore>());
        if (classifier is not null)
        {
            services.AddSingleton(classifier);
        }
        else
        {
            services.AddSingleton(sp =>
            {
                // One ONNX Runtime thread per core left to each concurrent call, none spin-waiting: segmentation shares the cores.
                using var session = LeukocyteClassifier.SessionOptionsFor(options.ModelCalls);
                return LeukocyteClassifier.Load(options.Model ?? LeukocyteClassifier.DefaultModelPath, session);
            });
        }
        services.AddSingleton(new LeukocyteSegmenter());
        services.AddSingleton(sp => CellClasses.Of(sp.GetRequiredService<LeukocyteClassifier>().Card));
        services.AddSingleton<IMessageTransport>(sp => CreateTransport(options, options.Queue, sp));
        services.AddSingleton<IMessageSender>(sp => sp.GetRequiredService<IMessageTransport>());
        services.AddSingleton<IMessageConsumer>(sp => sp.GetRequiredService<IMessageTransport>());

        // Webhooks: subscriptions in tables, deliveries on a queue of their own, sent by their own consumer.
        var webhookOptions = WebhookOptions.Default with
        {
            AllowLoopback = options.AllowLoopbackWebhooks,
            RetrySchedule = options.WebhookRetrySeconds is { Length: > 0 } r ? r.Select(TimeSpan.FromSeconds).ToList() : WebhookOptions.Default.RetrySchedule,
            MaxSubscriptionsPerClient = options.MaxSubscriptionsPerClient is > 0 and var max
                ? max
                : throw new InvalidOperationException($"{PipelineOptions.Section}:MaxSubscriptionsPerClient must be at least 1, not {options.MaxSubscriptionsPerClient}"),
        };
        services.AddSingleton(webhookOptions);
        services.AddSingleton(sp => KeyEncryptionKeys.From(options, sp.GetRequiredService<AzureClients>()));
        services.AddSingleton(sp => new WebhookSecrets(new EnvelopeEncryption(sp.GetRequiredService<IKeyEncryptionKey>())));
        services.AddSingleton<TableWebhookStore>();
        services.AddSingleton<IWebhookStore>(sp => sp.GetRequiredService<TableWebhookStore>());
        services.AddSingleton(sp => new WebhookQueue(CreateTransport(options, options.WebhookQueue, sp)));
        services.AddSingleton(sp => new WebhookPublisher(
            sp.GetRequiredService<IWebhookStore>(), sp.GetRequiredService<WebhookQueue>().Transport, options.PublicApiUrl ?? "http://127.0.0.1:7071/api",
            sp.GetRequiredService<CellClasses>()));
        services.AddSingleton<IPipelineEvents>(sp => sp.GetRequiredService<WebhookPublisher>());
        services.AddSingleton<IReviewEvents>(sp => sp.GetRequiredService<WebhookPublisher>());
        services.AddSingleton(sp => new WebhookSender(
            sp.GetRequiredService<IWebhookStore>(), sp.GetRequiredService<WebhookSecrets>(), sp.GetRequiredService<WebhookQueue>().Transport, WebhookSender.CreateHttpClient(webhookOptions), webhookOptions));
        services.AddSingleton(sp => new WebhookService(sp.GetRequiredService<IWebhookStore>(), sp.GetRequiredService<WebhookSecrets>(), webhookOptions));

        // Both stages run in this process: classification takes the crops segmentation wrote from memory.
        services.AddSingleton(new CropHandOff());
        services.AddSingleton(sp => new SegmentationStage(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<IMessageSender>(),
            sp.GetRequiredService<LeukocyteSegmenter>(), sp.GetRequiredService<LeukocyteClassifier>().Card.Classes,
            events: sp.GetRequiredService<IPipelineEvents>(), scale: options.MicronsPerPixel is { } mpp ? Leuko.Core.Scale.ImageScale.Given(mpp) : null,
            handOff: sp.GetRequiredService<CropHandOff>()));
        // As many model calls at once as the session's threads were divided for; the crops of the messages handled meanwhile are batched.
        services.AddSingleton(sp => new ClassificationStage(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<LeukocyteClassifier>(), options.MaxAttempts,
            sp.GetRequiredService<IPipelineEvents>(), modelCalls: options.ModelCalls, handOff: sp.GetRequiredService<CropHandOff>()));
        services.AddSingleton(sp => new ArchiveStage(sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), events: sp.GetRequiredService<IPipelineEvents>()));
        services.AddSingleton(sp => new PipelineSweeper(sp.GetRequiredService<IResultStore>(), options.StuckAfter, sp.GetRequiredService<IPipelineEvents>()));
        services.AddSingleton(sp => new PipelineQueries(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<CellClasses>()));
        services.AddSingleton<TableReviewStore>();
        services.AddSingleton<IReviewStore>(sp => sp.GetRequiredService<TableReviewStore>());
        services.AddSingleton(sp => new ReviewService(
            sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<IReviewStore>(), sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<CellClasses>(),
            LeukoApi.Prefix, sp.GetRequiredService<IReviewEvents>()));
        services.AddHostedService<StorageInitializer>();
        services.AddHostedService(sp => new WebhookSecretsInitializer(
            sp.GetRequiredService<WebhookSecrets>(), sp.GetRequiredService<IWebhookStore>(), sp.GetRequiredService<ILogger<WebhookSecretsInitializer>>()));
        if (runConsumer)
        {
            services.AddHostedService<ClassificationWorker>();
            services.AddHostedService<WebhookWorker>();
            services.AddHostedService(sp => new SweeperService(sp.GetRequiredService<PipelineSweeper>(), sp.GetRequiredService<ILogger<SweeperService>>()));
        }

        return services;
    }

    private static IMessageTransport CreateTransport(PipelineOptions options, string queue, IServiceProvider sp)
    {
        var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Leuko.Transport");
        return options.Transport switch
        {
            Transports.StorageQueue => new StorageQueueTransport(
                sp.GetRequiredService<AzureClients>().Queues, queue,
                StorageQueueOptions.Default with { VisibilityTimeout = options.QueueVisibilityTimeout, MaxConcurrentCalls = options.MaxConcurrentCalls },
                e => log.LogWarning(e, "storage queue")),
            Transports.ServiceBus => new ServiceBusTransport(
                sp.GetRequiredService<AzureClients>().ServiceBus(options), queue,
                new ServiceBusTransportOptions { MaxConcurrentCalls = options.MaxConcurrentCalls }, e => log.LogWarning(e, "service bus")),
            Transports.Memory => new InMemoryTransport(options.MaxConcurrentCalls),
            _ => throw new InvalidOperationException(
                $"Leuko:Transport '{options.Transport}' is not one of {Transports.ServiceBus}, {Transports.StorageQueue}, {Transports.Memory}"),
        };
    }

    /// <summary>Creates the containers, tables and queues before anything runs.</summary>
    private sealed class StorageInitializer(
        AzureBlobStore blobs, TableResultStore tables, TableWebhookStore webhooks, TableReviewStore reviews, IMessageTransport transport, WebhookQueue webhookQueue)
        : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            try
            {
                await InitializeAsync(cancellationToken);
            }
            catch (AggregateException e) when (e.InnerExceptions.Count > 0 && e.InnerExceptions.All(i => i is global::Azure.RequestFailedException))
            {
                // The SDK's retries all failed without an answer (connection refused, DNS, timeouts): one line, not six stacks.
                throw new StorageUnreachableException(
                    $"Azure Storage did not answer after {e.InnerExceptions.Count} tries: {e.InnerExceptions[^1].Message}");
            }
        }

        private async Task InitializeAsync(CancellationToken cancellationToken)
        {
            await blobs.InitializeAsync(cancellationToken);
            await tables.InitializeAsync(cancellationToken);
            await webhooks.InitializeAsync(cancellationToken);
            await reviews.InitializeAsync(cancellationToken);
            foreach (var queue in new[] { transport, webhookQueue.Transport }.OfType<StorageQueueTransport>())
            {
                await queue.InitializeAsync(cancellationToken);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>The storage account did not answer at start (nothing listening, a wrong host name): the host cannot run.</summary>
public sealed class StorageUnreachableException(string message) : Exception(message);

/// <summary>The webhook delivery queue, a transport of its own beside the classification queue.</summary>
public sealed record WebhookQueue(IMessageTransport Transport);
