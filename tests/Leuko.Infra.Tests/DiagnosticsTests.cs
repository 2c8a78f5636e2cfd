using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// Issue 12 item 10: a diagnostic setting to the Log Analytics workspace for every resource family, the Functions host
/// in OpenTelemetry mode, and blob-trigger concurrency no higher than a replica's vCPUs (segmentation is CPU-bound).
/// </summary>
public partial class DiagnosticsTests
{
    /// <summary>A diagnostic setting's log categories and metric categories, variables resolved.</summary>
    private static (List<string> Logs, List<string> Metrics) Categories(JsonObject template, JsonObject setting)
    {
        List<string> Resolve(JsonNode? node)
        {
            if (node is JsonValue && Variable().Match(Text(node)) is { Success: true } m)
            {
                node = template["variables"]![m.Groups["name"].Value];
            }

            return node is JsonArray list
                ? list.Where(c => c!["enabled"]?.GetValue<bool>() != false).Select(c => Text(c!["category"] ?? c["categoryGroup"])).ToList()
                : [];
        }

        return (Resolve(setting["properties"]!["logs"]), Resolve(setting["properties"]!["metrics"]));
    }

    [GeneratedRegex(@"^\[variables\('(?<name>\w+)'\)\]$")]
    private static partial Regex Variable();

    [Theory]
    [InlineData("Microsoft.Storage/storageAccounts", "", "Transaction")]
    [InlineData("Microsoft.Storage/storageAccounts/blobServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.Storage/storageAccounts/queueServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.Storage/storageAccounts/tableServices", "StorageRead,StorageWrite,StorageDelete", "Transaction")]
    [InlineData("Microsoft.ServiceBus/namespaces", "OperationalLogs", "AllMetrics")]
    [InlineData("Microsoft.KeyVault/vaults", "AuditEvent", "AllMetrics")]
    [InlineData("Microsoft.EventGrid/systemTopics", "DeliveryFailures", "AllMetrics")]
    [InlineData("Microsoft.App/managedEnvironments", "ContainerAppConsoleLogs,ContainerAppSystemLogs", "AllMetrics")]
    [InlineData("Microsoft.App/containerApps", "", "AllMetrics")]
    public void EachResourceFamilySendsItsLogsAndMetricsToTheWorkspace(string scopeType, string logs, string metrics)
    {
        var diagnostics = Module("diagnostics");
        var setting = Assert.Single(Resources(diagnostics, "Microsoft.Insights/diagnosticSettings"),
            s => ScopeType(Text(s["scope"])) == scopeType);
        Assert.Equal("[resourceId('Microsoft.OperationalInsights/workspaces', parameters('logAnalyticsName'))]",
            Text(setting["properties"]!["workspaceId"]));
        var (actualLogs, actualMetrics) = Categories(diagnostics, setting);
        Assert.Equal(logs.Split(',', StringSplitOptions.RemoveEmptyEntries).Order(), actualLogs.Order());
        Assert.Equal(metrics.Split(','), actualMetrics);

        // The workspace is the monitoring module's, and every scope is a resource this deployment creates.
        Assert.Equal("[reference('monitoring').outputs.logAnalyticsName.value]", ModuleArguments("diagnostics")["logAnalyticsName"]);
    }

    [Fact]
    public void TheContainerAppsEnvironmentsLogsGoThroughItsDiagnosticSettingWithNoWorkspaceKey()
    {
        var environment = Resources(Module("app"), "Microsoft.App/managedEnvironments").Single();
        Assert.Equal("azure-monitor", Text(environment["properties"]!["appLogsConfiguration"]!["destination"]));
        Assert.DoesNotContain("listKeys", Main.ToJsonString(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal("[reference('app').outputs.environmentName.value]", ModuleArguments("diagnostics")["environmentName"]);
    }

    [Fact]
    public void TheHostRunsInOpenTelemetryModeWithBlobParallelismWithinAReplicasCpus()
    {
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "host.json")))!;
        Assert.Equal("2.0", Text(host["version"]));
        Assert.Equal("OpenTelemetry", Text(host["telemetryMode"]));

        // One segmentation per vCPU of a replica (Leuko's segmentation is CPU-bound; the default is 8 per core).
        var parallelism = host["extensions"]!["blobs"]!["maxDegreeOfParallelism"]!.GetValue<int>();
        var cpu = CpuOfReplica().Match(Text(ContainerApp()["properties"]!["template"]!["containers"]![0]!["resources"]!["cpu"]));
        Assert.True(cpu.Success);
        var vcpus = double.Parse(cpu.Groups["cpu"].Value, CultureInfo.InvariantCulture);
        Assert.InRange(parallelism, 1, (int)Math.Ceiling(vcpus));

        // The worker exports its traces with the host's (the Functions worker OpenTelemetry package).
        var project = File.ReadAllText(Path.Combine(Root, "functions", "Leuko.Functions", "Leuko.Functions.csproj"));
        Assert.Contains("Microsoft.Azure.Functions.Worker.OpenTelemetry", project);
    }

    [GeneratedRegex(@"^\[json\('(?<cpu>[0-9.]+)'\)\]$")]
    private static partial Regex CpuOfReplica();
}
