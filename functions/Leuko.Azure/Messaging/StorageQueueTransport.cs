using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Leuko.Pipeline.Messaging;

namespace Leuko.Azure.Messaging;

/// <summary>Settings of the Storage Queue adapter.</summary>
/// <param name="VisibilityTimeout">How long a received message stays invisible (its lock); renewed at half this while the handler runs.</param>
/// <param name="MaxConcurrentCalls">Messages handled at once.</param>
/// <param name="PollInterval">Wait after an empty receive; it doubles while the queue stays empty, up to <paramref name="MaxPollInterval"/>.</param>
/// <param name="MaxPollInterval">The longest wait between receives of an empty queue (null: 8x <paramref name="PollInterval"/>). A message
/// this transport sends cuts the wait short (to <paramref name="PollInterval"/> after the empty receive), so the cap costs only
/// the latency of messages other processes send.</param>
/// <param name="HandOver">A message this transport sends while its own consumer runs is handed to that consumer as it
/// is sent, without a receive: it is sent invisible for <paramref name="VisibilityTimeout"/> (its lock, as a receive
/// would have taken it) with the send's pop receipt, so it is on the queue, durable, from the start, and another host
/// takes it over if this one dies before settling it. At most two per concurrent call wait so; others are sent
/// visible. Off: every message goes through a receive.</param>
public sealed record StorageQueueOptions(
    TimeSpan VisibilityTimeout, int MaxConcurrentCalls, TimeSpan PollInterval, TimeSpan? MaxPollInterval = null, bool HandOver = true)
{
    public static StorageQueueOptions Default { get; } = new(TimeSpan.FromMinutes(1), 2, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(4));

    internal TimeSpan LongestWait => MaxPollInterval is { } max && max > PollInterval ? max : PollInterval * 8;
}

/// <summary>
/// The classification queue on Azure Storage Queues (Azurite, or an account without Service Bus). A message's
/// invisibility is its lock: renewed while the handler runs, so a slow batch is not delivered twice, and let lapse
/// when the host dies, so another host takes it over. Retry makes it visible again after a short back-off; dead
/// letters move to <c>QUEUE-poison</c> with the reason. Storage Queues have no duplicate detection: the stages'
/// idempotence covers duplicates. A message sent while this transport's consumer runs is handed over in the process
/// (<see cref="StorageQueueOptions.HandOver"/>): the same lock and settling, one receive request fewer.
/// </summary>
public sealed class StorageQueueTransport : IMessageTransport
{
    private readonly QueueClient _queue;
    private readonly QueueClient _poison;
    private readonly StorageQueueOptions _options;
    private readonly Action<Exception>? _onError;
    private readonly TimeProvider _time;

    /// <summary>Released when this transport sends a message visible at once: its own receive loop, backing off an empty queue, looks again.</summary>
    private readonly SemaphoreSlim _sent = new(0, 1);
    /// <summary>Messages sent for this process's consumer, locked by their send, waiting for a slot.</summary>
    private readonly ConcurrentQueue<Locked> _handedOver = new();
    private int _waitingHandOver;
    private int _consumers;
    private bool _created;
    private long _emptyReceives;
    private long _received;
    private long _handedOverCount;

    /// <param name="time">The clock that <see cref="OutgoingMessage.NotBefore"/> is read against.</param>
    public StorageQueueTransport(
        QueueServiceClient service, string queueName, StorageQueueOptions? options = null, Action<Exception>? onError = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _queue = service.GetQueueClient(queueName);
        _poison = service.GetQueueClient(queueName + "-poison");
        _options = options ?? StorageQueueOptions.Default;
        _onError = onError;
    }

    /// <summary>Receives that found the queue empty, since the transport was made (each followed by a wait of the back-off).</summary>
    internal long EmptyReceives => Interlocked.Read(ref _emptyReceives);

    /// <summary>Messages this transport's consumer got from the service by a receive, since the transport was made.</summary>
    internal long Received => Interlocked.Read(ref _received);

    /// <summary>Messages this transport's consumer got handed over by its own send (<see cref="StorageQueueOptions.HandOver"/>).</summary>
    internal long HandedOver => Interlocked.Read(ref _handedOverCount);

    /// <summary>The queue's name (its poison queue is this with <c>-poison</c>).</summary>
    public string QueueName => _queue.Name;

    /// <summary>
    /// The envelope on the queue: the message id and properties travel with the body. <paramref name="HandedOver"/>: 1
    /// when the message was sent to be handed over in the sending process, a delivery the service's dequeue count does
    /// not see; added to that count, so that a message its host died with, or retried, counts that delivery.
    /// </summary>
    internal sealed record Envelope(string Id, Dictionary<string, string> Properties, string Body, string? DeadLetterReason = null, int HandedOver = 0);

    /// <summary>A message under this consumer's lock, and when the lock was taken (a receive, or the send that handed it over).</summary>
    internal sealed record Locked(QueueMessage Message, long LockedAt);

    /// <summary>Creates the queue and its poison queue (idempotent).</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await _queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await _poison.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        _created = true;
    }

    public Task SendAsync(OutgoingMessage message, CancellationToken cancellationToken) => SendForReceiptAsync(message, cancellationToken);

    /// <summary>Sends, and returns the service's receipt (its insertion and visibility times).</summary>
    internal async Task<SendReceipt> SendForReceiptAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        if (!_created)
        {
            await InitializeAsync(cancellationToken);
        }

        var invisible = InvisibleFor(message.NotBefore);
        bool handOver = invisible is null && TryReserveHandOver();
        var envelope = new Envelope(message.MessageId, new Dictionary<string, string>(message.Properties), Convert.ToBase64String(message.Body.Span),
            HandedOver: handOver ? 1 : 0);
        var text = JsonSerializer.Serialize(envelope);
        long lockedAt = Stopwatch.GetTimestamp(); // the lock starts no sooner than the request
        SendReceipt receipt;
        try
        {
            receipt = await _queue.SendMessageAsync(text, visibilityTimeout: handOver ? _options.VisibilityTimeout : invisible, cancellationToken: cancellationToken);
        }
        catch
        {
            if (handOver)
            {
                Interlocked.Decrement(ref _waitingHandOver);
            }

            throw;
        }

        if (handOver)
        {
            _handedOver.Enqueue(new Locked(
                QueuesModelFactory.QueueMessage(receipt.MessageId, receipt.PopReceipt, text, 0, receipt.TimeNextVisible, receipt.InsertionTime, receipt.ExpirationTime),
                lockedAt));
        }

        if (invisible is null)
        {
            Wake();
        }

        return receipt;
    }

    /// <summary>Whether a message sent now goes to this process's consumer: one runs, and fewer than two per slot wait already.</summary>
    private bool TryReserveHandOver()
    {
        if (!_options.HandOver || Volatile.Read(ref _consumers) == 0)
        {
            return false;
        }

        if (Interlocked.Increment(ref _waitingHandOver) <= 2 * Math.Max(1, _options.MaxConcurrentCalls))
        {
            return true;
        }

        Interlocked.Decrement(ref _waitingHandOver);
        return false;
    }

    /// <summary>Up to <paramref name="max"/> messages handed over by this transport's sends.</summary>
    private List<Locked> TakeHandedOver(int max)
    {
        var taken = new List<Locked>();
        while (taken.Count < max && _handedOver.TryDequeue(out var message))
        {
            Interlocked.Decrement(ref _waitingHandOver);
            taken.Add(message);
        }

        Interlocked.Add(ref _handedOverCount, taken.Count);
        return taken;
    }

    private void Wake()
    {
        try
        {
            _sent.Release();
        }
        catch (SemaphoreFullException)
        {
            // already signalled
        }
    }

    /// <summary>
    /// Waits <paramref name="wait"/> after an empty receive, or less where this transport sends a message meanwhile: then
    /// until <see cref="StorageQueueOptions.PollInterval"/> since the empty receive, never sooner, so that the messages
    /// of a burst are still gathered into one receive (and one model call) as at the first step of the back-off. Messages
    /// other processes send are found by the polling alone.
    /// </summary>
    private async Task IdleAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        if (await _sent.WaitAsync(wait, cancellationToken))
        {
            var rest = _options.PollInterval - _time.GetElapsedTime(started);
            if (rest > TimeSpan.Zero)
            {
                await Task.Delay(rest, cancellationToken);
            }
        }
    }

    /// <summary>
    /// How long a message sent now must stay invisible not to be delivered before <paramref name="notBefore"/>: whole
    /// seconds, rounded up, because the service takes the visibility timeout in seconds and the SDK drops the fraction
    /// (a Retry-After of 1 s, sent a few milliseconds later, became 0 s: delivered at once).
    /// </summary>
    internal TimeSpan? InvisibleFor(DateTimeOffset? notBefore)
    {
        var wait = notBefore - _time.GetUtcNow();
        return wait > TimeSpan.Zero ? TimeSpan.FromSeconds(Math.Ceiling(wait.Value.TotalSeconds)) : null;
    }

    public async Task RunAsync(MessageHandler handler, CancellationToken cancellationToken)
    {
        if (!_created)
        {
            await InitializeAsync(cancellationToken);
        }

        using var slots = new SemaphoreSlim(_options.MaxConcurrentCalls);
        var running = new List<Task>();
        var idle = _options.PollInterval;
        long nextReceive = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _consumers);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await slots.WaitAsync(cancellationToken);
                int free = slots.CurrentCount + 1;

                // Messages handed over by this process's own sends first; the service is asked on the back-off's
                // schedule, which its empty answers lengthen whatever is handed over meanwhile.
                var messages = TakeHandedOver(free);
                if (messages.Count == 0 && Stopwatch.GetElapsedTime(nextReceive) >= TimeSpan.Zero)
                {
                    QueueMessage[] received;
                    try
                    {
                        received = (await _queue.ReceiveMessagesAsync(free, _options.VisibilityTimeout, cancellationToken)).Value;
                    }
                    catch (RequestFailedException e)
                    {
                        slots.Release();
                        _onError?.Invoke(e);
                        await Task.Delay(idle, cancellationToken);
                        continue;
                    }

                    long now = Stopwatch.GetTimestamp();
                    if (received.Length == 0)
                    {
                        Interlocked.Increment(ref _emptyReceives);
                        nextReceive = now + (long)(idle.TotalSeconds * Stopwatch.Frequency);
                        idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, _options.LongestWait.Ticks));
                    }
                    else
                    {
                        Interlocked.Add(ref _received, received.Length);
                        idle = _options.PollInterval;
                        nextReceive = now;
                        messages = received.Select(m => new Locked(m, now)).ToList();
                    }
                }

                if (messages.Count == 0)
                {
                    slots.Release();
                    var wait = -Stopwatch.GetElapsedTime(nextReceive);
                    await IdleAsync(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, cancellationToken);
                    continue;
                }

                for (int i = 1; i < messages.Count; i++)
                {
                    await slots.WaitAsync(cancellationToken); // cannot block long: `free` slots were available
                }

                running.RemoveAll(t => t.IsCompleted);
                foreach (var message in messages)
                {
                    running.Add(Task.Run(async () =>
                    {
                        try
                        {
                            await HandleAsync(message, handler, cancellationToken);
                        }
                        finally
                        {
                            slots.Release();
                        }
                    }, CancellationToken.None));
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (Interlocked.Decrement(ref _consumers) == 0)
            {
                // Nobody here takes what waits any more: leave it to the queue, visible when its lock lapses,
                // rather than to a consumer started later that would handle it after the lock has gone.
                while (_handedOver.TryDequeue(out _))
                {
                    Interlocked.Decrement(ref _waitingHandOver);
                }
            }
        }

        await Task.WhenAll(running);
    }

    /// <summary>Handles one message under this consumer's lock and settles it; the lock is renewed at half its time since it was taken.</summary>
    private async Task HandleAsync(Locked locked, MessageHandler handler, CancellationToken cancellationToken)
    {
        var message = locked.Message;
        Envelope? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize<Envelope>(message.MessageText);
        }
        catch (JsonException)
        {
            envelope = null;
        }

        if (envelope is null)
        {
            await DeadLetterAsync(message.MessageId, message.PopReceipt, new Envelope(message.MessageId, [], Convert.ToBase64String(message.Body.ToArray())),
                "not a pipeline message", cancellationToken);
            return;
        }

        var popReceipt = message.PopReceipt;
        using var renewing = new CancellationTokenSource();
        var renewal = Task.Run(async () =>
        {
            try
            {
                var sinceLocked = Stopwatch.GetElapsedTime(locked.LockedAt);
                var first = _options.VisibilityTimeout / 2 - sinceLocked; // a handed-over message waited for its slot under its lock
                if (first > TimeSpan.Zero)
                {
                    await Task.Delay(first, renewing.Token);
                }

                while (true)
                {
                    var updated = await _queue.UpdateMessageAsync(message.MessageId, Volatile.Read(ref popReceipt), visibilityTimeout: _options.VisibilityTimeout, cancellationToken: renewing.Token);
                    Volatile.Write(ref popReceipt, updated.Value.PopReceipt);
                    await Task.Delay(_options.VisibilityTimeout / 2, renewing.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (RequestFailedException e)
            {
                _onError?.Invoke(e); // the lock is lost: another host may take the message; the handler is idempotent
            }
        }, CancellationToken.None);

        MessageResult result;
        try
        {
            var received = new ReceivedMessage(envelope.Id, Convert.FromBase64String(envelope.Body), DeliveryCount(message, envelope), envelope.Properties);
            result = await handler(received, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await renewing.CancelAsync();
            await renewal;
            return; // shutting down: the message reappears when its invisibility lapses
        }
        catch (Exception e)
        {
            result = new MessageResult(MessageOutcome.Retry, e.Message);
        }

        await renewing.CancelAsync();
        await renewal;
        try
        {
            switch (result.Outcome)
            {
                case MessageOutcome.Complete:
                    await _queue.DeleteMessageAsync(message.MessageId, popReceipt, CancellationToken.None);
                    break;
                case MessageOutcome.Retry:
                    await _queue.UpdateMessageAsync(message.MessageId, popReceipt, visibilityTimeout: RetryBackoff.After(DeliveryCount(message, envelope)), cancellationToken: CancellationToken.None);
                    break;
                case MessageOutcome.DeadLetter:
                    await DeadLetterAsync(message.MessageId, popReceipt, envelope, result.Reason ?? "dead-lettered", CancellationToken.None);
                    break;
            }
        }
        catch (RequestFailedException e)
        {
            _onError?.Invoke(e); // lock lost before settling: the message comes back, and the handler is idempotent
        }
    }

    /// <summary>This delivery's number: the service's dequeue count, and the hand-over (a delivery the service did not count).</summary>
    private static int DeliveryCount(QueueMessage message, Envelope envelope) => (int)message.DequeueCount + envelope.HandedOver;

    private async Task DeadLetterAsync(string messageId, string popReceipt, Envelope envelope, string reason, CancellationToken cancellationToken)
    {
        await _poison.SendMessageAsync(JsonSerializer.Serialize(envelope with { DeadLetterReason = reason }), cancellationToken);
        await _queue.DeleteMessageAsync(messageId, popReceipt, cancellationToken);
    }

    public async Task<IReadOnlyList<ReceivedMessage>?> PeekDeadLettersAsync(int max, CancellationToken cancellationToken)
    {
        var peeked = await _poison.PeekMessagesAsync(Math.Clamp(max, 1, 32), cancellationToken);
        return peeked.Value.Select(m => JsonSerializer.Deserialize<Envelope>(m.MessageText)!)
            .Select(e => new ReceivedMessage(e.Id, Convert.FromBase64String(e.Body), 0,
                new Dictionary<string, string>(e.Properties) { ["deadLetterReason"] = e.DeadLetterReason ?? "" }))
            .ToList();
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
