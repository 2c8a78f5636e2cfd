using Leuko.Azure.Hosting;
using Leuko.Core.Classification;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;

namespace Leuko.Functions;

/// <summary>
/// The HTTP API as functions: each binds its route (<see cref="LeukoApi"/>'s, which <c>leuko serve</c> maps) and calls
/// <see cref="LeukoApi"/>'s handler, which authorises the caller's named key and answers. The host checks a key
/// first (<see cref="AuthorizationLevel.Function"/>: any of its keys); the handler then refuses a key that is no
/// named client's, the master key among them, and a client without the route's role.
/// </summary>
public sealed class ApiFunctions(
    ApiAccess access, PipelineQueries queries, WebhookService webhooks, IResultStore results, PipelineOptions options, LeukocyteClassifier classifier)
{
    [Function("Health")]
    public async Task<IResult> Health([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = LeukoApi.HealthRoute)] HttpRequest request) =>
        await LeukoApi.HealthAsync(results, options, classifier, request.HttpContext.RequestAborted);

    [Function("GetImage")]
    public async Task<IResult> GetImage([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.ImageRoute)] HttpRequest request, string id) =>
        await LeukoApi.GetImageAsync(id, request, access, queries, request.HttpContext.RequestAborted);

    [Function("GetAnnotatedImage")]
    public async Task<IResult> GetAnnotatedImage([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.AnnotatedImageRoute)] HttpRequest request, string id) =>
        await LeukoApi.GetAnnotatedImageAsync(id, request, access, queries, request.HttpContext.RequestAborted);

    [Function("GetBatch")]
    public async Task<IResult> GetBatch([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.BatchRoute)] HttpRequest request, string id) =>
        await LeukoApi.GetBatchAsync(id, request, access, queries, request.HttpContext.RequestAborted);

    [Function("CreateWebhook")]
    public async Task<IResult> CreateWebhook([HttpTrigger(AuthorizationLevel.Function, "post", Route = LeukoApi.WebhooksRoute)] HttpRequest request) =>
        await WebhookApi.CreateAsync(request, access, webhooks, request.HttpContext.RequestAborted);

    [Function("ListWebhooks")]
    public async Task<IResult> ListWebhooks([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.WebhooksRoute)] HttpRequest request) =>
        await WebhookApi.ListAsync(request, access, webhooks, request.HttpContext.RequestAborted);

    [Function("DeleteWebhook")]
    public async Task<IResult> DeleteWebhook([HttpTrigger(AuthorizationLevel.Function, "delete", Route = LeukoApi.WebhookRoute)] HttpRequest request, string id) =>
        await WebhookApi.DeleteAsync(id, request, access, webhooks, request.HttpContext.RequestAborted);

    [Function("RotateWebhookSecret")]
    public async Task<IResult> RotateWebhookSecret([HttpTrigger(AuthorizationLevel.Function, "post", Route = LeukoApi.RotateWebhookSecretRoute)] HttpRequest request, string id) =>
        await WebhookApi.RotateSecretAsync(id, request, access, webhooks, request.HttpContext.RequestAborted);

    [Function("WebhookDeliveries")]
    public async Task<IResult> WebhookDeliveries([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.WebhookDeliveriesRoute)] HttpRequest request, string id) =>
        await WebhookApi.DeliveriesAsync(id, request, access, webhooks, request.HttpContext.RequestAborted);
}
