using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Leuko.Azure.Hosting;

/// <summary>
/// Who is calling: the request's key (header <c>x-functions-key</c> or query <c>code</c>, as the Functions host takes
/// it) matched against the named client keys, and whether that client holds the role a route needs. No key: 401; a
/// key that is no named client's (the host's master key, a system key, anything else): 403; a client without the
/// role: 403. Every route's handler asks here first, in both hosts.
/// </summary>
public sealed class ApiAccess
{
    public const string KeyHeader = "x-functions-key";
    public const string KeyQuery = "code";

    /// <summary>The client of <c>leuko serve --api-key</c>, and of every request while serve is open on loopback.</summary>
    public const string LocalAdmin = "admin";

    private readonly IReadOnlyDictionary<string, ApiClient> _clients;
    private readonly string? _file;
    private readonly IReadOnlyList<ApiKey> _given;
    private readonly Lock _reload = new();
    private volatile KeyTable _keys;

    private ApiAccess(IReadOnlyDictionary<string, ApiClient> clients, string? file, IReadOnlyList<ApiKey> given, bool open)
    {
        _clients = clients;
        _file = file;
        _given = given;
        IsOpen = open;
        _keys = Load(FileStamp.Of(file));
    }

    /// <summary>Every request is <see cref="LocalAdmin"/>'s: <c>leuko serve</c> on loopback without a key, for development only.</summary>
    public static ApiAccess Open() => new(new Dictionary<string, ApiClient>(), null, [], open: true);

    /// <summary>The clients of <paramref name="options"/>, and <paramref name="adminKey"/> (leuko serve's <c>--api-key</c>) as an admin.</summary>
    /// <exception cref="InvalidDataException">The configuration is unusable; <see cref="Check"/> says why.</exception>
    public static ApiAccess From(ApiAccessOptions options, string? adminKey = null)
    {
        if (Check(options, adminKey) is { Count: > 0 } errors)
        {
            throw new InvalidDataException(string.Join("; ", errors));
        }

        var clients = Clients(options).ToDictionary(c => c.Name, StringComparer.OrdinalIgnoreCase);
        if (adminKey is not null)
        {
            clients[LocalAdmin] = new ApiClient(LocalAdmin, new HashSet<string> { ApiRoles.Admin });
        }

        var file = string.IsNullOrWhiteSpace(options.ApiKeysFile) ? null : options.ApiKeysFile;
        return new ApiAccess(clients, file, adminKey is null ? [] : [new ApiKey(LocalAdmin, adminKey)], open: false);
    }

    /// <summary>What is wrong with <paramref name="options"/>, each with the setting to fix; empty when it is usable.</summary>
    public static IReadOnlyList<string> Check(ApiAccessOptions options, string? adminKey = null)
    {
        var errors = new List<string>();
        foreach (var (name, roles) in options.ApiClients)
        {
            var list = SplitRoles(roles);
            if (list.Count == 0)
            {
                errors.Add($"{ApiAccessOptions.Section}:ApiClients:{name} has no role (choose from {string.Join(", ", ApiRoles.All)})");
            }

            errors.AddRange(list.Where(r => !ApiRoles.All.Contains(r)).Select(r =>
                $"{ApiAccessOptions.Section}:ApiClients:{name}: unknown role '{r}' (choose from {string.Join(", ", ApiRoles.All)})"));
        }

        if (adminKey is not null && adminKey.Length < ApiKeysFile.MinKeyLength)
        {
            errors.Add($"the API key is shorter than {ApiKeysFile.MinKeyLength} characters");
        }

        if (string.IsNullOrWhiteSpace(options.ApiKeysFile))
        {
            if (adminKey is null)
            {
                errors.Add($"{ApiAccessOptions.Section}:ApiKeysFile is not set: no client could call the API");
            }

            return errors;
        }

        try
        {
            var keys = ApiKeysFile.Read(options.ApiKeysFile);
            if (keys.GroupBy(k => k.Value).FirstOrDefault(g => g.Count() > 1) is { } shared)
            {
                errors.Add($"{options.ApiKeysFile}: clients {string.Join(", ", shared.Select(k => k.Name))} share one key");
            }

            if (adminKey is null && !keys.Any(k => options.ApiClients.ContainsKey(k.Name)))
            {
                errors.Add($"{options.ApiKeysFile} has no key for any client of {ApiAccessOptions.Section}:ApiClients ({string.Join(", ", options.ApiClients.Keys)})");
            }
        }
        catch (InvalidDataException e)
        {
            errors.Add(e.Message);
        }

        return errors;
    }

    public bool IsOpen { get; }

    /// <summary>The clients that can call now (with a key), for the start-up line.</summary>
    public IReadOnlyList<ApiClient> Callers => _keys.Clients.Values.DistinctBy(c => c.Name).OrderBy(c => c.Name, StringComparer.Ordinal).ToList();

    /// <summary>
    /// The calling client when it holds <paramref name="role"/> (null: none needed, any client will do); otherwise the
    /// refusal to answer with (401 or 403, a problem body).
    /// </summary>
    public bool TryAuthorize(HttpRequest request, string? role, [NotNullWhen(true)] out ApiClient? caller, [NotNullWhen(false)] out ProblemHttpResult? refused)
    {
        refused = null;
        caller = null;
        if (IsOpen)
        {
            caller = new ApiClient(LocalAdmin, new HashSet<string> { ApiRoles.Admin });
            return true;
        }

        string? key = request.Headers[KeyHeader] is { Count: > 0 } header ? header.ToString() : request.Query[KeyQuery].ToString();
        if (string.IsNullOrEmpty(key))
        {
            refused = ApiProblem.Of(StatusCodes.Status401Unauthorized, "API key required",
                $"send your client key in the {KeyHeader} header (or the {KeyQuery} query parameter)");
            return false;
        }

        if (!Current().Clients.TryGetValue(Hash(key), out caller))
        {
            refused = ApiProblem.Of(StatusCodes.Status403Forbidden, "not a client key",
                "the key is not a named client key of this API (the host's master and system keys are not accepted)");
            return false;
        }

        if (role is not null && !caller.Has(role))
        {
            refused = ApiProblem.Of(StatusCodes.Status403Forbidden, "role required", $"client '{caller.Name}' does not have the '{role}' role this route needs");
            caller = null;
            return false;
        }

        return true;
    }

    // The key table as of the file's last change: a rotated key (a new file from `azd provision`) is taken without a restart.
    private KeyTable Current()
    {
        var keys = _keys;
        var stamp = FileStamp.Of(_file);
        if (stamp == keys.Stamp)
        {
            return keys;
        }

        lock (_reload)
        {
            try
            {
                _keys = Load(stamp);
            }
            catch (InvalidDataException)
            {
                // A file caught half-written: keep the keys as they were until it reads whole.
            }

            return _keys;
        }
    }

    private KeyTable Load(FileStamp? stamp)
    {
        var keys = _file is null ? [] : ApiKeysFile.Read(_file);
        var table = new Dictionary<string, ApiClient>(StringComparer.Ordinal);
        foreach (var key in keys.Concat(_given))
        {
            if (_clients.TryGetValue(key.Name, out var client))
            {
                table[Hash(key.Value)] = client;
            }
        }

        return new KeyTable(stamp, table);
    }

    private static IEnumerable<ApiClient> Clients(ApiAccessOptions options) =>
        options.ApiClients.Select(c => new ApiClient(c.Key.ToLowerInvariant(), SplitRoles(c.Value).ToHashSet(StringComparer.Ordinal)));

    private static List<string> SplitRoles(string? roles) =>
        (roles ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(r => r.ToLowerInvariant()).ToList();

    // Keys are looked up by their SHA-256, so no comparison of the key itself leaks its prefix through timing.
    private static string Hash(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private sealed record KeyTable(FileStamp? Stamp, IReadOnlyDictionary<string, ApiClient> Clients);

    private sealed record FileStamp(DateTime Written, long Length)
    {
        public static FileStamp? Of(string? path) =>
            path is null ? null : new FileInfo(path) is { Exists: true } f ? new FileStamp(f.LastWriteTimeUtc, f.Length) : new FileStamp(DateTime.MinValue, -1);
    }
}
