using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// Issue 12 items 8 and 9: every role assignment of the deployment is the intended least-privileged built-in role on
/// the intended scope, for the intended principal, and nothing else is granted; the KEDA scale rules read their queues
/// with the identity that holds the right they need.
/// </summary>
public partial class RoleAssignmentTests
{
    // Azure built-in role definition ids (the same in every tenant), as Azure's built-in roles reference lists them.
    private static readonly Dictionary<string, string> BuiltInRoles = new()
    {
        ["ba92f5b4-2d11-453d-a403-e96b0029c9fe"] = "Storage Blob Data Contributor",
        ["974c5e8b-45b9-4653-ba55-5f855dd0fb88"] = "Storage Queue Data Contributor",
        ["0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"] = "Storage Table Data Contributor",
        ["69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"] = "Azure Service Bus Data Sender",
        ["4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"] = "Azure Service Bus Data Receiver",
        ["090c5cfd-751d-490a-894a-3ce6f1109419"] = "Azure Service Bus Data Owner",
        ["7f951dda-4ed3-4680-a7ca-43fe172d538d"] = "AcrPull",
        ["3913510d-42f4-4e42-8a64-420c390055eb"] = "Monitoring Metrics Publisher",
        ["e147488a-f6f5-4113-8e2d-b22465e65bf6"] = "Key Vault Crypto Service Encryption User",
    };

    // Roles no identity of this deployment should hold anywhere: broader than any need here.
    private static readonly Dictionary<string, string> TooBroad = new()
    {
        ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"] = "Owner",
        ["b24988ac-6180-42a0-ab88-20f7382dd24c"] = "Contributor",
        ["b7e6dc6d-f1e8-4753-8033-0f276bb0955b"] = "Storage Blob Data Owner",
        ["12338af0-0e69-4776-bea7-57ae8d297424"] = "Key Vault Crypto User",
        ["14b46e9e-c2b7-41b4-b07b-48a6ebf60603"] = "Key Vault Crypto Officer",
        ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = "Key Vault Administrator",
    };

    /// <summary>(principal parameter of modules/roles.bicep, role, scope resource type, one per queue).</summary>
    private static readonly (string Principal, string Role, string Scope, bool PerQueue)[] Intended =
    [
        ("principalId", "Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts", false),
        ("principalId", "Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", false),
        ("principalId", "Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", false),
        ("principalId", "Azure Service Bus Data Sender", "Microsoft.ServiceBus/namespaces/queues", true),
        ("principalId", "Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces/queues", true),
        ("scalerPrincipalId", "Azure Service Bus Data Owner", "Microsoft.ServiceBus/namespaces/queues", true),
        ("principalId", "AcrPull", "Microsoft.ContainerRegistry/registries", false),
        ("principalId", "Monitoring Metrics Publisher", "Microsoft.Insights/components", false),
        ("principalId", "Key Vault Crypto Service Encryption User", "Microsoft.KeyVault/vaults/keys", false),
        ("eventGridPrincipalId", "Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts/blobServices/containers", false),
    ];

    private sealed record Assignment(string Principal, string Role, string Scope, string ScopeExpression, bool PerQueue);

    private static List<Assignment> Assignments()
    {
        var roles = Module("roles");
        var ids = roles["variables"]!["roles"]!.AsObject().ToDictionary(r => r.Key, r => Text(r.Value));
        return Resources(roles, "Microsoft.Authorization/roleAssignments").Select(a =>
        {
            var definition = Text(a["properties"]!["roleDefinitionId"]);
            var variable = RoleVariable().Match(definition);
            Assert.True(variable.Success, $"role definition not taken from the roles table: {definition}");
            var id = ids[variable.Groups["name"].Value];
            Assert.True(BuiltInRoles.ContainsKey(id), $"unexpected role definition {id}");
            var principal = PrincipalParameter().Match(Text(a["properties"]!["principalId"])).Groups["name"].Value;
            Assert.Equal("ServicePrincipal", Text(a["properties"]!["principalType"]));
            var scope = Text(a["scope"]);
            var perQueue = a["copy"] is not null;
            if (perQueue)
            {
                Assert.Equal("[length(parameters('queues'))]", Text(a["copy"]!["count"]));
                Assert.Contains("parameters('queues')[copyIndex()]", scope);
            }

            return new Assignment(principal, BuiltInRoles[id], ScopeType(scope), scope, perQueue);
        }).ToList();
    }

    [GeneratedRegex(@"^\[subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', variables\('roles'\)\.(?<name>\w+)\)\]$")]
    private static partial Regex RoleVariable();

    [GeneratedRegex(@"^\[parameters\('(?<name>\w+)'\)\]$")]
    private static partial Regex PrincipalParameter();

    [Fact]
    public void EveryRoleAssignmentIsTheIntendedRoleOnTheIntendedScope()
    {
        var actual = Assignments().Select(a => (a.Principal, a.Role, a.Scope, a.PerQueue)).Order().ToList();
        Assert.Equal(Intended.Order().ToList(), actual);
    }

    [Fact]
    public void EachPrincipalIsTheIdentityItIsMeantToBe()
    {
        var arguments = ModuleArguments("roles");
        Assert.Equal("[reference('identity').outputs.principalId.value]", arguments["principalId"]);
        Assert.Equal("[reference('identity').outputs.scalerPrincipalId.value]", arguments["scalerPrincipalId"]);
        Assert.Equal("[reference('events').outputs.principalId.value]", arguments["eventGridPrincipalId"]);
        Assert.Equal("[reference('storage').outputs.deadLetterContainer.value]", arguments["deadLetterContainer"]);

        // The Service Bus roles are on the app's two queues, not the namespace.
        var queues = JsonNode.Parse(arguments["queues"])!.AsArray().Select(Text).ToList();
        Assert.Equal(["[reference('serviceBus').outputs.classifyQueue.value]", "[reference('serviceBus').outputs.webhookQueue.value]"], queues);
        Assert.DoesNotContain(Assignments(), a => a.Scope == "Microsoft.ServiceBus/namespaces");

        // The Key Vault role is on the webhook-secrets key, not the vault.
        Assert.Equal("[reference('keyVault').outputs.keyName.value]", arguments["kekName"]);
    }

    [Fact]
    public void NothingOutsideTheRolesModuleGrantsARoleAndNoBroadRoleAppearsAnywhere()
    {
        var elsewhere = Templates(Main).Where(t => !ReferenceEquals(t, Module("roles")))
            .SelectMany(t => Resources(t, "Microsoft.Authorization/roleAssignments")).ToList();
        Assert.Empty(elsewhere);
        Assert.Empty(Resources(Events, "Microsoft.Authorization/roleAssignments"));

        var everything = Main.ToJsonString() + Events.ToJsonString();
        foreach (var (id, name) in TooBroad)
        {
            Assert.False(everything.Contains(id, StringComparison.OrdinalIgnoreCase), $"{name} ({id}) is granted somewhere");
        }
    }

    [Fact]
    public void TheQueueScaleRulesReadTheirQueuesWithTheScalerIdentity()
    {
        // KEDA's azure-servicebus scaler reads the queue's runtime properties (Manage): the scaler identity holds Data
        // Owner on exactly these queues; the app's own identity holds only Sender and Receiver.
        var rules = ContainerApp()["properties"]!["template"]!["scale"]!["rules"]!.AsArray()
            .Where(r => r!["custom"] is not null).Select(r => r!["custom"]!).ToList();
        Assert.Equal(2, rules.Count);
        Assert.All(rules, r =>
        {
            Assert.Equal("azure-servicebus", Text(r["type"]));
            Assert.Equal("[parameters('scalerIdentityId')]", Text(r["identity"]));
            Assert.Null(r["auth"]); // no connection string secret
        });
        Assert.Equal(["[parameters('classifyQueue')]", "[parameters('webhookQueue')]"], rules.Select(r => Text(r["metadata"]!["queueName"])).Order());
        Assert.Equal("[reference('identity').outputs.scalerId.value]", ModuleArguments("app")["scalerIdentityId"]);
        Assert.Equal("[reference('serviceBus').outputs.classifyQueue.value]", ModuleArguments("app")["classifyQueue"]);
        Assert.Equal("[reference('serviceBus').outputs.webhookQueue.value]", ModuleArguments("app")["webhookQueue"]);

        var scaler = Assert.Single(Assignments(), a => a.Principal == "scalerPrincipalId");
        Assert.Equal(("Azure Service Bus Data Owner", "Microsoft.ServiceBus/namespaces/queues", true), (scaler.Role, scaler.Scope, scaler.PerQueue));
        Assert.DoesNotContain(Assignments(), a => a.Principal == "principalId" && a.Role == "Azure Service Bus Data Owner");

        // Both identities are the app's, and the code and the host use the app's (never the scaler's).
        var identities = ContainerApp()["identity"]!["userAssignedIdentities"]!.AsObject().Select(i => i.Key).Order().ToList();
        Assert.Equal(["[format('{0}', parameters('identityId'))]", "[format('{0}', parameters('scalerIdentityId'))]"], identities);
        var env = ContainerEnv();
        Assert.All(["AzureWebJobsStorage__clientId", "Leuko__ManagedIdentityClientId", "AZURE_CLIENT_ID"],
            k => Assert.Equal("[parameters('identityClientId')]", env[k]));
    }
}
