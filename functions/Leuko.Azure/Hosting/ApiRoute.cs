namespace Leuko.Azure.Hosting;

/// <summary>One route of the HTTP API: its function name, method, route under <c>/api</c>, and the role it needs (null: none, anonymous).</summary>
public sealed record ApiRoute(string Name, string Method, string Route, string? Role);
