using Leuko.Core.Classification;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The HTTP API, defined once (eShop's CatalogApi): the routes, each route's handler, its answers and the role it
/// needs. <c>leuko serve</c> maps it with <see cref="MapLeukoApi"/>; the function app's HTTP functions bind the same
/// routes (their attributes use these constants; a test reads the worker's generated metadata against
/// <see cref="Routes"/>) and call the same handlers. Every handler asks <see cref="ApiAccess"/> first, so both hosts
/// authorise alike; every error is a problem-details body (<see cref="ApiProblem"/>).
/// </summary>
public static class LeukoApi
{
    public const string Prefix = "/api";

    public const string HealthRoute = "health";
    public const string ImageRoute = "images/{id}";
    public const string AnnotatedImageRoute = "images/{id}/annotated";
    public const string BatchRoute = "batches/{id}";
    public const string WebhooksRoute = "webhooks";
    public const string WebhookRoute = "webhooks/{id}";
    public const string RotateWebhookSecretRoute = "webhooks/{id}/rotate-secret";
    public const string WebhookDeliveriesRoute = "webhooks/{id}/deliveries";
    public const string ReviewPageRoute = "review/{file?}";
    public const string WhoAmIRoute = "whoami";
    public const string ReviewsRoute = "reviews";
    public const string ImageReviewRoute = "images/{id}/review";
    public const string BatchReviewRoute = "batches/{id}/review";
    public const string CellCropRoute = "images/{id}/cells/{index}/crop";
    public const string CellClassRoute = "images/{id}/cells/{index}/class";
    public const string SignOffImageRoute = "images/{id}/sign-off";
    public const string SignOffBatchRoute = "batches/{id}/sign-off";

    /// <summary>Where an image's result is read: <c>/api/images/ID</c> (<c>leuko upload</c> prints it).</summary>
    public static string ImagePath(string id) => $"{Prefix}/images/{id}";

    /// <summary>The review page: <c>/api/review</c>.</summary>
    public static string ReviewPagePath => $"{Prefix}/review";

    /// <summary>Where a batch's progress is read: <c>/api/batches/ID</c>.</summary>
    public static string BatchPath(string id) => $"{Prefix}/batches/{id}";

    /// <summary>Every route, with the role each needs (<see cref="ApiRoles"/>; admin holds them all).</summary>
    public static IReadOnlyList<ApiRoute> Routes { get; } =
    [
        new("Health", HttpMethods.Get, HealthRoute, null),
        new("GetImage", HttpMethods.Get, ImageRoute, ApiRoles.Read),
        new("GetAnnotatedImage", HttpMethods.Get, AnnotatedImageRoute, ApiRoles.Read),
        new("GetBatch", HttpMethods.Get, BatchRoute, ApiRoles.Read),
        new("CreateWebhook", HttpMethods.Post, WebhooksRoute, ApiRoles.Subscribe),
        new("ListWebhooks", HttpMethods.Get, WebhooksRoute, ApiRoles.Subscribe),
        new("DeleteWebhook", HttpMethods.Delete, WebhookRoute, ApiRoles.Subscribe),
        new("RotateWebhookSecret", HttpMethods.Post, RotateWebhookSecretRoute, ApiRoles.Subscribe),
        new("WebhookDeliveries", HttpMethods.Get, WebhookDeliveriesRoute, ApiRoles.Subscribe),
        new("ReviewPage", HttpMethods.Get, ReviewPageRoute, null),
        new("WhoAmI", HttpMethods.Get, WhoAmIRoute, ApiRoles.Read),
        new("ListReviews", HttpMethods.Get, ReviewsRoute, ApiRoles.Read),
        new("GetImageReview", HttpMethods.Get, ImageReviewRoute, ApiRoles.Read),
        new("GetBatchReview", HttpMethods.Get, BatchReviewRoute, ApiRoles.Read),
        new("GetCellCrop", HttpMethods.Get, CellCropRoute, ApiRoles.Read),
        new("ReclassifyCell", HttpMethods.Post, CellClassRoute, ApiRoles.Review),
        new("SignOffImage", HttpMethods.Post, SignOffImageRoute, ApiRoles.Review),
        new("SignOffBatch", HttpMethods.Post, SignOffBatchRoute, ApiRoles.Review),
    ];

    public static IEndpointRouteBuilder MapLeukoApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup(Prefix);
        api.MapGet(HealthRoute, HealthAsync).WithName("Health");
        api.MapGet(ImageRoute, GetImageAsync).WithName("GetImage");
        api.MapGet(AnnotatedImageRoute, GetAnnotatedImageAsync).WithName("GetAnnotatedImage");
        api.MapGet(BatchRoute, GetBatchAsync).WithName("GetBatch");
        api.MapPost(WebhooksRoute, WebhookApi.CreateAsync).WithName("CreateWebhook");
        api.MapGet(WebhooksRoute, WebhookApi.ListAsync).WithName("ListWebhooks");
        api.MapDelete(WebhookRoute, WebhookApi.DeleteAsync).WithName("DeleteWebhook");
        api.MapPost(RotateWebhookSecretRoute, WebhookApi.RotateSecretAsync).WithName("RotateWebhookSecret");
        api.MapGet(WebhookDeliveriesRoute, WebhookApi.DeliveriesAsync).WithName("WebhookDeliveries");
        api.MapGet(ReviewPageRoute, ReviewApi.Page).WithName("ReviewPage");
        api.MapGet(WhoAmIRoute, ReviewApi.WhoAmI).WithName("WhoAmI");
        api.MapGet(ReviewsRoute, ReviewApi.ListAsync).WithName("ListReviews");
        api.MapGet(ImageReviewRoute, ReviewApi.GetImageAsync).WithName("GetImageReview");
        api.MapGet(BatchReviewRoute, ReviewApi.GetBatchAsync).WithName("GetBatchReview");
        api.MapGet(CellCropRoute, ReviewApi.GetCropAsync).WithName("GetCellCrop");
        api.MapPost(CellClassRoute, ReviewApi.ReclassifyAsync).WithName("ReclassifyCell");
        api.MapPost(SignOffImageRoute, ReviewApi.SignOffImageAsync).WithName("SignOffImage");
        api.MapPost(SignOffBatchRoute, ReviewApi.SignOffBatchAsync).WithName("SignOffBatch");
        return app;
    }

    /// <summary>The route's role, from <see cref="Routes"/>: the handlers authorise by it, so the table is what they enforce.</summary>
    internal static string? RoleOf(string name) => Routes.Single(r => r.Name == name).Role;

    /// <summary>The health of the host: <c>GET /api/health</c>, anonymous (probes), the table service reached, the model loaded.</summary>
    public static async Task<JsonHttpResult<HealthView>> HealthAsync(
        [FromServices] IResultStore results, [FromServices] PipelineOptions options, [FromServices] LeukocyteClassifier classifier, CancellationToken cancellationToken)
    {
        await results.GetImageAsync("health-check", cancellationToken); // reaches the table service
        return TypedResults.Json(new HealthView("ok", $"{classifier.Card.Name} {classifier.Card.Version}", options.Transport), PipelineJson.Options);
    }

    /// <summary><c>GET /api/images/{id}</c>: the image's status, scale, cells and differential; 404 when there is no such image.</summary>
    public static async Task<Results<JsonHttpResult<ImageView>, ProblemHttpResult>> GetImageAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] PipelineQueries queries, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, RoleOf("GetImage"), out _, out var refused))
        {
            return refused;
        }

        return await queries.GetImageAsync(id, cancellationToken) is { } image
            ? TypedResults.Json(image, PipelineJson.Options)
            : ApiProblem.NotFound($"image '{id}'");
    }

    /// <summary><c>GET /api/images/{id}/annotated</c>: the image with its cells drawn (PNG); 404 until it is analysed.</summary>
    public static async Task<Results<FileContentHttpResult, ProblemHttpResult>> GetAnnotatedImageAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] PipelineQueries queries, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, RoleOf("GetAnnotatedImage"), out _, out var refused))
        {
            return refused;
        }

        return await queries.GetAnnotatedPngAsync(id, cancellationToken) is { } png
            ? TypedResults.File(png, "image/png")
            : ApiProblem.NotFound($"analysed image '{id}'");
    }

    /// <summary><c>GET /api/batches/{id}</c>: an archive's progress and differential; 404 when there is no such batch.</summary>
    public static async Task<Results<JsonHttpResult<BatchView>, ProblemHttpResult>> GetBatchAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] PipelineQueries queries, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, RoleOf("GetBatch"), out _, out var refused))
        {
            return refused;
        }

        return await queries.GetBatchAsync(id, cancellationToken) is { } batch
            ? TypedResults.Json(batch, PipelineJson.Options)
            : ApiProblem.NotFound($"batch '{id}'");
    }
}
