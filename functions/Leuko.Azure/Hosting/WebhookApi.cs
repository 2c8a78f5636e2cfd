using System.Text.Json;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Webhooks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The webhook subscription routes of <see cref="LeukoApi"/> (<c>/api/webhooks</c>, role <c>subscribe</c>). A client
/// sees and changes only the subscriptions it created (an admin: all); another client's is answered 404, as one that
/// does not exist. Requests it refuses get a problem-details body with the reason.
/// </summary>
public static class WebhookApi
{
    /// <summary>
    /// Largest subscription body read: a URL, a few event types and two filters fit in well under 1 KiB, so 64 KiB is
    /// generous, and a larger body is refused (413) before any of it is parsed.
    /// </summary>
    public const int MaxBodyBytes = 64 * 1024;

    /// <summary><c>POST /api/webhooks</c>: 201 with the subscription and its secret; 400 or 413 with the reason; 409 at the client's cap.</summary>
    public static async Task<Results<JsonHttpResult<WebhookCreated>, ProblemHttpResult>> CreateAsync(
        HttpRequest request, [FromServices] ApiAccess access, [FromServices] WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("CreateWebhook"), out var caller, out var refused))
        {
            return refused;
        }

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
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "empty body", "a JSON object with url (and optionally types, batchId, sourcePrefix) is required");
        }

        WebhookRequest? subscription;
        try
        {
            subscription = JsonSerializer.Deserialize<WebhookRequest>(buffer.AsSpan(0, length), PipelineJson.Options);
        }
        catch (JsonException e)
        {
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "malformed JSON", $"the body is not a subscription: {e.Message}");
        }

        if (subscription is null)
        {
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "empty body", "a JSON object with url (and optionally types, batchId, sourcePrefix) is required, not null");
        }

        try
        {
            return TypedResults.Json(await webhooks.CreateAsync(subscription, caller.Subscriber, cancellationToken), PipelineJson.Options, statusCode: StatusCodes.Status201Created);
        }
        catch (WebhookRequestException e)
        {
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "subscription refused", e.Message);
        }
        catch (WebhookLimitException e)
        {
            return ApiProblem.Of(StatusCodes.Status409Conflict, "too many subscriptions", e.Message);
        }
    }

    /// <summary><c>GET /api/webhooks</c>: the caller's subscriptions (an admin's: all), never their secrets.</summary>
    public static async Task<Results<JsonHttpResult<IReadOnlyList<WebhookView>>, ProblemHttpResult>> ListAsync(
        HttpRequest request, [FromServices] ApiAccess access, [FromServices] WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("ListWebhooks"), out var caller, out var refused))
        {
            return refused;
        }

        return TypedResults.Json(await webhooks.ListAsync(caller.Subscriber, cancellationToken), PipelineJson.Options);
    }

    /// <summary><c>DELETE /api/webhooks/{id}</c>: 204; 404 when the caller has no such subscription.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("DeleteWebhook"), out var caller, out var refused))
        {
            return refused;
        }

        return await webhooks.DeleteAsync(id, caller.Subscriber, cancellationToken) ? TypedResults.NoContent() : NotFound(id);
    }

    /// <summary><c>POST /api/webhooks/{id}/rotate-secret</c>: the new secret (the old one signs beside it for 24 h); 404 as for delete.</summary>
    public static async Task<Results<JsonHttpResult<WebhookCreated>, ProblemHttpResult>> RotateSecretAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("RotateWebhookSecret"), out var caller, out var refused))
        {
            return refused;
        }

        return await webhooks.RotateSecretAsync(id, caller.Subscriber, cancellationToken) is { } rotated ? TypedResults.Json(rotated, PipelineJson.Options) : NotFound(id);
    }

    /// <summary><c>GET /api/webhooks/{id}/deliveries</c>: the last 200 attempts, newest first; 404 as for delete.</summary>
    public static async Task<Results<JsonHttpResult<IReadOnlyList<WebhookAttempt>>, ProblemHttpResult>> DeliveriesAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] WebhookService webhooks, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("WebhookDeliveries"), out var caller, out var refused))
        {
            return refused;
        }

        return await webhooks.DeliveriesAsync(id, caller.Subscriber, 200, cancellationToken) is { } attempts
            ? TypedResults.Json(attempts, PipelineJson.Options)
            : NotFound(id);
    }

    private static ProblemHttpResult NotFound(string id) => ApiProblem.NotFound($"webhook '{id}'");

    private static ProblemHttpResult TooLarge() =>
        ApiProblem.Of(StatusCodes.Status413PayloadTooLarge, "body too large", $"a subscription body is at most {MaxBodyBytes / 1024} KiB");
}
