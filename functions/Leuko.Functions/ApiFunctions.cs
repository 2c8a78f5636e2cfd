using Leuko.Azure.Hosting;
using Leuko.Core.Classification;
using Leuko.Pipeline.Reviews;
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
    ApiAccess access, PipelineQueries queries, WebhookService webhooks, ReviewService reviews, IResultStore results, PipelineOptions options,
    LeukocyteClassifier classifier)
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

    [Function("ReviewPage")]
    public IResult ReviewPage([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = LeukoApi.ReviewPageRoute)] HttpRequest request, string? file) =>
        ReviewApi.Page(file, request.HttpContext.Response);

    [Function("WhoAmI")]
    public IResult WhoAmI([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.WhoAmIRoute)] HttpRequest request) =>
        ReviewApi.WhoAmI(request, access);

    [Function("ListReviews")]
    public async Task<IResult> ListReviews([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.ReviewsRoute)] HttpRequest request) =>
        await ReviewApi.ListAsync(request, access, reviews, request.HttpContext.RequestAborted);

    [Function("GetImageReview")]
    public async Task<IResult> GetImageReview([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.ImageReviewRoute)] HttpRequest request, string id) =>
        await ReviewApi.GetImageAsync(id, request, access, reviews, request.HttpContext.RequestAborted);

    [Function("GetBatchReview")]
    public async Task<IResult> GetBatchReview([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.BatchReviewRoute)] HttpRequest request, string id) =>
        await ReviewApi.GetBatchAsync(id, request, access, reviews, request.HttpContext.RequestAborted);

    [Function("GetCellCrop")]
    public async Task<IResult> GetCellCrop([HttpTrigger(AuthorizationLevel.Function, "get", Route = LeukoApi.CellCropRoute)] HttpRequest request, string id, string index) =>
        await ReviewApi.GetCropAsync(id, index, request, request.HttpContext.Response, access, reviews, request.HttpContext.RequestAborted);

    [Function("ReclassifyCell")]
    public async Task<IResult> ReclassifyCell([HttpTrigger(AuthorizationLevel.Function, "post", Route = LeukoApi.CellClassRoute)] HttpRequest request, string id, string index) =>
        await ReviewApi.ReclassifyAsync(id, index, request, access, reviews, request.HttpContext.RequestAborted);

    [Function("SignOffImage")]
    public async Task<IResult> SignOffImage([HttpTrigger(AuthorizationLevel.Function, "post", Route = LeukoApi.SignOffImageRoute)] HttpRequest request, string id) =>
        await ReviewApi.SignOffImageAsync(id, request, access, reviews, request.HttpContext.RequestAborted);

    [Function("SignOffBatch")]
    public async Task<IResult> SignOffBatch([HttpTrigger(AuthorizationLevel.Function, "post", Route = LeukoApi.SignOffBatchRoute)] HttpRequest request, string id) =>
        await ReviewApi.SignOffBatchAsync(id, request, access, reviews, request.HttpContext.RequestAborted);
}
