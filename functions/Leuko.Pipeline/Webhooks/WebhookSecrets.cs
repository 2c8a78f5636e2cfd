using Leuko.Pipeline.Secrets;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// Webhook signing secrets at rest: made and sealed here when a subscription is created or rotated, opened here when a
/// delivery is signed, and nowhere else. Stores only ever hold <see cref="SealedSecret"/>s, each sealed for its
/// subscription (its id is the encryption's context, so a sealed secret copied onto another subscription does not open).
/// </summary>
public sealed class WebhookSecrets(EnvelopeEncryption envelope)
{
    /// <summary>What wraps new secrets' data keys, for the start-up log.</summary>
    public string Description => envelope.Key.Description;

    /// <summary>A fresh secret for <paramref name="subscriptionId"/>: the secret, to show once, and what is stored.</summary>
    public async Task<(string Secret, WebhookSecret Stored)> NewAsync(string subscriptionId, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var secret = WebhookSigner.NewSecret();
        return (secret, new WebhookSecret(await envelope.SealAsync(secret, Context(subscriptionId), cancellationToken), expiresAt));
    }

    /// <summary>The secrets that sign a delivery now: the current one and, during a rotation's grace period, the previous one.</summary>
    /// <exception cref="SecretDecryptionException">A secret does not open (another KEK, altered, or sealed for another subscription).</exception>
    public async Task<IReadOnlyList<string>> SigningSecretsAsync(WebhookSubscription subscription, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var secrets = new List<string>();
        foreach (var secret in subscription.Secrets.Where(s => Live(s, now)))
        {
            secrets.Add(secret.Sealed is { } sealedSecret
                ? await envelope.OpenAsync(sealedSecret, Context(subscription.Id), cancellationToken)
                : secret.PlainText ?? throw new SecretDecryptionException($"a secret of {subscription.Id} is neither sealed nor plain text (the row was altered)"));
        }

        return secrets;
    }

    /// <summary>
    /// Seals every secret that an earlier version stored in plain text, and drops those already expired; returns the
    /// subscriptions changed. Run by every host at start-up, before it serves. Writes are conditional (a rotation or
    /// delete meanwhile stands), so hosts starting together do no harm.
    /// </summary>
    public async Task<int> SealPlainTextAsync(IWebhookStore store, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var changed = 0;
        foreach (var subscription in await store.ListAsync(cancellationToken))
        {
            if (!subscription.Secrets.Any(s => s.PlainText is not null))
            {
                continue;
            }

            var sealedSecrets = new Dictionary<string, SealedSecret>();
            foreach (var secret in subscription.Secrets.Where(s => s.PlainText is not null && Live(s, now)).Select(s => s.PlainText!).Distinct())
            {
                sealedSecrets[secret] = await envelope.SealAsync(secret, Context(subscription.Id), cancellationToken);
            }

            // Against the subscription as it is now: a secret rotated in meanwhile is sealed already, one rotated out is gone.
            var updated = await store.UpdateAsync(subscription.Id, s => s with
            {
                Secrets = s.Secrets
                    .Where(x => x.PlainText is null || Live(x, now))
                    .Select(x => x.PlainText is { } p && sealedSecrets.TryGetValue(p, out var sealedSecret) ? new WebhookSecret(sealedSecret, x.ExpiresAt) : x)
                    .ToList(),
            }, cancellationToken);
            changed += updated is null ? 0 : 1;
        }

        return changed;
    }

    /// <summary>Seals and opens a throw-away secret: proves at start-up that the key-encryption key wraps and unwraps.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken)
    {
        var probe = WebhookSigner.NewSecret();
        var opened = await envelope.OpenAsync(await envelope.SealAsync(probe, "start-up check", cancellationToken), "start-up check", cancellationToken);
        if (opened != probe)
        {
            throw new SecretDecryptionException($"{Description} did not give back the data key it wrapped");
        }
    }

    private static bool Live(WebhookSecret secret, DateTimeOffset now) => secret.ExpiresAt is null || secret.ExpiresAt > now;

    private static string Context(string subscriptionId) => $"webhook-subscription:{subscriptionId}";
}
