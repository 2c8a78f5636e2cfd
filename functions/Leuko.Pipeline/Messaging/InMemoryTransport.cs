using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Leuko.Pipeline.Messaging;

/// <summary>
/// The transport inside one process (<c>leuko analyze</c>, tests): an unbounded channel with the same semantics as the
/// brokers (at-least-once, redelivery with a growing delivery count on retry, dead letters kept for inspection).
/// A message with <see cref="OutgoingMessage.NotBefore"/> is held until then on <paramref name="time"/>'s clock.
/// </summary>
public sealed class InMemoryTransport(int maxConcurrentHandlers = 1, TimeProvider? time = null) : IMessageTransport
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Channel<ReceivedMessage> _queue = Channel.CreateUnbounded<ReceivedMessage>();
    private readonly ConcurrentQueue<ReceivedMessage> _deadLetters = new();
    private int _inFlight;
    private int _queued;
    private int _scheduled;
    private volatile bool _sendersDone;

    /// <summary>Messages waiting or being handled.</summary>
    public int Pending => Volatile.Read(ref _queued) + Volatile.Read(ref _inFlight);

    public IReadOnlyCollection<ReceivedMessage> DeadLetters => _deadLetters;

    /// <summary>Messages held for their <see cref="OutgoingMessage.NotBefore"/> (counted in <see cref="Pending"/> too).</summary>
    public int Scheduled => Volatile.Read(ref _scheduled);

    public Task SendAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _queued);
        var received = new ReceivedMessage(message.MessageId, message.Body, 1, message.Properties);
        var delay = message.NotBefore is { } at ? at - _time.GetUtcNow() : TimeSpan.Zero;
        if (delay <= TimeSpan.Zero)
        {
            return _queue.Writer.WriteAsync(received, cancellationToken).AsTask();
        }

        // Scheduled: counted as queued now, written when due. Counted once its timer is set, not before: a clock moved
        // by whoever saw the count (a test's FakeTimeProvider) must move a timer that already exists.
        var due = Task.Delay(delay, _time, CancellationToken.None);
        Interlocked.Increment(ref _scheduled);
        _ = due.ContinueWith(
            _ =>
            {
                Interlocked.Decrement(ref _scheduled);
                _queue.Writer.TryWrite(received);
            },
            TaskScheduler.Default);
        return Task.CompletedTask;
    }

    /// <summary>No more messages will be sent: <see cref="RunAsync"/> returns once every message is settled (retries included).</summary>
    public void Complete()
    {
        _sendersDone = true;
        CloseIfDrained();
    }

    private void CloseIfDrained()
    {
        if (_sendersDone && Pending == 0)
        {
            _queue.Writer.TryComplete();
        }
    }

    public async Task RunAsync(MessageHandler handler, CancellationToken cancellationToken)
    {
        await Parallel.ForEachAsync(
            _queue.Reader.ReadAllAsync(cancellationToken),
            new ParallelOptions { MaxDegreeOfParallelism = maxConcurrentHandlers, CancellationToken = cancellationToken },
            async (message, ct) =>
            {
                Interlocked.Increment(ref _inFlight);
                Interlocked.Decrement(ref _queued);
                try
                {
                    MessageResult result;
                    try
                    {
                        result = await handler(message, ct);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        result = new MessageResult(MessageOutcome.Retry, e.Message);
                    }

                    switch (result.Outcome)
                    {
                        case MessageOutcome.Retry:
                            Interlocked.Increment(ref _queued);
                            await _queue.Writer.WriteAsync(message with { DeliveryCount = message.DeliveryCount + 1 }, ct);
                            break;
                        case MessageOutcome.DeadLetter:
                            _deadLetters.Enqueue(message);
                            break;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref _inFlight);
                    CloseIfDrained();
                }
            });
    }

    public Task<IReadOnlyList<ReceivedMessage>?> PeekDeadLettersAsync(int max, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ReceivedMessage>?>(_deadLetters.Take(max).ToList());

    public ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }
}
