using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// Issue 12 item 7: the Event Grid subscriptions that feed the blob triggers retry explicitly and dead-letter what
/// they cannot deliver into a container the topic's identity may write, and the replay script posts dead-lettered
/// events back to the right function exactly as Event Grid would (run against a real HTTP receiver here).
/// </summary>
public class EventDeliveryTests
{
    private static readonly Dictionary<string, string> FunctionOfContainer = new()
    {
        ["uploads"] = "ImageUploaded",
        ["archives"] = "ArchiveUploaded",
    };

    [Fact]
    public void EachUploadSubscriptionHasAnExplicitRetryPolicyAndADeadLetterContainer()
    {
        var subscriptions = Resources(Events, "Microsoft.EventGrid/systemTopics/eventSubscriptions").ToList();
        Assert.Single(subscriptions); // one resource, copied per container
        var subscription = subscriptions[0];
        Assert.Equal("[length(variables('subscriptions'))]", Text(subscription["copy"]!["count"]));
        var containers = Events["variables"]!["subscriptions"]!.AsArray()
            .ToDictionary(s => Text(s!["container"]), s => Text(s!["function"]));
        Assert.Equal(FunctionOfContainer, containers);

        var properties = subscription["properties"]!;
        var retry = Events["variables"]!["retryPolicy"]!;
        Assert.Equal("[variables('retryPolicy')]", Text(properties["retryPolicy"]));
        Assert.InRange(retry["maxDeliveryAttempts"]!.GetValue<int>(), 2, 30);
        Assert.InRange(retry["eventTimeToLiveInMinutes"]!.GetValue<int>(), 60, 1440);

        var deadLetter = properties["deadLetterWithResourceIdentity"]!;
        Assert.Equal("SystemAssigned", Text(deadLetter["identity"]!["type"]));
        Assert.Equal("StorageBlob", Text(deadLetter["deadLetterDestination"]!["endpointType"]));
        var destination = deadLetter["deadLetterDestination"]!["properties"]!;
        Assert.Equal("[resourceId('Microsoft.Storage/storageAccounts', parameters('storageName'))]", Text(destination["resourceId"]));
        Assert.Equal("[parameters('deadLetterContainer')]", Text(destination["blobContainerName"]));
        Assert.Equal("deadletters", Text(Events["parameters"]!["deadLetterContainer"]!["defaultValue"]));

        // Only blob creations in the container each function is for, to the Functions host's blob extension webhook.
        Assert.Equal(["Microsoft.Storage.BlobCreated"], properties["filter"]!["includedEventTypes"]!.AsArray().Select(Text));
        Assert.Contains("/blobServices/default/containers/{0}/", Text(properties["filter"]!["subjectBeginsWith"]));
        var url = Text(properties["destination"]!["properties"]!["endpointUrl"]);
        Assert.Contains("/runtime/webhooks/blobs?functionName=Host.Functions.{1}&code={2}", url);
        Assert.Contains("parameters('blobsExtensionKey')", url);
        Assert.Equal("securestring", Text(Events["parameters"]!["blobsExtensionKey"]!["type"]));
    }

    [Fact]
    public void TheDeadLetterContainerExistsAndOnlyTheTopicsIdentityWritesToIt()
    {
        var storage = Module("storage");
        Assert.Equal("deadletters", Text(storage["variables"]!["deadLetterContainer"]));
        Assert.Contains("[variables('deadLetterContainer')]", storage["variables"]!["containers"]!.AsArray().Select(Text));

        var topic = Resources(Module("events"), "Microsoft.EventGrid/systemTopics").Single();
        Assert.Equal("SystemAssigned", Text(topic["identity"]!["type"]));

        // The hook deploys infra/events.bicep into the resource group with the container main.bicep outputs.
        var hook = File.ReadAllText(Path.Combine(Root, "infra", "hooks", "postdeploy.sh"));
        Assert.Matches(@"az deployment group create [^\n]*--template-file ""\$here/\.\./events\.bicep""", hook);
        Assert.Contains("AZURE_DEADLETTER_CONTAINER", hook);
        Assert.Equal("[reference('storage').outputs.deadLetterContainer.value]", Text(Main["outputs"]!["AZURE_DEADLETTER_CONTAINER"]!["value"]));
        // The function names the webhook URL names are the function app's (its [Function] attributes).
        var functions = File.ReadAllText(Path.Combine(Root, "functions", "Leuko.Functions", "BlobFunctions.cs"));
        Assert.All(FunctionOfContainer.Values, f => Assert.Contains($"[Function(\"{f}\")]", functions));
    }

    /// <summary>A dead-letter blob as Event Grid writes it: the events, each with its delivery fields added.</summary>
    private static string DeadLetterFile(string folder, params (string Id, string Container, string Blob)[] events)
    {
        var directory = Path.Combine(folder, "EVGT-TEST", "UPLOADS-BLOB-CREATED", "2026", "12", "01", "13");
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, $"{Guid.NewGuid()}.json");
        var array = new JsonArray(events.Select(e => (JsonNode)new JsonObject
        {
            ["id"] = e.Id,
            ["topic"] = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sttest",
            ["subject"] = $"/blobServices/default/containers/{e.Container}/blobs/{e.Blob}",
            ["eventType"] = "Microsoft.Storage.BlobCreated",
            ["eventTime"] = "2026-12-01T13:00:00.0000000Z",
            ["data"] = new JsonObject { ["api"] = "PutBlob", ["url"] = $"https://sttest.blob.core.windows.net/{e.Container}/{Uri.EscapeDataString(e.Blob)}" },
            ["dataVersion"] = "",
            ["metadataVersion"] = "1",
            ["deadLetterReason"] = "MaxDeliveryAttemptsExceeded",
            ["deliveryAttempts"] = 30,
            ["lastDeliveryOutcome"] = "TimedOut",
            ["publishTime"] = "2026-12-01T13:00:01.0000000Z",
            ["lastDeliveryAttemptTime"] = "2026-12-02T12:59:00.0000000Z",
        }).ToArray());
        File.WriteAllText(file, array.ToJsonString());
        return file;
    }

    private static (int Exit, string Output) Replay(string folder, string endpoint, string code) =>
        Run("sh", Root, [Path.Combine("infra", "hooks", "replay-deadletters.sh"), "--from", folder, "--endpoint", endpoint, "--code", code]);

    [Fact]
    public void TheReplayScriptPostsEachDeadLetteredEventToItsFunctionAsEventGridWould()
    {
        var folder = Directory.CreateTempSubdirectory("leuko-deadletters-").FullName;
        try
        {
            DeadLetterFile(folder, ("e-1", "uploads", "ward 3/field1.jpg"), ("e-2", "archives", "batch.zip"));
            using var receiver = new LocalHttpReceiver(_ => (202, new Dictionary<string, string>()));
            var (exit, output) = Replay(folder, receiver.BaseUrl + "/", "k3y/with+chars");
            Assert.True(exit == 0, output);
            Assert.Contains("2 replayed, 0 failed, 0 skipped", output);

            var requests = receiver.Requests.ToList();
            Assert.Equal(2, requests.Count);
            foreach (var (id, function) in new[] { ("e-1", "ImageUploaded"), ("e-2", "ArchiveUploaded") })
            {
                var request = Assert.Single(requests, r => r.Body.Contains($"\"{id}\""));
                Assert.Equal("POST", request.Method);
                Assert.Equal($"/runtime/webhooks/blobs?functionName=Host.Functions.{function}&code=k3y%2Fwith%2Bchars", request.PathAndQuery);
                Assert.Equal("Notification", request.Headers["aeg-event-type"]);
                Assert.StartsWith("application/json", request.Headers["Content-Type"]);

                // An array of the one event, as delivered the first time: Event Grid's dead-letter fields removed.
                var events = JsonNode.Parse(request.Body)!.AsArray();
                var e = Assert.Single(events)!.AsObject();
                Assert.Equal(id, Text(e["id"]));
                Assert.Equal("Microsoft.Storage.BlobCreated", Text(e["eventType"]));
                Assert.StartsWith("/blobServices/default/containers/", Text(e["subject"]));
                Assert.NotNull(e["data"]!["url"]);
                Assert.All(["deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "publishTime", "lastDeliveryAttemptTime"],
                    field => Assert.False(e.ContainsKey(field), $"{field} was posted"));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void TheReplayScriptFailsWhenTheAppRefusesAnEventAndSkipsEventsOfOtherContainers()
    {
        var folder = Directory.CreateTempSubdirectory("leuko-deadletters-").FullName;
        try
        {
            DeadLetterFile(folder, ("e-ok", "uploads", "a.jpg"), ("e-refused", "uploads", "b.jpg"), ("e-other", "crops", "c.png"));
            using var receiver = new LocalHttpReceiver(r => (r.Body.Contains("e-refused") ? 503 : 200, new Dictionary<string, string>()));
            var (exit, output) = Replay(folder, receiver.BaseUrl, "key");
            Assert.Equal(1, exit);
            Assert.Contains("1 replayed, 1 failed, 1 skipped", output);
            Assert.Matches(new Regex(@"containers/uploads/blobs/b\.jpg -> ImageUploaded failed \(503\)"), output);
            Assert.Equal(2, receiver.Requests.Count); // the crops/ event is not posted anywhere
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
