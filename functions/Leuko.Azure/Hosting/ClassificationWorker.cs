using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>
/// The classification consumer as a hosted service of the function app (the Service Bus Functions extension is not
/// available here) and of <c>leuko serve</c>: receives from the configured transport and runs the classification stage.
/// </summary>
public sealed class ClassificationWorker(IMessageConsumer consumer, ClassificationStage stage, ILogger<ClassificationWorker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("classification consumer started ({Transport})", consumer.GetType().Name);
        await consumer.RunAsync(async (message, ct) =>
        {
            var result = await stage.HandleAsync(message, ct);
            if (result.Outcome != MessageOutcome.Complete)
            {
                logger.LogWarning("message {MessageId} (delivery {Delivery}): {Outcome}: {Reason}", message.MessageId, message.DeliveryCount, result.Outcome, result.Reason);
            }

            return result;
        }, stoppingToken);
    }
}
