using System.Text.Json.Nodes;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// Issue 12 items 1, 4 and 6 on the Bicep side: a named function key per client in the host's key file, each a
/// parameter azd generates once (so a second provision keeps it), the roles of each client, and the Key Vault key
/// that wraps the webhook signing secrets.
/// </summary>
public class AccessAndSecretsTests
{
    private static readonly Dictionary<string, string> ClientKeyParameters = new()
    {
        ["lims"] = "limsApiKey",
        ["uploader"] = "uploaderApiKey",
        ["reviewer"] = "reviewerApiKey",
        ["admin"] = "adminApiKey",
    };

    private static readonly string[] KeyParameters = [.. ClientKeyParameters.Values, "hostMasterKey", "blobsExtensionKey"];

    [Fact]
    public void NoParameterAnywhereDefaultsToANewGuid()
    {
        // newGuid() is evaluated on every deployment: as a default it rotates the key on each `azd up`.
        var offenders = Templates(Main).Append(Events)
            .SelectMany(t => t["parameters"]?.AsObject() ?? [])
            .Where(p => p.Value?["defaultValue"] is { } d && Text(d).Contains("newGuid", StringComparison.OrdinalIgnoreCase))
            .Select(p => p.Key)
            .ToList();
        Assert.True(offenders.Count == 0, $"parameters defaulting to newGuid(): {string.Join(", ", offenders)}");
        Assert.DoesNotContain("newGuid", Main.ToJsonString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void EveryKeyIsASecureParameterAzdGeneratesOnceAndKeeps()
    {
        var parameters = Main["parameters"]!.AsObject();
        // azd generates a parameter only when nothing else supplies it: no default, no entry in main.parameters.json
        // (an entry would bind it to an environment variable, empty when unset). It then saves it in the
        // environment's config (infra.parameters.NAME) and passes the same value on every later provision.
        var mapped = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "infra", "main.parameters.json")))!["parameters"]!.AsObject();
        foreach (var name in KeyParameters)
        {
            var p = parameters[name]?.AsObject();
            Assert.True(p is not null, $"main.bicep has no parameter {name}");
            Assert.Equal("securestring", p!["type"]!.GetValue<string>());
            Assert.Null(p["defaultValue"]);
            Assert.False(mapped.ContainsKey(name), $"{name} is in main.parameters.json, so azd would not generate it");
            var azd = p["metadata"]?["azd"];
            Assert.Equal("generate", Text(azd?["type"]));
            Assert.True(azd!["config"]!["length"]!.GetValue<int>() >= 32, $"{name} is generated shorter than 32 characters");
            // Keys travel in a URL query (code=) and in headers: letters and digits only.
            Assert.True(azd["config"]!["noSpecial"]!.GetValue<bool>(), $"{name} may be generated with special characters");
        }
    }

    [Fact]
    public void TheHostKeyFileHoldsOneNamedKeyPerClientEachFromItsOwnParameter()
    {
        var app = Module("app");
        var secrets = app["variables"]!["hostSecrets"]!.AsObject();
        var functionKeys = secrets["functionKeys"]!.AsArray().Select(k => (Name: Text(k!["name"]), Value: Text(k["value"]))).ToList();
        Assert.Equal(ClientKeyParameters.Keys.Order(), functionKeys.Select(k => k.Name).Order());

        var arguments = ModuleArguments("app");
        foreach (var (client, parameter) in ClientKeyParameters)
        {
            // The key named after the client holds the module parameter main.bicep fills from that client's parameter.
            var key = functionKeys.Single(k => k.Name == client);
            Assert.Equal($"[parameters('{parameter}')]", key.Value);
            Assert.Equal($"[parameters('{parameter}')]", arguments[parameter]);
            Assert.Equal("securestring", Text(app["parameters"]![parameter]!["type"]));
        }

        Assert.Equal(functionKeys.Count, functionKeys.Select(k => k.Value).Distinct().Count()); // no two clients share a key

        // The master key is in the file (the host needs one) and is no client's; the Event Grid webhook's system key too.
        Assert.Equal("[parameters('hostMasterKey')]", Text(secrets["masterKey"]!["value"]));
        Assert.DoesNotContain(functionKeys, k => k.Value.Contains("hostMasterKey"));
        Assert.Equal("blobs_extension", Text(secrets["systemKeys"]![0]!["name"]));

        // The file is the container app secret mounted where the host reads it, and the app reads the same file.
        var container = ContainerApp();
        Assert.Equal("[string(variables('hostSecrets'))]",
            Text(container["properties"]!["configuration"]!["secrets"]!.AsArray().Single(s => Text(s!["name"]) == "host-secrets")!["value"]));
        var volume = container["properties"]!["template"]!["volumes"]!.AsArray().Single()!;
        Assert.Equal("Secret", Text(volume["storageType"]));
        Assert.Equal("host.json", Text(volume["secrets"]![0]!["path"]));
        Assert.Equal("/azure-functions-host/Secrets", Text(app["variables"]!["secretsDirectory"]));
        var env = ContainerEnv();
        Assert.Equal("files", env["AzureWebJobsSecretStorageType"]);
        Assert.Equal("/azure-functions-host/Secrets/host.json", env["Leuko__ApiKeysFile"]);
    }

    [Fact]
    public void EachClientHasTheRolesOfTheAccessDesign()
    {
        var env = ContainerEnv();
        var clients = env.Where(e => e.Key.StartsWith("Leuko__ApiClients__", StringComparison.Ordinal))
            .ToDictionary(e => e.Key["Leuko__ApiClients__".Length..], e => e.Value.Split(',').Order().ToArray());
        Assert.Equal(ClientKeyParameters.Keys.Order(), clients.Keys.Order()); // every key has roles, no role set lacks a key
        Assert.Equal(["read", "subscribe"], clients["lims"]);
        Assert.Equal(["read", "submit"], clients["uploader"]);
        Assert.Equal(["read", "review"], clients["reviewer"]);
        Assert.Equal(["admin"], clients["admin"]);
        string[] known = ["read", "submit", "subscribe", "review", "admin"];
        Assert.All(clients.Values.SelectMany(r => r), r => Assert.Contains(r, known));
    }

    [Fact]
    public void TheWebhookSecretsKeyIsAnRsaWrapKeyInAVaultWithRbacAndPurgeProtection()
    {
        var kv = Module("keyVault");
        var vault = Resources(kv, "Microsoft.KeyVault/vaults").Single()["properties"]!;
        Assert.True(vault["enableRbacAuthorization"]!.GetValue<bool>());
        Assert.True(vault["enablePurgeProtection"]!.GetValue<bool>());
        Assert.Null(vault["accessPolicies"]);

        var key = Resources(kv, "Microsoft.KeyVault/vaults/keys").Single();
        Assert.Equal("webhook-secrets", Text(kv["variables"]!["keyName"]));
        Assert.Equal("RSA", Text(key["properties"]!["kty"]));
        Assert.Equal(["unwrapKey", "wrapKey"], key["properties"]!["keyOps"]!.AsArray().Select(Text).Order());

        // The app is given the versionless key URI (new secrets wrap with the current version; each records its own).
        var keyUri = Text(kv["outputs"]!["keyUri"]!["value"]);
        Assert.EndsWith(".keyUri]", keyUri);
        Assert.DoesNotContain("keyUriWithVersion", keyUri);
        Assert.Equal("[reference('keyVault').outputs.keyUri.value]", ModuleArguments("app")["kekUri"]);
        Assert.Equal("[parameters('kekUri')]", ContainerEnv()["Leuko__SecretsKeyUri"]);
    }

    [Fact]
    public void NoKeyIsAnOutput()
    {
        // Deployment outputs are readable by anyone who can read the deployment.
        foreach (var template in Templates(Main).Append(Events))
        {
            foreach (var (name, output) in template["outputs"]?.AsObject() ?? [])
            {
                var value = Text(output!["value"]);
                Assert.False(KeyParameters.Any(k => value.Contains(k, StringComparison.OrdinalIgnoreCase)), $"output {name} is built from a key: {value}");
                Assert.NotEqual("securestring", Text(output["type"]));
            }
        }
    }
}
