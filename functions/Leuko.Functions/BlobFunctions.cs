using Azure.Storage.Blobs;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Microsoft.Azure.Functions.Worker;

namespace Leuko.Functions;

/// <summary>
/// The function app's blob triggers. Each binds, calls a stage of Leuko.Pipeline, and returns; the stages are tested
/// directly (and through <c>leuko serve</c>, which hosts the same stages). Classification is not a function: the
/// Service Bus extension is not available to this build, so ClassificationWorker, a hosted service, consumes the
/// queue with the Azure SDK. Blob triggers bind a BlobClient (nothing is downloaded by the binding): the stage reads
/// the blob itself, with its metadata and version. In Azure their events come from Event Grid (infra/hooks/postdeploy.sh).
/// </summary>
public sealed class BlobFunctions(SegmentationStage segmentation, ArchiveStage archives)
{
    /// <summary>The storage connection: the host reads <c>AzureWebJobsStorage__accountName</c>, <c>__credential</c> and <c>__clientId</c> (infra/).</summary>
    public const string Connection = "AzureWebJobsStorage";

    /// <summary>An image uploaded to <c>uploads/</c>: segment it and queue its cells.</summary>
    [Function("ImageUploaded")]
    public Task ImageUploaded(
        [BlobTrigger($"{Containers.Uploads}/{{name}}", Source = BlobTriggerSource.EventGrid, Connection = Connection)] BlobClient blob,
        string name, FunctionContext context) =>
        segmentation.ProcessAsync(name, context.TraceContext.TraceParent, context.CancellationToken);

    /// <summary>A zip archive uploaded to <c>archives/</c>: expand its images into <c>uploads/BATCH/</c> under the archive safety rules.</summary>
    [Function("ArchiveUploaded")]
    public Task ArchiveUploaded(
        [BlobTrigger($"{Containers.Archives}/{{name}}", Source = BlobTriggerSource.EventGrid, Connection = Connection)] BlobClient blob,
        string name, FunctionContext context) =>
        archives.ExpandAsync(name, context.CancellationToken);
}
