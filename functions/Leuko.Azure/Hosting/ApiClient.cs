using Leuko.Pipeline.Webhooks;

namespace Leuko.Azure.Hosting;

/// <summary>A caller of the HTTP API, identified by its named key, with the roles configured for that name.</summary>
public sealed record ApiClient(string Name, IReadOnlySet<string> Roles)
{
    public bool IsAdmin => Roles.Contains(ApiRoles.Admin);

    /// <summary>Whether the client may do what <paramref name="role"/> allows (an admin may do everything).</summary>
    public bool Has(string role) => IsAdmin || Roles.Contains(role);

    /// <summary>The client as the owner of webhook subscriptions.</summary>
    public WebhookCaller Subscriber => new(Name, IsAdmin);
}
