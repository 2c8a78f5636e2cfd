using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Messaging.ServiceBus;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The Azure SDK clients, from a connection string (Azurite, development) or, in Azure, from the account and namespace
/// names with the user-assigned managed identity: no key or connection string is configured there.
/// </summary>
public sealed class AzureClients
{
    private readonly TokenCredential _credential;
    private ServiceBusClient? _serviceBus;

    private AzureClients(BlobServiceClient blobs, TableServiceClient tables, QueueServiceClient queues, TokenCredential credential)
    {
        Blobs = blobs;
        Tables = tables;
        Queues = queues;
        _credential = credential;
    }

    public BlobServiceClient Blobs { get; }

    public TableServiceClient Tables { get; }

    public QueueServiceClient Queues { get; }

    /// <summary>The managed identity (the user-assigned one when its client id is configured, else DefaultAzureCredential), for Key Vault.</summary>
    public TokenCredential Credential => _credential;

    public static AzureClients From(PipelineOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.Storage))
        {
            return new AzureClients(new BlobServiceClient(options.Storage), new TableServiceClient(options.Storage), new QueueServiceClient(options.Storage), CredentialOf(options));
        }

        if (string.IsNullOrWhiteSpace(options.StorageAccountName))
        {
            throw new InvalidOperationException(
                "no storage configured: set Leuko:Storage (or AzureWebJobsStorage) to a connection string, or AzureWebJobsStorage__accountName with a managed identity");
        }

        var credential = CredentialOf(options);
        var account = options.StorageAccountName;
        return new AzureClients(
            new BlobServiceClient(new Uri($"https://{account}.blob.core.windows.net"), credential),
            new TableServiceClient(new Uri($"https://{account}.table.core.windows.net"), credential),
            new QueueServiceClient(new Uri($"https://{account}.queue.core.windows.net"), credential),
            credential);
    }

    /// <summary>The Service Bus client: a connection string (development) or the namespace with the managed identity.</summary>
    public ServiceBusClient ServiceBus(PipelineOptions options) => _serviceBus ??=
        !string.IsNullOrWhiteSpace(options.ServiceBus) ? new ServiceBusClient(options.ServiceBus)
        : !string.IsNullOrWhiteSpace(options.ServiceBusNamespace) ? new ServiceBusClient(options.ServiceBusNamespace, _credential)
        : throw new InvalidOperationException("the service-bus transport needs Leuko:ServiceBusNamespace (managed identity) or Leuko:ServiceBus (connection string)");

    private static TokenCredential CredentialOf(PipelineOptions options) =>
        string.IsNullOrWhiteSpace(options.ManagedIdentityClientId)
            ? new DefaultAzureCredential()
            : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(options.ManagedIdentityClientId));
}
