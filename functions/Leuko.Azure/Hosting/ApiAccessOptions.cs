namespace Leuko.Azure.Hosting;

/// <summary>
/// Who may call the HTTP API (section <c>Leuko</c>): the named clients and their roles, and the file holding their
/// keys. In Azure the file is the Functions host's own secrets file (<c>/azure-functions-host/Secrets/host.json</c>),
/// so the host and the app accept the same keys; see the README's "Access".
/// </summary>
public sealed class ApiAccessOptions
{
    public const string Section = "Leuko";

    /// <summary>
    /// Client name to its comma-separated roles (<see cref="ApiRoles"/>), e.g. <c>Leuko__ApiClients__lims=read,subscribe</c>.
    /// A key in <see cref="ApiKeysFile"/> whose name is not here is no client's: it is refused (403).
    /// </summary>
    public Dictionary<string, string> ApiClients { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// A JSON file in the Functions host secrets shape, <c>{"functionKeys": [{"name": "lims", "value": "..."}]}</c>:
    /// each named key is that client's credential. Its master and system keys are never accepted. Read again when it changes.
    /// </summary>
    public string? ApiKeysFile { get; set; }
}
