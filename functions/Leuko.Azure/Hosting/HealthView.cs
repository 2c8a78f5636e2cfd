namespace Leuko.Azure.Hosting;

/// <summary>The answer of <c>GET /api/health</c>.</summary>
public sealed record HealthView(string Status, string Model, string Transport);
