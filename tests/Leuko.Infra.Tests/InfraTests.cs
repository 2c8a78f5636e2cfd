using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using Leuko.Azure.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using YamlDotNet.RepresentationModel;

using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// The deployment, checked offline as far as the real tools allow: the Bicep CLI (restored from NuGet) builds and
/// lints infra/, azure.yaml matches azd's schema, the Dockerfile matches the project, and the app settings the code
/// reads are all set by the Bicep. Nothing here reaches Azure.
/// </summary>
public class InfraTests
{
    [Theory]
    [InlineData("main.bicep")]
    [InlineData("events.bicep")]
    public void BicepBuildsAndLintsWithoutAWarning(string file)
    {
        var output = Path.Combine(Path.GetTempPath(), $"leuko-{Guid.NewGuid():N}.json");
        var (buildExit, buildLog) = RunBicep("build", file, "--outfile", output);
        File.Delete(output);
        Assert.True(buildExit == 0, buildLog);
        Assert.DoesNotMatch("(?i)warning|error", buildLog);

        var (lintExit, lintLog) = RunBicep("lint", file);
        Assert.True(lintExit == 0, lintLog);
        Assert.DoesNotMatch("(?i)warning|error", lintLog); // warnings count as errors
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
        var env = ContainerEnv();
        var missing = SettingsTheCodeReads().Where(k => !env.ContainsKey(k)).ToList();
        Assert.True(missing.Count == 0, $"infra/ does not set: {string.Join(", ", missing)}");
        Assert.Equal("service-bus", env["Leuko__Transport"]);

        // Identity only: no storage or Service Bus connection string, no account key, no SAS.
        Assert.DoesNotContain(env, e => e.Key is "AzureWebJobsStorage" or "Leuko__Storage" or "Leuko__ServiceBus");
        Assert.DoesNotContain(env, e => Regex.IsMatch(e.Value, "AccountKey=|SharedAccessKey=|listKeys", RegexOptions.IgnoreCase));
    }

    [Fact]
    public async Task TheDeployedSettingsAreEnoughToStartThePipeline()
    {
        // The settings the Bicep sets, with stand-in values: the pipeline's services all build (no network is touched).
        // The API keys file is one in the shape the Bicep writes (modules/functionapp.bicep, hostSecrets).
        var env = ContainerEnv();
        var keysFile = Path.Combine(Path.GetTempPath(), $"leuko-host-secrets-{Guid.NewGuid():N}.json");
        File.WriteAllText(keysFile, """
            {"masterKey":{"name":"master","value":"m0000000000000000000000000000000","encrypted":false},
             "functionKeys":[{"name":"lims","value":"l0000000000000000000000000000000","encrypted":false},
                             {"name":"uploader","value":"u0000000000000000000000000000000","encrypted":false},
                             {"name":"reviewer","value":"r0000000000000000000000000000000","encrypted":false},
                             {"name":"admin","value":"a0000000000000000000000000000000","encrypted":false}],
             "systemKeys":[{"name":"blobs_extension","value":"b0000000000000000000000000000000","encrypted":false}]}
            """);
        var values = env.Keys.ToDictionary(k => k.Replace("__", ":"), k => k switch
        {
            "AzureWebJobsStorage__accountName" => "stleukotest",
            "AzureWebJobsStorage__clientId" or "Leuko__ManagedIdentityClientId" or "AZURE_CLIENT_ID" => "00000000-0000-0000-0000-000000000001",
            "Leuko__ServiceBusNamespace" => "sb-leukotest.servicebus.windows.net",
            "Leuko__PublicApiUrl" => "https://func-leukotest.example/api",
            "Leuko__ApiKeysFile" => keysFile,
            "Leuko__SecretsKeyUri" => "https://kv-leukotest.vault.azure.net/keys/webhook-secrets",
            _ => env[k].StartsWith('[') ? "placeholder" : env[k],
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
        Assert.IsType<Leuko.Azure.Secrets.KeyVaultKeyEncryptionKey>(provider.GetRequiredService<Leuko.Pipeline.Secrets.IKeyEncryptionKey>());
        File.Delete(keysFile);
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
        var classify = Assert.Single(Resources(Module("serviceBus"), "Microsoft.ServiceBus/namespaces/queues"),
            q => Text(q["name"]).Contains("classify"));
        int brokerCount = classify["properties"]!["maxDeliveryCount"]!.GetValue<int>();
        var env = ContainerEnv();
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

        // The Functions .NET isolated base image for the project's .NET, and the SDK of the same .NET to publish
        // (each by its tag, pinned to a digest or not: DockerImageTests checks the pinning).
        const string digest = @"(@sha256:[0-9a-f]{64})?";
        Assert.Matches($@"(?m)^FROM mcr\.microsoft\.com/azure-functions/dotnet-isolated:4-dotnet-isolated{Regex.Escape(dotnet)}{digest}\s*$", dockerfile);
        Assert.Matches($@"(?m)^FROM mcr\.microsoft\.com/dotnet/sdk:{Regex.Escape(dotnet)}{digest} AS build\s*$", dockerfile);
        Assert.Matches(@"apt-get install[^\n]*libgtk-3-0", dockerfile);
        Assert.Contains("dotnet publish functions/Leuko.Functions/Leuko.Functions.csproj", dockerfile);
        Assert.True(File.Exists(Path.Combine(Root, "functions", "Leuko.Functions", "Leuko.Functions.csproj")));
        Assert.Contains("AzureWebJobsScriptRoot=/home/site/wwwroot", dockerfile);
        Assert.Matches(@"(?m)^COPY --from=build /home/site/wwwroot /home/site/wwwroot\s*$", dockerfile);
    }
}
