using Leuko.Azure.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;

namespace Leuko.Functions.Tests;

/// <summary>
/// Webhook subscriptions are their creator's (issue 12, item 2), through the function app's functions, on the
/// in-memory store and on Azurite's tables (the <c>Owner</c> column and the query by it).
/// </summary>
[Collection("Azurite")]
public sealed class OwnershipTests
{
    public static TheoryData<string> Stores => ["memory", "azurite"];

    private static async Task<ApiRig> RigAsync(string store, int max = 20)
    {
        if (store == "memory")
        {
            return new ApiRig(maxSubscriptionsPerClient: max);
        }

        await Azurite.RequireAsync();
        var tables = new TableWebhookStore(Azurite.Tables);
        await tables.InitializeAsync(CancellationToken.None);
        return new ApiRig(tables, max);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task AClientListsOnlyItsOwnAndTheAdminListsAll(string store)
    {
        using var rig = await RigAsync(store);
        var mine = await rig.SubscribeAsync("lims");
        var theirs = await rig.SubscribeAsync("lab2");

        var listed = await rig.CallAsync("ListWebhooks", "GET", rig.Keys["lims"]);
        Assert.Equal([mine], listed.Json.AsArray().Select(w => w!["id"]!.GetValue<string>()));
        Assert.Equal(rig.Name("lims"), listed.Json[0]!["owner"]!.GetValue<string>());

        var all = (await rig.CallAsync("ListWebhooks", "GET", rig.Keys["admin"])).Json.AsArray().Select(w => w!["id"]!.GetValue<string>()).ToList();
        Assert.Contains(mine, all);
        Assert.Contains(theirs, all);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task AnotherClientsSubscriptionIsNotFoundAndStaysUntouched(string store)
    {
        using var rig = await RigAsync(store);
        var id = await rig.SubscribeAsync("lims");
        var before = (await rig.Store.GetAsync(id, CancellationToken.None))!;

        // lab2 holds the subscribe role, but the subscription is lims's: answered as one that does not exist.
        var key = rig.Keys["lab2"];
        foreach (var (function, method) in new[] { ("DeleteWebhook", "DELETE"), ("RotateWebhookSecret", "POST"), ("WebhookDeliveries", "GET") })
        {
            var answer = await rig.CallAsync(function, method, key, id: id);
            Assert.Equal($"no webhook '{id}'", answer.Problem(404)["detail"]!.GetValue<string>());
            Assert.DoesNotContain("whsec_", answer.Text);
        }

        var after = (await rig.Store.GetAsync(id, CancellationToken.None))!;
        Assert.Equal(before.ETag, after.ETag); // not rotated, not deleted
        Assert.Equal(before.Secrets.Select(s => s.Sealed), after.Secrets.Select(s => s.Sealed));

        // Its owner can.
        Assert.Equal(200, (await rig.CallAsync("WebhookDeliveries", "GET", rig.Keys["lims"], id: id)).Status);
        Assert.StartsWith("whsec_", (await rig.CallAsync("RotateWebhookSecret", "POST", rig.Keys["lims"], id: id)).Json["secret"]!.GetValue<string>());
        Assert.Equal(204, (await rig.CallAsync("DeleteWebhook", "DELETE", rig.Keys["lims"], id: id)).Status);
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task TheAdminManagesEveryClientsSubscriptions(string store)
    {
        using var rig = await RigAsync(store);
        var id = await rig.SubscribeAsync("lims");

        Assert.Equal(200, (await rig.CallAsync("WebhookDeliveries", "GET", rig.Keys["admin"], id: id)).Status);
        Assert.Equal(200, (await rig.CallAsync("RotateWebhookSecret", "POST", rig.Keys["admin"], id: id)).Status);
        Assert.Equal(204, (await rig.CallAsync("DeleteWebhook", "DELETE", rig.Keys["admin"], id: id)).Status);
        Assert.Null(await rig.Store.GetAsync(id, CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task EachClientHasItsOwnCap(string store)
    {
        using var rig = await RigAsync(store, max: 2);
        var first = await rig.SubscribeAsync("lims");
        await rig.SubscribeAsync("lims");

        var refused = await rig.CallAsync("CreateWebhook", "POST", rig.Keys["lims"], "{\"url\": \"http://127.0.0.1:9/hook\"}");
        var problem = refused.Problem(409);
        Assert.Equal("too many subscriptions", problem["title"]!.GetValue<string>());
        Assert.Contains("has 2 subscriptions", problem["detail"]!.GetValue<string>());
        Assert.Equal(2, (await rig.Store.ListByOwnerAsync(rig.Name("lims"), CancellationToken.None)).Count);

        // Another client's count is its own; a deleted subscription frees its place.
        await rig.SubscribeAsync("lab2");
        Assert.Equal(204, (await rig.CallAsync("DeleteWebhook", "DELETE", rig.Keys["lims"], id: first)).Status);
        await rig.SubscribeAsync("lims");
    }

    [Fact]
    public async Task TheCapHoldsUnderConcurrentCreations()
    {
        using var rig = await RigAsync("memory", max: 3);

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ =>
            rig.CallAsync("CreateWebhook", "POST", rig.Keys["lims"], "{\"url\": \"http://127.0.0.1:9/hook\"}")));

        Assert.Equal(3, answers.Count(a => a.Status == 201));
        Assert.Equal(9, answers.Count(a => a.Status == 409));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task ASubscriptionWithoutAnOwnerIsTheAdminsAlone(string store)
    {
        // Made before subscriptions had owners: no Owner column.
        using var rig = await RigAsync(store);
        var id = "wh_legacy" + Guid.NewGuid().ToString("N")[..12];
        await rig.Store.CreateAsync(new WebhookSubscription(id, "https://lims.example.org/hook", WebhookEvents.All, null, null,
            [new WebhookSecret(null, null) { PlainText = WebhookSigner.NewSecret() }], null, 0, DateTimeOffset.UtcNow), CancellationToken.None);

        Assert.DoesNotContain(id, (await rig.CallAsync("ListWebhooks", "GET", rig.Keys["lims"])).Text);
        Assert.Equal(404, (await rig.CallAsync("RotateWebhookSecret", "POST", rig.Keys["lims"], id: id)).Status);
        Assert.Contains(id, (await rig.CallAsync("ListWebhooks", "GET", rig.Keys["admin"])).Text);
        Assert.Equal(204, (await rig.CallAsync("DeleteWebhook", "DELETE", rig.Keys["admin"], id: id)).Status);
    }
}
