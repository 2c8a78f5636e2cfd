using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Webhooks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>The webhook sender stage as a hosted service: consumes the delivery queue, apart from the pipeline's own queue.</summary>
public sealed class WebhookWorker(WebhookQueue queue, WebhookSender sender, ILogger<WebhookWorker> logger) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        queue.Transport.RunAsync(async (message, ct) =>
        {
            var result = await sender.HandleAsync(message, ct);
            if (result.Outcome == MessageOutcome.DeadLetter)
            {
                logger.LogWarning("webhook delivery {MessageId} dead-lettered: {Reason}", message.MessageId, result.Reason);
            }

            return result;
        }, stoppingToken);
}
