namespace Leuko.Azure.Hosting;

/// <summary>The transports between segmentation and classification.</summary>
public static class Transports
{
    public const string ServiceBus = "service-bus";
    public const string StorageQueue = "storage-queue";
    public const string Memory = "memory";
}

/// <summary>A setting the deployed function app needs: infra/ must set it (a test checks).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class DeployedSettingAttribute : Attribute;

/// <summary>
/// Configuration of the pipeline, section <c>Leuko</c> (environment: <c>Leuko__Storage</c>, ...). The README lists
/// every key. In Azure no connection string or key is configured: the storage account and the Service Bus namespace
/// are reached with the user-assigned managed identity (<see cref="StorageAccountName"/>, <see cref="ServiceBusNamespace"/>,
/// <see cref="ManagedIdentityClientId"/>), as the Functions host reaches <c>AzureWebJobsStorage__accountName</c>.
/// </summary>
public sealed class PipelineOptions
{
    public const string Section = "Leuko";

    /// <summary>Storage account connection string (blobs, tables, and the storage-queue transport), for Azurite and development. Falls back to AzureWebJobsStorage.</summary>
    public string? Storage { get; set; }

    /// <summary>Storage account name, reached with the managed identity. Falls back to AzureWebJobsStorage__accountName.</summary>
    public string? StorageAccountName { get; set; }

    /// <summary><c>service-bus</c>, <c>storage-queue</c> or <c>memory</c>.</summary>
    [DeployedSetting]
    public string Transport { get; set; } = Transports.ServiceBus;

    /// <summary>Service Bus connection string (for <c>service-bus</c>), for development.</summary>
    public string? ServiceBus { get; set; }

    /// <summary>Service Bus namespace host name (<c>NAME.servicebus.windows.net</c>), reached with the managed identity.</summary>
    [DeployedSetting]
    public string? ServiceBusNamespace { get; set; }

    /// <summary>Client id of the user-assigned managed identity. Falls back to AzureWebJobsStorage__clientId.</summary>
    [DeployedSetting]
    public string? ManagedIdentityClientId { get; set; }

    /// <summary>The classification queue (Service Bus queue or Storage queue).</summary>
    [DeployedSetting]
    public string Queue { get; set; } = "classify";

    /// <summary>
    /// Deliveries of a classification message before it is dead-lettered and its image failed. On Service Bus keep it
    /// below the queue's <c>maxDeliveryCount</c> (infra/modules/servicebus.bicep: 10), so that the stage, not the broker,
    /// handles the last delivery and marks the image failed. In <c>leuko serve</c> also the attempts at an uploaded blob
    /// before it is given up and its image or batch failed.
    /// </summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>
    /// How long an image may stay <c>classifying</c>, or a batch <c>expanding</c>, without a change before the sweeper
    /// fails it with a reason. Longer than the longest queue wait and archive expansion expected.
    /// </summary>
    public TimeSpan StuckAfter { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Classification messages handled at once by one host. Their cells are classified together (<see cref="ClassificationStage"/>'s
    /// batching), in <see cref="ModelCalls"/> model calls at a time: more messages than cores make larger, cheaper batches.
    /// </summary>
    public int MaxConcurrentCalls { get; set; } = 8;

    /// <summary>Model calls at once: one per core, at most one per message handled; each gets the cores' share of threads.</summary>
    public int ModelCalls => Math.Clamp(MaxConcurrentCalls, 1, Environment.ProcessorCount);

    /// <summary>How long a storage-queue message stays locked (renewed while it is handled).</summary>
    public TimeSpan QueueVisibilityTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The webhook delivery queue (same transport as the classification queue).</summary>
    [DeployedSetting]
    public string WebhookQueue { get; set; } = "webhooks";

    /// <summary>Development only: webhook subscribers on this machine (http://127.0.0.1) are allowed.</summary>
    public bool AllowLoopbackWebhooks { get; set; }

    /// <summary>Waits before each webhook retry, in seconds (default: 5, 30, 120, 600, 1800, 3600, 10800).</summary>
    public double[]? WebhookRetrySeconds { get; set; }

    /// <summary>
    /// The Key Vault key that wraps the webhook signing secrets' data keys: its versionless URI,
    /// <c>https://VAULT.vault.azure.net/keys/webhook-secrets</c>, reached with the managed identity. Required in Azure.
    /// </summary>
    [DeployedSetting]
    public string? SecretsKeyUri { get; set; }

    /// <summary>
    /// Where no <see cref="SecretsKeyUri"/> is set: the local key file that wraps them (created 0600 when absent).
    /// Default, where storage is a connection string (Azurite, development): <c>~/.config/leuko/webhook-secrets.key</c>.
    /// </summary>
    public string? SecretsKeyFile { get; set; }

    /// <summary>Webhook subscriptions one API client may have; one more is refused with 409.</summary>
    public int MaxSubscriptionsPerClient { get; set; } = 20;

    /// <summary>The public base URL of the HTTP API, for links in webhook payloads. Default: https://WEBSITE_HOSTNAME/api, else http://127.0.0.1:7071/api.</summary>
    [DeployedSetting]
    public string? PublicApiUrl { get; set; }

    /// <summary>
    /// The physical scale of every image, in µm per pixel, where all uploads come from one calibrated microscope. An
    /// upload's <c>micronsperpixel</c> metadata overrides it. Default: estimated per image from its red cells.
    /// </summary>
    public double? MicronsPerPixel { get; set; }

    /// <summary>The ONNX model (its card beside it). Default: the bundled model.</summary>
    public string? Model { get; set; }
}
