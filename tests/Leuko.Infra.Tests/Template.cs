using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Leuko.Infra.Tests;

/// <summary>
/// The repository's infra/ as the real Bicep CLI (restored from NuGet) compiles it: the ARM JSON Azure would receive,
/// compiled once per test run, and the few walks over it the tests share (modules, resources, parameters, env).
/// </summary>
public static partial class Template
{
    private static string Metadata(string key) =>
        typeof(Template).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    public static string Root => Path.GetFullPath(Metadata("RepositoryRoot")).TrimEnd('/');

    public static string Bicep => Path.Combine(Metadata("BicepPackage"), "tools", "bicep");

    private static readonly Lazy<JsonObject> MainTemplate = new(() => Compile("main.bicep"));
    private static readonly Lazy<JsonObject> EventsTemplate = new(() => Compile("events.bicep"));

    /// <summary>infra/main.bicep compiled (subscription scope; each module a nested deployment).</summary>
    public static JsonObject Main => MainTemplate.Value;

    /// <summary>infra/events.bicep compiled (the Event Grid subscriptions the post-deploy hook deploys).</summary>
    public static JsonObject Events => EventsTemplate.Value;

    /// <summary>Runs a program to its end: its exit code and its stdout and stderr together.</summary>
    public static (int Exit, string Output) Run(string file, string workingDirectory, string[] args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    public static (int Exit, string Output) RunBicep(params string[] args) => Run(Bicep, Path.Combine(Root, "infra"), args);

    private static JsonObject Compile(string file)
    {
        var output = Path.Combine(Path.GetTempPath(), $"leuko-{Path.GetFileNameWithoutExtension(file)}-{Guid.NewGuid():N}.json");
        try
        {
            var (exit, log) = RunBicep("build", file, "--outfile", output);
            if (exit != 0)
            {
                throw new InvalidOperationException($"bicep build {file} failed:\n{log}");
            }

            return JsonNode.Parse(File.ReadAllText(output))!.AsObject();
        }
        finally
        {
            File.Delete(output);
        }
    }

    /// <summary>The template of main.bicep's module <paramref name="symbol"/> (e.g. "roles", "app").</summary>
    public static JsonObject Module(string symbol) => Deployment(symbol)["properties"]!["template"]!.AsObject();

    /// <summary>The parameters main.bicep passes to module <paramref name="symbol"/>: name to value expression.</summary>
    public static Dictionary<string, string> ModuleArguments(string symbol) =>
        Deployment(symbol)["properties"]!["parameters"]!.AsObject()
            .ToDictionary(p => p.Key, p => Text(p.Value!["value"]));

    private static JsonObject Deployment(string symbol) =>
        Main["resources"]![symbol]?.AsObject() ?? throw new KeyNotFoundException($"main.bicep has no module '{symbol}'");

    /// <summary>The resources a template deploys (not the 'existing' references), with their symbolic names.</summary>
    public static IEnumerable<(string Symbol, JsonObject Resource)> Resources(JsonObject template)
    {
        IEnumerable<(string, JsonObject)> all = template["resources"] switch
        {
            JsonObject symbols => symbols.Select(s => (s.Key, s.Value!.AsObject())),
            JsonArray list => list.Select((r, i) => ($"#{i}", r!.AsObject())),
            _ => [],
        };
        return all.Where(r => r.Item2["existing"]?.GetValue<bool>() != true);
    }

    public static IEnumerable<JsonObject> Resources(JsonObject template, string type) =>
        Resources(template).Select(r => r.Resource).Where(r => r["type"]?.GetValue<string>() == type);

    /// <summary>Every template in <paramref name="root"/>: itself and each nested deployment's, depth first.</summary>
    public static IEnumerable<JsonObject> Templates(JsonObject root)
    {
        yield return root;
        foreach (var deployment in Resources(root, "Microsoft.Resources/deployments"))
        {
            if (deployment["properties"]?["template"] is JsonObject nested)
            {
                foreach (var t in Templates(nested))
                {
                    yield return t;
                }
            }
        }
    }

    /// <summary>A JSON value as text: a string as is, anything else as JSON.</summary>
    public static string Text(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) ? s : node?.ToJsonString() ?? "";

    /// <summary>The container's environment variables in the app module: name to value (expression or literal).</summary>
    public static Dictionary<string, string> ContainerEnv() =>
        Resources(Module("app"), "Microsoft.App/containerApps").Single()["properties"]!["template"]!["containers"]![0]!["env"]!
            .AsArray().ToDictionary(e => e!["name"]!.GetValue<string>(), e => Text(e!["value"]));

    /// <summary>The container app resource of the app module.</summary>
    public static JsonObject ContainerApp() => Resources(Module("app"), "Microsoft.App/containerApps").Single();

    /// <summary>The resource type in an ARM scope expression: "[resourceId('Microsoft.X/y', ...)]" gives Microsoft.X/y.</summary>
    public static string ScopeType(string scope) =>
        ResourceIdType().Match(scope) is { Success: true } m ? m.Groups["type"].Value : throw new FormatException($"not a resourceId scope: {scope}");

    [GeneratedRegex(@"^\[(?:extension)?[rR]esourceId\('(?<type>[^']+)'")]
    private static partial Regex ResourceIdType();
}
