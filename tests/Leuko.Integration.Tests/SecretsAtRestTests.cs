using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using Leuko.Azure.Hosting;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Integration.Tests;

/// <summary>
/// Webhook signing secrets at rest in Table Storage (Azurite), with the pipeline wired as <c>leuko serve</c> wires it
/// and its local key file: what anyone with table read access sees, and what the sender still signs with.
/// </summary>
[Collection("Azurite")]
public class SecretsAtRestTests
{
    private static readonly WebhookCaller Lims = new("lims", IsAdmin: false);

    [Fact]
    public async Task ADumpOfEveryTableAfterCreatingAndRotatingSubscriptionsHoldsNoSecret()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var webhooks = pipeline.Services.GetRequiredService<WebhookService>();
        await using var receiver = await WebhookReceiver.StartAsync();
        var shown = new List<string>();
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            var created = await webhooks.CreateAsync(new WebhookRequest(receiver.Url, null, null, $"uploads/ward-{i}/"), Lims, CancellationToken.None);
            ids.Add(created.Subscription.Id);
            shown.Add(created.Secret);
        }

        var first = new List<string> { shown[0] };
        foreach (var id in new[] { ids[0], ids[0], ids[1] })
        {
            var rotated = (await webhooks.RotateSecretAsync(id, Lims, CancellationToken.None))!;
            shown.Add(rotated.Secret);
            if (id == ids[0])
            {
                first.Add(rotated.Secret);
            }
        }

        // Deliveries are still signed with every live secret: the first subscription's two rotations are in their grace period.
        await DeliverAsync(pipeline, ids[0]);
        var request = Assert.Single(receiver.Requests);
        Assert.Equal(3, request.Signature.Split(' ').Length);
        Assert.All(first, secret => Assert.True(WebhookReceiver.SignedWith(request, secret)));

        // Every property of every entity of every table, as anyone with table read access sees them.
        var dump = await DumpAsync();
        Assert.All(ids, id => Assert.Contains(id, dump)); // the subscriptions are in it, sealed
        Assert.Contains("\"Ciphertext\"", dump);
        var keyFile = pipeline.Options.SecretsKeyFile!;
        var kek = File.ReadAllLines(keyFile).Where(l => !l.StartsWith('#')).ToList();
        foreach (var form in shown.SelectMany(SecretForms.Of).Concat(kek).Concat(kek.Select(k => Convert.ToHexString(Convert.FromBase64String(k)))))
        {
            Assert.DoesNotContain(form, dump, StringComparison.OrdinalIgnoreCase);
        }

        await ForgetAsync(ids);
    }

    /// <summary>
    /// Deletes the test's subscriptions: one left behind on the shared Azurite would be sent every later test's events,
    /// at a receiver long gone.
    /// </summary>
    private static async Task ForgetAsync(IEnumerable<string> ids)
    {
        var store = new TableWebhookStore(Azurite.Tables);
        foreach (var id in ids)
        {
            await store.DeleteAsync(id, CancellationToken.None);
        }
    }

    [Fact]
    public async Task PlainTextSecretsWrittenByAnEarlierVersionAreSealedAtStartUpAndStillSign()
    {
        await Azurite.RequireAsync();
        var store = new TableWebhookStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var id = "wh_legacy" + Guid.NewGuid().ToString("N")[..12];
        var secret = WebhookSigner.NewSecret();
        await using var receiver = await WebhookReceiver.StartAsync();
        var table = Azurite.Tables.GetTableClient(TableWebhookStore.WebhooksTable);

        // The row as the version before encryption wrote it.
        await table.AddEntityAsync(new TableEntity("webhook", id)
        {
            ["Url"] = receiver.Url,
            ["Types"] = JsonSerializer.Serialize(WebhookEvents.All),
            ["Secrets"] = $"[{{\"Value\":\"{secret}\",\"ExpiresAt\":null}}]",
            ["Failures"] = 0,
            ["Created"] = DateTimeOffset.UtcNow,
        });

        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);

        var row = Flatten((await table.GetEntityAsync<TableEntity>("webhook", id)).Value);
        foreach (var form in SecretForms.Of(secret))
        {
            Assert.DoesNotContain(form, row, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Contains("\"Sealed\"", row);
        await DeliverAsync(pipeline, id);
        Assert.True(WebhookReceiver.SignedWith(Assert.Single(receiver.Requests), secret));
        await ForgetAsync([id]);
    }

    [Fact]
    public async Task AfterTheKeyIsRotatedRowsItSealedBeforeStillOpen()
    {
        var keyFile = TestSecrets.NewKeyFile();
        await using var receiver = await WebhookReceiver.StartAsync();
        string id, before;
        await using (var first = await PipelineHarness.StartAsync(watch: false, consume: false, secretsKeyFile: keyFile))
        {
            var created = await first.Services.GetRequiredService<WebhookService>().CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
            (id, before) = (created.Subscription.Id, created.Secret);
        }

        // Rotation of the local key as the README says: append a key, restart. Then the subscription's secret is rotated.
        File.AppendAllText(keyFile, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n");
        await using var second = await PipelineHarness.StartAsync(watch: false, consume: false, secretsKeyFile: keyFile);
        var after = (await second.Services.GetRequiredService<WebhookService>().RotateSecretAsync(id, Lims, CancellationToken.None))!.Secret;

        var stored = (await second.Services.GetRequiredService<IWebhookStore>().GetAsync(id, CancellationToken.None))!;
        Assert.Equal(2, stored.Secrets.Select(s => s.Sealed!.KekId).Distinct().Count()); // new secret under the new key, the old under the old
        await DeliverAsync(second, id);
        var request = Assert.Single(receiver.Requests);
        Assert.True(WebhookReceiver.SignedWith(request, before));
        Assert.True(WebhookReceiver.SignedWith(request, after));
        await ForgetAsync([id]);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task AHostWhoseKeyFileOthersCanReadDoesNotStartAndSaysWhy()
    {
        await Azurite.RequireAsync();
        var keyFile = TestSecrets.NewKeyFile();
        Leuko.Pipeline.Secrets.LocalKeyEncryptionKey.Open(keyFile);
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var options = new PipelineOptions
        {
            Storage = Azurite.ConnectionString, Transport = Transports.StorageQueue, Queue = Azurite.Unique("refused"), SecretsKeyFile = keyFile,
        };
        options.WebhookQueue = options.Queue + "-webhooks";
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddLeukoPipeline(options, runConsumer: false);
        using var host = builder.Build();

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());
        Assert.Contains($"chmod 600 {keyFile}", e.Message);
    }

    /// <summary>One delivery of an event to <paramref name="subscriptionId"/>, through the pipeline's own sender.</summary>
    private static async Task DeliverAsync(PipelineHarness pipeline, string subscriptionId)
    {
        var delivery = new WebhookDelivery(subscriptionId, "msg_" + Guid.NewGuid().ToString("N")[..12], WebhookEvents.ImageCompleted, "{\"type\":\"image.completed\"}", 1);
        var result = await pipeline.Services.GetRequiredService<WebhookSender>().HandleAsync(
            new ReceivedMessage("m1", JsonSerializer.SerializeToUtf8Bytes(delivery, PipelineJson.Options), 1, new Dictionary<string, string>()), CancellationToken.None);
        Assert.Equal(MessageOutcome.Complete, result.Outcome);
    }

    private static async Task<string> DumpAsync()
    {
        var dump = new StringBuilder();
        await foreach (var table in Azurite.Tables.QueryAsync())
        {
            await foreach (var entity in Azurite.Tables.GetTableClient(table.Name).QueryAsync<TableEntity>())
            {
                dump.Append(table.Name).Append(' ').AppendLine(Flatten(entity));
            }
        }

        return dump.ToString();
    }

    private static string Flatten(TableEntity entity) =>
        string.Join(" ", entity.Select(p => $"{p.Key}={(p.Value is byte[] bytes ? Convert.ToBase64String(bytes) : Convert.ToString(p.Value, System.Globalization.CultureInfo.InvariantCulture))}"));
}
