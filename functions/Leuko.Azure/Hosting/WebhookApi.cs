using System.Text.Json;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The webhook subscription API (<c>/api/webhooks</c>), defined once: <c>leuko serve</c> maps it with
/// <see cref="MapWebhookApi"/> and the function app's HTTP functions call the same handlers, so the two cannot drift.
/// Requests it refuses get a problem-details body (RFC 9457, <c>application/problem+json</c>) with the reason.
/// </summary>
public static class WebhookApi
{
    /// <summary>
    /// Largest subscription body read: a URL, a few event types and two filters fit in well under 1 KiB, so 64 KiB is
    /// generous, and a larger body is refused (413) before any of it is parsed.
    /// </summary>
    public const int MaxBodyBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapWebhookApi(this IEndpointRouteBuilder app)
    {
        var webhooks = app.MapGroup("/api/webhooks");
        webhooks.MapPost("", CreateAsync);
        webhooks.MapGet("", ListAsync);
        webhooks.MapDelete("/{id}", DeleteAsync);
        webhooks.MapPost("/{id}/rotate-secret", RotateSecretAsync);
        webhooks.MapGet("/{id}/deliveries", DeliveriesAsync);
        return app;
    }

    /// <summary><c>POST /api/webhooks</c>: 201 with the subscription and its secret; 400 or 413 with the reason.</summary>
    public static async Task<IResult> CreateAsync(HttpRequest request, WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes)
        {
            return TooLarge();
        }

        // A body without a declared length (chunked) is read up to the limit and no further.
        var buffer = new byte[MaxBodyBytes + 1];
        int length = await request.Body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        if (length > MaxBodyBytes)
        {
            return TooLarge();
        }

        if (buffer.AsSpan(0, length).Trim(" \t\r\n"u8).IsEmpty)
        {
            return Problem(StatusCodes.Status400BadRequest, "empty body", "a JSON object with url (and optionally types, batchId, sourcePrefix) is required");
        }

        WebhookRequest? subscription;
        try
        {
            subscription = JsonSerializer.Deserialize<WebhookRequest>(buffer.AsSpan(0, length), PipelineJson.Options);
        }
        catch (JsonException e)
        {
            return Problem(StatusCodes.Status400BadRequest, "malformed JSON", $"the body is not a subscription: {e.Message}");
        }

        if (subscription is null)
        {
            return Problem(StatusCodes.Status400BadRequest, "empty body", "a JSON object with url (and optionally types, batchId, sourcePrefix) is required, not null");
        }

        try
        {
            return Results.Json(await webhooks.CreateAsync(subscription, cancellationToken), PipelineJson.Options, statusCode: StatusCodes.Status201Created);
        }
        catch (WebhookRequestException e)
        {
            return Problem(StatusCodes.Status400BadRequest, "subscription refused", e.Message);
        }
    }

    public static async Task<IResult> ListAsync(WebhookService webhooks, CancellationToken cancellationToken) =>
        Results.Json(await webhooks.ListAsync(cancellationToken), PipelineJson.Options);

    public static async Task<IResult> DeleteAsync(string id, WebhookService webhooks, CancellationToken cancellationToken) =>
        await webhooks.DeleteAsync(id, cancellationToken) ? Results.NoContent() : NotFound(id);

    public static async Task<IResult> RotateSecretAsync(string id, WebhookService webhooks, CancellationToken cancellationToken) =>
        await webhooks.RotateSecretAsync(id, cancellationToken) is { } rotated ? Results.Json(rotated, PipelineJson.Options) : NotFound(id);

    public static async Task<IResult> DeliveriesAsync(string id, WebhookService webhooks, CancellationToken cancellationToken) =>
        await webhooks.DeliveriesAsync(id, 200, cancellationToken) is { } attempts ? Results.Json(attempts, PipelineJson.Options) : NotFound(id);

    private static IResult NotFound(string id) => Results.NotFound(new { error = $"no webhook '{id}'" });

    private static IResult TooLarge() =>
        Problem(StatusCodes.Status413PayloadTooLarge, "body too large", $"a subscription body is at most {MaxBodyBytes / 1024} KiB");

    // "error" repeats the detail: the API's other answers carry their reason there, and clients read it.
    private static IResult Problem(int status, string title, string detail) =>
        Results.Problem(detail, statusCode: status, title: title, extensions: new Dictionary<string, object?> { ["error"] = detail });
}
