using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using Leuko.Azure.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using YamlDotNet.RepresentationModel;

namespace Leuko.Infra.Tests;

/// <summary>
/// The deployment, checked offline as far as the real tools allow: the Bicep CLI (restored from NuGet) builds and
/// lints infra/, azure.yaml matches azd's schema, the Dockerfile matches the project, and the app settings the code
/// reads are all set by the Bicep. Nothing here reaches Azure.
/// </summary>
public class InfraTests
{
    private static string Metadata(string key) =>
        typeof(InfraTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static string Root => Path.GetFullPath(Metadata("RepositoryRoot"));

    private static string Bicep => Path.Combine(Metadata("BicepPackage"), "tools", "bicep");

    private static (int Exit, string Output) RunBicep(params string[] args)
    {
        var start = new ProcessStartInfo(Bicep) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.Combine(Root, "infra") };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    private static JsonNode CompiledTemplate()
    {
        var output = Path.Combine(Path.GetTempPath(), $"leuko-main-{Guid.NewGuid():N}.json");
        try
        {
            var (exit, log) = RunBicep("build", "main.bicep", "--outfile", output);
            Assert.True(exit == 0, log);
            return JsonNode.Parse(File.ReadAllText(output))!;
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void BicepBuildsAndLintsWithoutAWarning()
    {
        var output = Path.Combine(Path.GetTempPath(), $"leuko-main-{Guid.NewGuid():N}.json");
        var (buildExit, buildLog) = RunBicep("build", "main.bicep", "--outfile", output);
        File.Delete(output);
        Assert.True(buildExit == 0, buildLog);
        Assert.DoesNotMatch("(?i)warning|error", buildLog);

        var (lintExit, lintLog) = RunBicep("lint", "main.bicep");
        Assert.True(lintExit == 0, lintLog);
        Assert.DoesNotMatch("(?i)warning|error", lintLog); // warnings count as errors
    }

    /// <summary>The container's environment variables in the compiled template: name to value expression.</summary>
    private static Dictionary<string, string> ContainerEnv(JsonNode template)
    {
        var env = new Dictionary<string, string>();
        void Walk(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o:
                    if (o["env"] is JsonArray list && list.All(e => e?["name"] is not null))
                    {
                        foreach (var e in list)
                        {
                            env[e!["name"]!.GetValue<string>()] = e["value"]?.ToJsonString() ?? "";
                        }
                    }

                    foreach (var (_, child) in o)
                    {
                        Walk(child);
                    }

                    break;
                case JsonArray a:
                    foreach (var child in a)
                    {
                        Walk(child);
                    }

                    break;
            }
        }

        Walk(template);
        return env;
    }

    /// <summary>What the deployed app reads: the pipeline's settings marked [DeployedSetting], and the Functions host's.</summary>
    private static IReadOnlyList<string> SettingsTheCodeReads() =>
        typeof(PipelineOptions).GetProperties()
            .Where(p => p.GetCustomAttribute<DeployedSettingAttribute>() is not null)
            .Select(p => $"{PipelineOptions.Section}__{p.Name}")
            .Concat([
                "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
                "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ])
            .ToList();

    [Fact]
    public void EverySettingTheCodeReadsIsSetByTheBicepAndNoKeyIs()
    {
        var env = ContainerEnv(CompiledTemplate());
        var missing = SettingsTheCodeReads().Where(k => !env.ContainsKey(k)).ToList();
        Assert.True(missing.Count == 0, $"infra/ does not set: {string.Join(", ", missing)}");
        Assert.Equal("\"service-bus\"", env["Leuko__Transport"]);

        // Identity only: no storage or Service Bus connection string, no account key, no SAS.
        Assert.DoesNotContain(env, e => e.Key is "AzureWebJobsStorage" or "Leuko__Storage" or "Leuko__ServiceBus");
        Assert.DoesNotContain(env, e => Regex.IsMatch(e.Value, "AccountKey=|SharedAccessKey=|listKeys", RegexOptions.IgnoreCase));
    }

    [Fact]
    public async Task TheDeployedSettingsAreEnoughToStartThePipeline()
    {
        // The settings the Bicep sets, with stand-in values: the pipeline's services all build (no network is touched).
        var env = ContainerEnv(CompiledTemplate());
        var values = env.Keys.ToDictionary(k => k.Replace("__", ":"), k => k switch
        {
            "AzureWebJobsStorage__accountName" => "stleukotest",
            "AzureWebJobsStorage__clientId" or "Leuko__ManagedIdentityClientId" => "00000000-0000-0000-0000-000000000001",
            "Leuko__ServiceBusNamespace" => "sb-leukotest.servicebus.windows.net",
            "Leuko__PublicApiUrl" => "https://func-leukotest.example/api",
            _ => JsonNode.Parse(env[k]) is JsonValue v && v.TryGetValue<string>(out var s) && !s.StartsWith('[') ? s : "placeholder",
        });
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values!).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddLeukoPipeline(configuration);
        await using var provider = services.BuildServiceProvider();
        var clients = provider.GetRequiredService<AzureClients>();
        Assert.Equal("https://stleukotest.blob.core.windows.net/", clients.Blobs.Uri.ToString());
        Assert.Equal("stleukotest", clients.Tables.AccountName);
        var options = provider.GetRequiredService<PipelineOptions>();
        Assert.Equal("sb-leukotest.servicebus.windows.net", clients.ServiceBus(options).FullyQualifiedNamespace);
        Assert.NotNull(provider.GetRequiredService<Leuko.Pipeline.Messaging.IMessageTransport>());
    }

    [SkippableFact]
    public void AzureYamlFollowsTheAzdSchema()
    {
        var schemaPath = Path.GetFullPath(Path.Combine(Root, "..", "shared", "schemas", "azure.yaml.json"));
        Skip.IfNot(File.Exists(schemaPath), $"azd's schema is not at {schemaPath} (../shared is absent): azure.yaml not validated");

        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(Root, "azure.yaml"))));
        var document = ToJson(stream.Documents[0].RootNode)!;
        var json = document.ToJsonString();
        var schema = JsonSchema.FromText(File.ReadAllText(schemaPath));
        using var instance = JsonDocument.Parse(json);
        var result = schema.Evaluate(instance.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, string.Join("\n", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 })
            .SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))));

        // And it points at what exists.
        var service = document["services"]!["functions"]!;
        var project = Path.Combine(Root, service["project"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(project, "Leuko.Functions.csproj")));
        Assert.True(File.Exists(Path.Combine(project, service["docker"]!["path"]!.GetValue<string>())));
        Assert.Equal(Root, Path.GetFullPath(Path.Combine(project, service["docker"]!["context"]!.GetValue<string>())).TrimEnd('/'));
        Assert.True(File.Exists(Path.Combine(Root, document["infra"]!["path"]!.GetValue<string>(), "main.bicep")));
        Assert.True(File.Exists(Path.Combine(Root, document["hooks"]!["postdeploy"]!["posix"]!["run"]!.GetValue<string>())));
    }

    /// <summary>YAML to JSON with YAML 1.2 core-schema typing of plain scalars (true/false, null, numbers), as azd reads it.</summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } s when s.Value is "true" or "false" => JsonValue.Create(s.Value == "true"),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } s when s.Value is null or "null" or "~" or "" => null,
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } s when long.TryParse(s.Value, out var n) => JsonValue.Create(n),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => throw new InvalidDataException($"unexpected YAML node {node.NodeType}"),
    };

    [Fact]
    public void TheBrokerCountsMoreDeliveriesThanTheStage()
    {
        // The classification stage fails the image and dead-letters at Leuko:MaxAttempts; were the queue's maxDeliveryCount
        // not above it, the broker would dead-letter the last delivery itself and the image would never be marked failed.
        var template = CompiledTemplate();
        var queues = new List<JsonObject>();
        void Walk(JsonNode? node)
        {
            if (node is JsonObject o)
            {
                if (o["type"]?.GetValue<string>() == "Microsoft.ServiceBus/namespaces/queues")
                {
                    queues.Add(o);
                }

                foreach (var (_, child) in o)
                {
                    Walk(child);
                }
            }
            else if (node is JsonArray a)
            {
                foreach (var child in a)
                {
                    Walk(child);
                }
            }
        }

        Walk(template);
        var classify = Assert.Single(queues, q => q["name"]!.ToJsonString().Contains("classify"));
        int brokerCount = classify["properties"]!["maxDeliveryCount"]!.GetValue<int>();
        var env = ContainerEnv(template);
        int stageCount = env.TryGetValue($"{PipelineOptions.Section}__{nameof(PipelineOptions.MaxAttempts)}", out var set)
            ? int.Parse(set.Trim('"'), System.Globalization.CultureInfo.InvariantCulture)
            : new PipelineOptions().MaxAttempts;
        Assert.True(brokerCount > stageCount, $"classify maxDeliveryCount {brokerCount} must be above Leuko:MaxAttempts {stageCount}");
    }

    [Fact]
    public void TheDockerfileMatchesTheProject()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "functions", "Leuko.Functions", "Dockerfile"));
        var props = File.ReadAllText(Path.Combine(Root, "Directory.Build.props"));
        var dotnet = Regex.Match(props, "<TargetFramework>net(?<v>[0-9.]+)</TargetFramework>").Groups["v"].Value;
        Assert.False(string.IsNullOrEmpty(dotnet));

        // The Functions .NET isolated base image for the project's .NET, and the SDK of the same .NET to publish.
        Assert.Matches($@"(?m)^FROM mcr\.microsoft\.com/azure-functions/dotnet-isolated:4-dotnet-isolated{Regex.Escape(dotnet)}\s*$", dockerfile);
        Assert.Matches($@"(?m)^FROM mcr\.microsoft\.com/dotnet/sdk:{Regex.Escape(dotnet)} AS build\s*$", dockerfile);
        Assert.Matches(@"apt-get install[^\n]*libgtk-3-0", dockerfile);
        Assert.Contains("dotnet publish functions/Leuko.Functions/Leuko.Functions.csproj", dockerfile);
        Assert.True(File.Exists(Path.Combine(Root, "functions", "Leuko.Functions", "Leuko.Functions.csproj")));
        Assert.Contains("AzureWebJobsScriptRoot=/home/site/wwwroot", dockerfile);
        Assert.Matches(@"(?m)^COPY --from=build /home/site/wwwroot /home/site/wwwroot\s*$", dockerfile);
    }
}
