using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Leuko.Azure.Hosting;

/// <summary>
/// Every error body of the HTTP API: problem details (RFC 9457, <c>application/problem+json</c>) with <c>title</c>,
/// <c>status</c>, <c>detail</c>, and <c>error</c> repeating the detail (clients read their reason there).
/// </summary>
public static class ApiProblem
{
    public static ProblemHttpResult Of(int status, string title, string detail) =>
        TypedResults.Problem(detail, statusCode: status, title: title, extensions: new Dictionary<string, object?> { ["error"] = detail });

    public static ProblemHttpResult NotFound(string what) => Of(StatusCodes.Status404NotFound, "not found", $"no {what}");
}
