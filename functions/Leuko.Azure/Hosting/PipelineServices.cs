using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Leuko.Azure.Messaging;
using Leuko.Azure.Storage;
using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>Registers the pipeline (stores, transport, stages, queries, the classification consumer) from configuration.</summary>
public static class PipelineServices
{
    public static IServiceCollection AddLeukoPipeline(this IServiceCollection services, IConfiguration configuration, bool runConsumer = true)
    {
        var options = new PipelineOptions();
        configuration.GetSection(PipelineOptions.Section).Bind(options);
        options.Storage ??= configuration["AzureWebJobsStorage"];
        return services.AddLeukoPipeline(options, runConsumer);
    }

    public static IServiceCollection AddLeukoPipeline(this IServiceCollection services, PipelineOptions options, bool runConsumer = true)
    {
        if (string.IsNullOrWhiteSpace(options.Storage))
        {
            throw new InvalidOperationException("Leuko:Storage (or AzureWebJobsStorage) must hold a storage connection string");
        }

        services.AddSingleton(options);
        services.AddSingleton(new BlobServiceClient(options.Storage));
        services.AddSingleton(new TableServiceClient(options.Storage));
        services.AddSingleton<AzureBlobStore>();
        services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<AzureBlobStore>());
        services.AddSingleton<TableResultStore>();
        services.AddSingleton<IResultStore>(sp => sp.GetRequiredService<TableResultStore>());
        services.AddSingleton(sp => LeukocyteClassifier.Load(options.Model ?? LeukocyteClassifier.DefaultModelPath));
        services.AddSingleton(new LeukocyteSegmenter());
        services.AddSingleton<IMessageTransport>(sp => CreateTransport(options, sp));
        services.AddSingleton<IMessageSender>(sp => sp.GetRequiredService<IMessageTransport>());
        services.AddSingleton<IMessageConsumer>(sp => sp.GetRequiredService<IMessageTransport>());
        services.AddSingleton(sp => new SegmentationStage(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<IMessageSender>(),
            sp.GetRequiredService<LeukocyteSegmenter>(), sp.GetRequiredService<LeukocyteClassifier>().Card.Classes));
        services.AddSingleton(sp => new ClassificationStage(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<LeukocyteClassifier>(), options.MaxAttempts));
        services.AddSingleton(sp => new ArchiveStage(sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>()));
        services.AddSingleton(sp => new PipelineQueries(
            sp.GetRequiredService<IBlobStore>(), sp.GetRequiredService<IResultStore>(), sp.GetRequiredService<LeukocyteClassifier>().Card.Classes));
        services.AddHostedService<StorageInitializer>();
        if (runConsumer)
        {
            services.AddHostedService<ClassificationWorker>();
        }

        return services;
    }

    private static IMessageTransport CreateTransport(PipelineOptions options, IServiceProvider sp)
    {
        var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("Leuko.Transport");
        return options.Transport switch
        {
            Transports.StorageQueue => new StorageQueueTransport(
                new QueueServiceClient(options.Storage), options.Queue,
                StorageQueueOptions.Default with { VisibilityTimeout = options.QueueVisibilityTimeout, MaxConcurrentCalls = options.MaxConcurrentCalls },
                e => log.LogWarning(e, "storage queue")),
            Transports.ServiceBus => ServiceBusTransport.FromConnectionString(
                options.ServiceBus ?? throw new InvalidOperationException("Leuko:ServiceBus must hold the Service Bus connection string for the service-bus transport"),
                options.Queue, new ServiceBusTransportOptions { MaxConcurrentCalls = options.MaxConcurrentCalls }, e => log.LogWarning(e, "service bus")),
            Transports.Memory => new InMemoryTransport(options.MaxConcurrentCalls),
            _ => throw new InvalidOperationException(
                $"Leuko:Transport '{options.Transport}' is not one of {Transports.ServiceBus}, {Transports.StorageQueue}, {Transports.Memory}"),
        };
    }

    /// <summary>Creates the containers, tables and queues before anything runs.</summary>
    private sealed class StorageInitializer(AzureBlobStore blobs, TableResultStore tables, IMessageTransport transport) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await blobs.InitializeAsync(cancellationToken);
            await tables.InitializeAsync(cancellationToken);
            if (transport is StorageQueueTransport queue)
            {
                await queue.InitializeAsync(cancellationToken);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
