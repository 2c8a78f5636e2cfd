using Leuko.Pipeline.Webhooks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>
/// At start-up, before the host serves: proves the key-encryption key wraps and unwraps (so a host without a usable key
/// fails now, with the reason, not at its first subscription), then seals the secrets earlier versions stored in plain text.
/// </summary>
internal sealed class WebhookSecretsInitializer(
    WebhookSecrets secrets, IWebhookStore store, ILogger<WebhookSecretsInitializer> log, TimeProvider? time = null) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await secrets.CheckAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"webhook secrets cannot be encrypted with {secrets.Description}: {e.Message}", e);
        }

        var sealedCount = await secrets.SealPlainTextAsync(store, (time ?? TimeProvider.System).GetUtcNow(), cancellationToken);
        log.LogInformation("webhook secrets: encrypted with {Key}{Sealed}", secrets.Description,
            sealedCount > 0 ? $"; sealed the plain-text secrets of {sealedCount} subscriptions written by an earlier version" : "");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
