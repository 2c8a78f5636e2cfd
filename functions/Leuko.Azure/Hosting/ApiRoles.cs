namespace Leuko.Azure.Hosting;

/// <summary>
/// The roles a client of the HTTP API can hold (configuration <c>Leuko:ApiClients:NAME</c>, comma-separated).
/// <see cref="Admin"/> implies every other role and sees every client's subscriptions.
/// </summary>
public static class ApiRoles
{
    /// <summary>Read results: <c>GET /api/images/{id}</c>, <c>/annotated</c>, <c>GET /api/batches/{id}</c>, and the reviews (list, cells, crops, whoami).</summary>
    public const string Read = "read";

    /// <summary>Submit work through the API (no upload route exists yet: uploads go to blob storage).</summary>
    public const string Submit = "submit";

    /// <summary>Own webhook subscriptions: the <c>/api/webhooks</c> routes.</summary>
    public const string Subscribe = "subscribe";

    /// <summary>Review cells: reclassify a cell, sign an image or batch off (the <c>/api/images/{id}/cells/{index}/class</c> and <c>sign-off</c> routes).</summary>
    public const string Review = "review";

    /// <summary>Every role, and every client's subscriptions.</summary>
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [Read, Submit, Subscribe, Review, Admin];
}
