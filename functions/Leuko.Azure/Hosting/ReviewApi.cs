using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Stages;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The review routes of <see cref="LeukoApi"/>: the review page (static, anonymous: it asks for a key), who is calling,
/// the list, an image's or batch's cells, a cell's crop (role <c>read</c>), reclassifying a cell and signing off
/// (role <c>review</c>; the reviewer is the calling client). Refusals are problem-details bodies with the reason.
/// </summary>
public static class ReviewApi
{
    /// <summary>A reclassification is one class name: 4 KiB is plenty, and more is refused before it is parsed.</summary>
    public const int MaxBodyBytes = 4 * 1024;

    /// <summary>The page's files, embedded in this assembly (<c>Review/</c>), by the name the page asks for.</summary>
    private static readonly IReadOnlyDictionary<string, (string Resource, string ContentType)> PageFiles = new Dictionary<string, (string, string)>
    {
        ["index.html"] = ("Leuko.Azure.Review.index.html", "text/html; charset=utf-8"),
        ["review.js"] = ("Leuko.Azure.Review.review.js", "text/javascript; charset=utf-8"),
        ["review.css"] = ("Leuko.Azure.Review.review.css", "text/css; charset=utf-8"),
    };

    /// <summary>
    /// <c>GET /api/review</c> (the page) and <c>/api/review/{file}</c> (its script and styles): no key, no data, nothing
    /// from another origin (its Content-Security-Policy allows this origin alone).
    /// </summary>
    public static Results<FileContentHttpResult, ProblemHttpResult> Page(string? file, HttpResponse response)
    {
        if (!PageFiles.TryGetValue(string.IsNullOrEmpty(file) ? "index.html" : file, out var found))
        {
            return ApiProblem.NotFound($"file '{file}' of the review page");
        }

        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(found.Resource)!;
        using var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
        response.Headers.CacheControl = "no-cache";
        return TypedResults.File(bytes.ToArray(), found.ContentType);
    }

    /// <summary><c>GET /api/whoami</c>: the calling client's name and roles (the page shows who is signed in).</summary>
    public static Results<JsonHttpResult<WhoAmIView>, ProblemHttpResult> WhoAmI(HttpRequest request, [FromServices] ApiAccess access)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("WhoAmI"), out var caller, out var refused))
        {
            return refused;
        }

        return TypedResults.Json(new WhoAmIView(caller.Name, caller.Roles.Order(StringComparer.Ordinal).ToList(), caller.Has(ApiRoles.Review)), PipelineJson.Options);
    }

    /// <summary><c>GET /api/reviews</c>: every image and batch, with the cells that need review, those reclassified, and the sign-off.</summary>
    public static async Task<Results<JsonHttpResult<ReviewList>, ProblemHttpResult>> ListAsync(
        HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("ListReviews"), out _, out var refused))
        {
            return refused;
        }

        return TypedResults.Json(await reviews.ListAsync(cancellationToken), PipelineJson.Options);
    }

    /// <summary><c>GET /api/images/{id}/review</c>: the image's cells (automatic and reviewed class, confidence, crop URL) and both differentials.</summary>
    public static async Task<Results<JsonHttpResult<ReviewSheet>, ProblemHttpResult>> GetImageAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("GetImageReview"), out _, out var refused))
        {
            return refused;
        }

        return Answer(await reviews.GetImageSheetAsync(id, cancellationToken));
    }

    /// <summary><c>GET /api/batches/{id}/review</c>: every cell of the batch's images and the batch's differentials.</summary>
    public static async Task<Results<JsonHttpResult<ReviewSheet>, ProblemHttpResult>> GetBatchAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("GetBatchReview"), out _, out var refused))
        {
            return refused;
        }

        return Answer(await reviews.GetBatchSheetAsync(id, cancellationToken));
    }

    /// <summary><c>GET /api/images/{id}/cells/{index}/crop</c>: the cell's crop as segmentation cut it (PNG).</summary>
    public static async Task<Results<FileContentHttpResult, ProblemHttpResult>> GetCropAsync(
        string id, string index, HttpRequest request, HttpResponse response, [FromServices] ApiAccess access, [FromServices] ReviewService reviews,
        CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("GetCellCrop"), out _, out var refused))
        {
            return refused;
        }

        if (!TryIndex(index, out int n) || await reviews.GetCropAsync(id, n, cancellationToken) is not { } crop)
        {
            return ApiProblem.NotFound($"cell '{index}' in image '{id}'");
        }

        // A crop of an upload version never changes (a new version has new crops): the browser may keep it for the page's life.
        response.Headers.CacheControl = "private, max-age=3600";
        return TypedResults.File(crop.Content.ToArray(), crop.Name.EndsWith(".bmp", StringComparison.Ordinal) ? "image/bmp" : "image/png");
    }

    /// <summary>
    /// <c>POST /api/images/{id}/cells/{index}/class</c> with <c>{"class": "LYMPHOCYTE"}</c>: the cell's reviewed class, by
    /// the calling client; 200 with the cell and the image's (and batch's) differentials, 400 for an unknown class,
    /// 404 for an unknown image or cell, 409 once the image is signed off.
    /// </summary>
    public static async Task<Results<JsonHttpResult<ReclassifyView>, ProblemHttpResult>> ReclassifyAsync(
        string id, string index, HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("ReclassifyCell"), out var caller, out var refused))
        {
            return refused;
        }

        if (!TryIndex(index, out int n))
        {
            return ApiProblem.NotFound($"cell '{index}' in image '{id}'");
        }

        if (request.ContentLength > MaxBodyBytes)
        {
            return ApiProblem.Of(StatusCodes.Status413PayloadTooLarge, "body too large", $"a reclassification is at most {MaxBodyBytes} bytes");
        }

        var buffer = new byte[MaxBodyBytes + 1];
        int length = await request.Body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        ReclassifyRequest? body;
        try
        {
            body = length > MaxBodyBytes ? null : JsonSerializer.Deserialize<ReclassifyRequest>(buffer.AsSpan(0, length), PipelineJson.Options);
        }
        catch (JsonException e)
        {
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "malformed JSON", $"the body is not {{\"class\": \"CLASS\"}}: {e.Message}");
        }

        if (body?.Class is null)
        {
            return ApiProblem.Of(StatusCodes.Status400BadRequest, "class required", "the body must be {\"class\": \"CLASS\"}, the class to give the cell");
        }

        return Answer(await reviews.ReclassifyAsync(id, n, body.Class, caller.Name, cancellationToken));
    }

    /// <summary><c>POST /api/images/{id}/sign-off</c>: signs the image off as the calling client; 409 when it is already, or not analysed.</summary>
    public static async Task<Results<JsonHttpResult<ReviewTotals>, ProblemHttpResult>> SignOffImageAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("SignOffImage"), out var caller, out var refused))
        {
            return refused;
        }

        return Answer(await reviews.SignOffImageAsync(id, caller.Name, cancellationToken));
    }

    /// <summary><c>POST /api/batches/{id}/sign-off</c>: signs the batch and its images off as the calling client; 409 when it is already, or not completed.</summary>
    public static async Task<Results<JsonHttpResult<ReviewTotals>, ProblemHttpResult>> SignOffBatchAsync(
        string id, HttpRequest request, [FromServices] ApiAccess access, [FromServices] ReviewService reviews, CancellationToken cancellationToken)
    {
        if (!access.TryAuthorize(request, LeukoApi.RoleOf("SignOffBatch"), out var caller, out var refused))
        {
            return refused;
        }

        return Answer(await reviews.SignOffBatchAsync(id, caller.Name, cancellationToken));
    }

    private static Results<JsonHttpResult<T>, ProblemHttpResult> Answer<T>(ReviewOutcome<T> outcome)
        where T : class =>
        outcome.Problem is { } problem
            ? ApiProblem.Of(problem.Status, problem.Title, problem.Detail)
            : TypedResults.Json(outcome.Value!, PipelineJson.Options);

    private static bool TryIndex(string index, out int n) => int.TryParse(index, NumberStyles.None, CultureInfo.InvariantCulture, out n);
}
