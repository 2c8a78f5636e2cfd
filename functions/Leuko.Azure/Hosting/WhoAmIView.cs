namespace Leuko.Azure.Hosting;

/// <summary>The calling client (<c>GET /api/whoami</c>): its name, its roles, and whether it may review.</summary>
public sealed record WhoAmIView(string Name, IReadOnlyList<string> Roles, bool CanReview);
