namespace Leuko.Azure.Hosting;

/// <summary>
/// The roles a client of the HTTP API can hold (configuration <c>Leuko:ApiClients:NAME</c>, comma-separated).
/// <see cref="Admin"/> implies every other role and sees every client's subscriptions.
/// </summary>
public static class ApiRoles
{
    /// <summary>Read results: <c>GET /api/images/{id}</c>, <c>/annotated</c>, <c>GET /api/batches/{id}</c>.</summary>
    public const string Read = "read";

    /// <summary>Submit work through the API (no upload route exists yet: uploads go to blob storage).</summary>
    public const string Submit = "submit";

    /// <summary>Own webhook subscriptions: the <c>/api/webhooks</c> routes.</summary>
    public const string Subscribe = "subscribe";

    /// <summary>Review cells (no review route exists yet).</summary>
    public const string Review = "review";

    /// <summary>Every role, and every client's subscriptions.</summary>
    public const string Admin = "admin";

    public static readonly IReadOnlyList<string> All = [Read, Submit, Subscribe, Review, Admin];
}
