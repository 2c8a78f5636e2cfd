using System.Text.Json;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Secrets;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;

namespace Leuko.Pipeline.Tests;

/// <summary>Webhook secrets as stored: sealed for their subscription, and the plain-text ones of earlier versions sealed at start-up.</summary>
public sealed class WebhookSecretsTests
{
    [Fact]
    public async Task ASubscriptionsStoredSecretsAreSealedAndSignAsTheSecretsShown()
    {
        var store = new InMemoryWebhookStore();
        var service = new WebhookService(store, TestSecrets.Shared, WebhookOptions.Default with { AllowLoopback = true });
        var created = await service.CreateAsync(new WebhookRequest("http://127.0.0.1:9/hook", null, null, null), new WebhookCaller("lims", IsAdmin: false), CancellationToken.None);
        var rotated = (await service.RotateSecretAsync(created.Subscription.Id, new WebhookCaller("lims", IsAdmin: false), CancellationToken.None))!;

        var stored = (await store.GetAsync(created.Subscription.Id, CancellationToken.None))!;
        Assert.All(stored.Secrets, s => Assert.Null(s.PlainText));
        Assert.All(stored.Secrets, s => Assert.NotNull(s.Sealed));
        var json = JsonSerializer.Serialize(stored.Secrets);
        Assert.DoesNotContain("\"Value\"", json);
        foreach (var form in SecretForms.Of(created.Secret).Concat(SecretForms.Of(rotated.Secret)))
        {
            Assert.DoesNotContain(form, json, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Equal([rotated.Secret, created.Secret], await TestSecrets.Shared.SigningSecretsAsync(stored, DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task PlainTextSecretsOfEarlierVersionsAreSealedAndExpiredOnesDropped()
    {
        // As an earlier version stored them: {"Value": "whsec_...", "ExpiresAt": ...}.
        var now = DateTimeOffset.UtcNow;
        string current = WebhookSigner.NewSecret(), previous = WebhookSigner.NewSecret(), expired = WebhookSigner.NewSecret();
        var legacy = JsonSerializer.Deserialize<List<WebhookSecret>>(JsonSerializer.Serialize(new object[]
        {
            new { Value = current, ExpiresAt = (DateTimeOffset?)null },
            new { Value = previous, ExpiresAt = (DateTimeOffset?)now.AddHours(3) },
            new { Value = expired, ExpiresAt = (DateTimeOffset?)now.AddHours(-1) },
        }))!;
        Assert.Equal([current, previous, expired], legacy.Select(s => s.PlainText));
        var store = new InMemoryWebhookStore();
        await store.CreateAsync(new WebhookSubscription("wh_old", "https://lims.example.org/hook", WebhookEvents.All, null, null, legacy, null, 0, now), CancellationToken.None);
        await store.CreateAsync(new WebhookSubscription("wh_new", "https://lims.example.org/hook", WebhookEvents.All, null, null,
            [(await TestSecrets.Shared.NewAsync("wh_new", null, CancellationToken.None)).Stored], null, 0, now), CancellationToken.None);

        Assert.Equal(1, await TestSecrets.Shared.SealPlainTextAsync(store, now, CancellationToken.None));

        var sealedRow = (await store.GetAsync("wh_old", CancellationToken.None))!;
        Assert.Equal(2, sealedRow.Secrets.Count);
        Assert.All(sealedRow.Secrets, s => Assert.Null(s.PlainText));
        Assert.Equal([null, now.AddHours(3)], sealedRow.Secrets.Select(s => s.ExpiresAt));
        Assert.Equal([current, previous], await TestSecrets.Shared.SigningSecretsAsync(sealedRow, now, CancellationToken.None));
        Assert.Equal(0, await TestSecrets.Shared.SealPlainTextAsync(store, now, CancellationToken.None)); // nothing left to seal
    }

    [Fact]
    public async Task AnUnsealedLegacySecretStillSignsUntilItIsSealed()
    {
        // Written by an older host during a rollout, after this one's start-up sealing: deliveries go on being signed.
        var secret = WebhookSigner.NewSecret();
        var subscription = new WebhookSubscription("wh_x", "https://lims.example.org/hook", WebhookEvents.All, null, null,
            [new WebhookSecret(null, null) { PlainText = secret }], null, 0, DateTimeOffset.UtcNow);

        Assert.Equal([secret], await TestSecrets.Shared.SigningSecretsAsync(subscription, DateTimeOffset.UtcNow, CancellationToken.None));
    }

    [Fact]
    public async Task ADeliveryWhoseSecretDoesNotOpenFailsWithTheReasonAndIsNotRetried()
    {
        // The row's secret was sealed with a key this host does not hold (another key file).
        var store = new InMemoryWebhookStore();
        var elsewhere = TestSecrets.Create(TestSecrets.NewKeyFile());
        await store.CreateAsync(new WebhookSubscription("wh_1", "http://127.0.0.1:9/hook", WebhookEvents.All, null, null,
            [(await elsewhere.NewAsync("wh_1", null, CancellationToken.None)).Stored], null, 0, DateTimeOffset.UtcNow), CancellationToken.None);
        var options = WebhookOptions.Default with { AllowLoopback = true };
        var retries = new InMemoryTransport();
        var sender = new WebhookSender(store, TestSecrets.Shared, retries, WebhookSender.CreateHttpClient(options), options);
        var delivery = new WebhookDelivery("wh_1", "msg_1", WebhookEvents.ImageCompleted, "{}", 1);

        var result = await sender.HandleAsync(
            new ReceivedMessage("m1", JsonSerializer.SerializeToUtf8Bytes(delivery, PipelineJson.Options), 1, new Dictionary<string, string>()), CancellationToken.None);

        Assert.Equal(MessageOutcome.DeadLetter, result.Outcome);
        var attempt = Assert.Single(await store.GetAttemptsAsync("wh_1", 10, CancellationToken.None));
        Assert.Equal("failed", attempt.Outcome);
        Assert.StartsWith("cannot sign: the data key was wrapped by key local:", attempt.Error);
        Assert.Equal(0, retries.Pending);
    }
}
