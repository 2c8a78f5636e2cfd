using System.Text.Json;
using System.Text.Json.Nodes;

namespace Leuko.Azure.Hosting;

/// <summary>
/// Reads the named keys of a Functions host secrets file (<c>functionKeys: [{name, value, encrypted}]</c>, as
/// infra/ writes it and <c>leuko serve --api-keys</c> takes it). Only <c>functionKeys</c> are read: the
/// <c>masterKey</c> and <c>systemKeys</c> are the host's and are no client's.
/// </summary>
public static class ApiKeysFile
{
    /// <summary>The shortest key accepted: a guessable key is no credential (the host's own keys are 40 characters and more).</summary>
    public const int MinKeyLength = 16;

    /// <exception cref="InvalidDataException">The file is not readable, not the host secrets shape, or a key is unusable; the message says which.</exception>
    public static IReadOnlyList<ApiKey> Read(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new InvalidDataException($"API keys file {path}: {e.Message}", e);
        }

        if (root is not JsonObject file || file["functionKeys"] is not JsonArray entries)
        {
            throw new InvalidDataException($"API keys file {path}: no functionKeys array (expected {{\"functionKeys\": [{{\"name\": \"lims\", \"value\": \"...\"}}]}})");
        }

        var keys = new List<ApiKey>();
        foreach (var entry in entries)
        {
            string? name = (entry as JsonObject)?["name"]?.GetValueKind() == JsonValueKind.String ? entry!["name"]!.GetValue<string>() : null;
            string? value = (entry as JsonObject)?["value"]?.GetValueKind() == JsonValueKind.String ? entry!["value"]!.GetValue<string>() : null;
            if (string.IsNullOrWhiteSpace(name) || value is null)
            {
                throw new InvalidDataException($"API keys file {path}: every functionKeys entry needs a name and a value");
            }

            if (entry!["encrypted"]?.GetValueKind() == JsonValueKind.True)
            {
                throw new InvalidDataException($"API keys file {path}: key '{name}' is encrypted with the host's machine key, which this app cannot read (write it with \"encrypted\": false)");
            }

            if (value.Length < MinKeyLength)
            {
                throw new InvalidDataException($"API keys file {path}: key '{name}' is shorter than {MinKeyLength} characters");
            }

            keys.Add(new ApiKey(name, value));
        }

        return keys;
    }
}
