namespace Leuko.Pipeline.Messaging;

/// <summary>
/// A message to send: its id (the broker's duplicate-detection key), a small JSON body, string properties (e.g.
/// traceparent) and, for a delayed retry, the time before which it must not be delivered.
/// </summary>
public sealed record OutgoingMessage(string MessageId, ReadOnlyMemory<byte> Body, IReadOnlyDictionary<string, string> Properties)
{
    public DateTimeOffset? NotBefore { get; init; }
}

/// <summary>A message received under a lock (peek-lock, or a queue message's invisibility): settle it exactly once.</summary>
/// <param name="DeliveryCount">1 on the first delivery, then one more per redelivery.</param>
public sealed record ReceivedMessage(string MessageId, ReadOnlyMemory<byte> Body, int DeliveryCount, IReadOnlyDictionary<string, string> Properties);

/// <summary>What the handler decided for a message.</summary>
public enum MessageOutcome
{
    /// <summary>Done: remove it.</summary>
    Complete,

    /// <summary>Failed this time: deliver it again after <see cref="RetryBackoff"/> (Service Bus: a scheduled copy; Storage Queue: invisibility).</summary>
    Retry,

    /// <summary>Will never succeed: move it to the dead-letter (poison) store with the reason.</summary>
    DeadLetter,
}

/// <summary>How long a message that failed waits before its next delivery, in every transport that can wait.</summary>
public static class RetryBackoff
{
    /// <summary>After delivery <paramref name="deliveryCount"/> failed: 1 s, 2 s, 4 s, ... up to 30 s.</summary>
    public static TimeSpan After(int deliveryCount) => TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Max(deliveryCount, 1) - 1)));
}

/// <summary>A handler's verdict on a message.</summary>
public sealed record MessageResult(MessageOutcome Outcome, string? Reason = null)
{
    public static MessageResult Completed { get; } = new(MessageOutcome.Complete);
}

/// <summary>Handles one message; must be idempotent (delivery is at least once).</summary>
public delegate Task<MessageResult> MessageHandler(ReceivedMessage message, CancellationToken cancellationToken);

/// <summary>Sends messages to the classification queue.</summary>
public interface IMessageSender
{
    Task SendAsync(OutgoingMessage message, CancellationToken cancellationToken);
}

/// <summary>
/// Receives messages and settles them by the handler's verdict. The lock on a message is kept (renewed) while its
/// handler runs; a handler that throws counts as <see cref="MessageOutcome.Retry"/>. Poison handling (how many
/// attempts) is the handler's: it sees <see cref="ReceivedMessage.DeliveryCount"/>.
/// </summary>
public interface IMessageConsumer
{
    /// <summary>Receives and handles messages until <paramref name="cancellationToken"/> is cancelled.</summary>
    Task RunAsync(MessageHandler handler, CancellationToken cancellationToken);
}

/// <summary>
/// One queue between the segmentation and classification stages. Adapters: Azure Service Bus (production), Azure
/// Storage Queue (Azurite and small deployments) and in memory (one process), chosen by configuration.
/// </summary>
public interface IMessageTransport : IMessageSender, IMessageConsumer, IAsyncDisposable
{
    /// <summary>Messages that were dead-lettered, where the adapter can list them (in memory, storage queue); null where it cannot.</summary>
    Task<IReadOnlyList<ReceivedMessage>?> PeekDeadLettersAsync(int max, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ReceivedMessage>?>(null);
}
