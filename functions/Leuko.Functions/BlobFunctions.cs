using Azure.Storage.Blobs;
using Leuko.Azure.Hosting;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Leuko.Functions;

/// <summary>
/// The function app's triggers. Each binds, calls a stage of Leuko.Pipeline, and returns; the stages are tested
/// directly (and through <c>leuko serve</c>, which hosts the same stages and routes). Classification is not a
/// function: the Service Bus extension is not available to this build, so ClassificationWorker, a hosted service,
/// consumes the queue with the Azure SDK. Blob triggers bind a BlobClient (nothing is downloaded by the binding):
/// the stage reads the blob itself, with its metadata and version.
/// </summary>
public sealed class PipelineFunctions(
    SegmentationStage segmentation, ArchiveStage archives, PipelineQueries queries, IResultStore results, WebhookService webhooks)
{
    /// <summary>An image uploaded to <c>uploads/</c>: segment it and queue its cells. In Azure the event comes from Event Grid (infra/).</summary>
    [Function("ImageUploaded")]
    public Task ImageUploaded(
        [BlobTrigger($"{Containers.Uploads}/{{name}}", Source = BlobTriggerSource.EventGrid, Connection = "AzureWebJobsStorage")] BlobClient blob,
        string name, FunctionContext context) =>
        segmentation.ProcessAsync(name, context.TraceContext.TraceParent, context.CancellationToken);

    /// <summary>A zip archive uploaded to <c>archives/</c>: expand its images into <c>uploads/BATCH/</c> under the archive safety rules.</summary>
    [Function("ArchiveUploaded")]
    public Task ArchiveUploaded(
        [BlobTrigger($"{Containers.Archives}/{{name}}", Source = BlobTriggerSource.EventGrid, Connection = "AzureWebJobsStorage")] BlobClient blob,
        string name, FunctionContext context) =>
        archives.ExpandAsync(name, context.CancellationToken);

    [Function("GetImage")]
    public async Task<IActionResult> GetImage([HttpTrigger(AuthorizationLevel.Function, "get", Route = "images/{id}")] HttpRequest request, string id) =>
        await queries.GetImageAsync(id, request.HttpContext.RequestAborted) is { } image
            ? new JsonResult(image, PipelineJson.Options)
            : new NotFoundObjectResult(new { error = $"no image '{id}'" });

    [Function("GetAnnotatedImage")]
    public async Task<IActionResult> GetAnnotatedImage([HttpTrigger(AuthorizationLevel.Function, "get", Route = "images/{id}/annotated")] HttpRequest request, string id) =>
        await queries.GetAnnotatedPngAsync(id, request.HttpContext.RequestAborted) is { } png
            ? new FileContentResult(png, "image/png")
            : new NotFoundObjectResult(new { error = $"no analysed image '{id}'" });

    [Function("GetBatch")]
    public async Task<IActionResult> GetBatch([HttpTrigger(AuthorizationLevel.Function, "get", Route = "batches/{id}")] HttpRequest request, string id) =>
        await queries.GetBatchAsync(id, request.HttpContext.RequestAborted) is { } batch
            ? new JsonResult(batch, PipelineJson.Options)
            : new NotFoundObjectResult(new { error = $"no batch '{id}'" });

    [Function("Health")]
    public async Task<IActionResult> Health([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "health")] HttpRequest request)
    {
        await results.GetImageAsync("health-check", request.HttpContext.RequestAborted);
        return new JsonResult(new { status = "ok" });
    }

    // The webhook API's handlers are WebhookApi's, which leuko serve maps too: one definition for both hosts.
    [Function("CreateWebhook")]
    public Task<IResult> CreateWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks")] HttpRequest request) =>
        WebhookApi.CreateAsync(request, webhooks, request.HttpContext.RequestAborted);

    [Function("ListWebhooks")]
    public Task<IResult> ListWebhooks([HttpTrigger(AuthorizationLevel.Function, "get", Route = "webhooks")] HttpRequest request) =>
        WebhookApi.ListAsync(webhooks, request.HttpContext.RequestAborted);

    [Function("DeleteWebhook")]
    public Task<IResult> DeleteWebhook([HttpTrigger(AuthorizationLevel.Function, "delete", Route = "webhooks/{id}")] HttpRequest request, string id) =>
        WebhookApi.DeleteAsync(id, webhooks, request.HttpContext.RequestAborted);

    [Function("RotateWebhookSecret")]
    public Task<IResult> RotateWebhookSecret([HttpTrigger(AuthorizationLevel.Function, "post", Route = "webhooks/{id}/rotate-secret")] HttpRequest request, string id) =>
        WebhookApi.RotateSecretAsync(id, webhooks, request.HttpContext.RequestAborted);

    [Function("WebhookDeliveries")]
    public Task<IResult> WebhookDeliveries([HttpTrigger(AuthorizationLevel.Function, "get", Route = "webhooks/{id}/deliveries")] HttpRequest request, string id) =>
        WebhookApi.DeliveriesAsync(id, webhooks, request.HttpContext.RequestAborted);
}
