using Leuko.Pipeline.Secrets;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Tests;

/// <summary>Webhook secrets sealed with a local key file of the test run's own, never the user's default one.</summary>
public static class TestSecrets
{
    private static readonly Lazy<WebhookSecrets> SharedSecrets = new(() => Create(NewKeyFile()));

    /// <summary>One instance for the tests that are not about keys.</summary>
    public static WebhookSecrets Shared => SharedSecrets.Value;

    /// <summary>A path where no key file is yet, in a fresh temporary folder.</summary>
    public static string NewKeyFile() => Path.Combine(Path.GetTempPath(), "leuko-tests", Guid.NewGuid().ToString("N"), "webhook-secrets.key");

    public static WebhookSecrets Create(string keyFile, TimeSpan? cacheFor = null) =>
        new(new EnvelopeEncryption(LocalKeyEncryptionKey.Open(keyFile), cacheFor));
}
