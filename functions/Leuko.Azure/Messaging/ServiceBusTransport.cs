using System.Globalization;
using Azure.Messaging.ServiceBus;
using Leuko.Pipeline.Messaging;

namespace Leuko.Azure.Messaging;

/// <summary>How <see cref="ServiceBusTransport"/> receives.</summary>
public sealed record ServiceBusTransportOptions
{
    /// <summary>Messages handled at once by one <see cref="ServiceBusTransport.RunAsync"/> (classification is CPU bound: keep it near the core count).</summary>
    public int MaxConcurrentCalls { get; init; } = 1;

    /// <summary>How long the lock on a message is renewed while its handler runs; longer than the slowest handler.</summary>
    public TimeSpan MaxAutoLockRenewalDuration { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Messages fetched ahead of the handlers. 0 by default: a prefetched message's lock is not renewed until its handler
    /// starts, so it may expire and be redelivered (counting a delivery) while it waits.
    /// </summary>
    public int PrefetchCount { get; init; }
}

/// <summary>
/// The production transport: one Azure Service Bus queue, with duplicate detection on the message id. Messages are
/// received in peek-lock mode and settled by the handler's verdict (never auto-completed); the SDK renews the lock while
/// the handler runs. Dead letters stay in the queue's dead-letter sub-queue (inspect them with Service Bus tooling).
/// <para>
/// A retry is not an abandon (which Service Bus redelivers at once): a copy is scheduled after <see cref="RetryBackoff"/>
/// and the message completed. The copy carries the deliveries so far (<see cref="DeliveriesProperty"/>), so the handler's
/// delivery count goes on growing and the stage, not the broker, decides the last attempt and fails the image. The
/// queue's <c>maxDeliveryCount</c> must stay above <c>Leuko:MaxAttempts</c> (infra: 10 and 5): it then only counts
/// deliveries of one copy whose lock lapsed (a host that died), and cannot dead-letter a message before the stage has
/// seen its last attempt.
/// </para>
/// </summary>
public sealed class ServiceBusTransport : IMessageTransport
{
    /// <summary>The dead-letter reason (a short code to filter on); the handler's reason goes in the error description.</summary>
    public const string DeadLetterReason = "poison";

    /// <summary>Service Bus refuses a dead-letter error description longer than this.</summary>
    public const int MaxDeadLetterDescriptionLength = 4096;

    /// <summary>The application property the SDK uses to carry the trace context (its own name for traceparent).</summary>
    internal const string DiagnosticIdProperty = "Diagnostic-Id";

    internal const string TraceParentProperty = "traceparent";

    /// <summary>On a scheduled retry copy: the deliveries of the message before this copy.</summary>
    public const string DeliveriesProperty = "leuko-deliveries";

    /// <summary>On a scheduled retry copy: the message id the handler knows it by (the copy needs its own, for duplicate detection).</summary>
    public const string MessageIdProperty = "leuko-message-id";

    private readonly ServiceBusClient _client;
    private readonly bool _ownsClient;
    private readonly string _queueName;
    private readonly ServiceBusTransportOptions _options;
    private readonly Action<Exception>? _onError;
    private readonly ServiceBusSender _sender;
    private readonly TimeProvider _time;

    /// <summary>A transport on <paramref name="client"/>, which stays the caller's (it is not disposed with the transport).</summary>
    /// <param name="onError">
    /// Told of receive errors (connection drops, lost locks, failed settlements) and handler exceptions; the SDK recovers
    /// from the former by itself, so they are reported, not thrown.
    /// </param>
    /// <param name="time">The clock a retry's schedule is read on.</param>
    public ServiceBusTransport(
        ServiceBusClient client, string queueName, ServiceBusTransportOptions? options = null, Action<Exception>? onError = null, TimeProvider? time = null)
        : this(client, ownsClient: false, queueName, options, onError, time)
    {
    }

    private ServiceBusTransport(
        ServiceBusClient client, bool ownsClient, string queueName, ServiceBusTransportOptions? options, Action<Exception>? onError, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        ArgumentNullException.ThrowIfNull(client);
        _options = Validate(queueName, options);
        _client = client;
        _ownsClient = ownsClient;
        _queueName = queueName;
        _onError = onError;
        _sender = client.CreateSender(queueName);
    }

    /// <summary>A transport with its own client (disposed with the transport), from a connection string.</summary>
    public static ServiceBusTransport FromConnectionString(
        string connectionString,
        string queueName,
        ServiceBusTransportOptions? options = null,
        Action<Exception>? onError = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        Validate(queueName, options);
        return new ServiceBusTransport(new ServiceBusClient(connectionString), ownsClient: true, queueName, options, onError);
    }

    private static ServiceBusTransportOptions Validate(string queueName, ServiceBusTransportOptions? options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(queueName);
        options ??= new ServiceBusTransportOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrentCalls, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.PrefetchCount, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxAutoLockRenewalDuration, TimeSpan.Zero, nameof(options));
        return options;
    }

    public Task SendAsync(OutgoingMessage message, CancellationToken cancellationToken) =>
        _sender.SendMessageAsync(ToServiceBusMessage(message), cancellationToken);

    /// <summary>
    /// The message as sent: its id is the duplicate-detection key, and its properties (traceparent included) become
    /// application properties, with the traceparent also under the SDK's <c>Diagnostic-Id</c> so that SDK tracing links to it.
    /// </summary>
    internal static ServiceBusMessage ToServiceBusMessage(OutgoingMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var result = new ServiceBusMessage(new BinaryData(message.Body))
        {
            MessageId = message.MessageId,
            ContentType = "application/json",
        };
        foreach (var (key, value) in message.Properties)
        {
            result.ApplicationProperties[key] = value;
        }

        if (message.Properties.TryGetValue(TraceParentProperty, out var traceParent)
            && !string.IsNullOrEmpty(traceParent)
            && !result.ApplicationProperties.ContainsKey(DiagnosticIdProperty))
        {
            result.ApplicationProperties[DiagnosticIdProperty] = traceParent;
        }

        if (message.NotBefore is { } notBefore)
        {
            result.ScheduledEnqueueTime = notBefore; // a delayed retry (webhook back-off)
        }

        return result;
    }

    /// <summary>The processor's options: peek-lock, settled by us only, the lock renewed while a handler runs.</summary>
    internal ServiceBusProcessorOptions ProcessorOptions() => new()
    {
        ReceiveMode = ServiceBusReceiveMode.PeekLock,
        AutoCompleteMessages = false,
        MaxConcurrentCalls = _options.MaxConcurrentCalls,
        MaxAutoLockRenewalDuration = _options.MaxAutoLockRenewalDuration,
        PrefetchCount = _options.PrefetchCount,
    };

    public async Task RunAsync(MessageHandler handler, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (cancellationToken.IsCancellationRequested)
        {
            return;
        }

        var processor = _client.CreateProcessor(_queueName, ProcessorOptions());
        await using (processor.ConfigureAwait(false))
        {
            processor.ProcessMessageAsync += args => HandleMessageAsync(args, handler);
            processor.ProcessErrorAsync += args =>
            {
                Report(args.Exception);
                return Task.CompletedTask;
            };

            try
            {
                await processor.StartProcessingAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Asked to stop: not an error.
            }
            finally
            {
                // Stopping cancels the handlers' token and waits for them to settle their messages.
                await processor.StopProcessingAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Handles one received message and settles it exactly once by the handler's verdict. Settlement ignores the
    /// processor's token: a message handled while the processor stops should still be completed, not redelivered.
    /// </summary>
    internal async Task HandleMessageAsync(ProcessMessageEventArgs args, MessageHandler handler)
    {
        var message = args.Message;
        MessageResult result;
        try
        {
            result = await handler(ToReceivedMessage(message), args.CancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (args.CancellationToken.IsCancellationRequested)
        {
            // Stopping: hand the message back now (not a failure: no back-off) rather than leave it locked until its lock expires.
            await args.AbandonMessageAsync(message, propertiesToModify: null, CancellationToken.None).ConfigureAwait(false);
            return;
        }
        catch (Exception e)
        {
            Report(e);
            result = new MessageResult(MessageOutcome.Retry, e.Message);
        }

        switch (result.Outcome)
        {
            case MessageOutcome.Complete:
                await args.CompleteMessageAsync(message, CancellationToken.None).ConfigureAwait(false);
                break;
            case MessageOutcome.Retry:
                await RetryLaterAsync(args, message).ConfigureAwait(false);
                break;
            case MessageOutcome.DeadLetter:
                await args.DeadLetterMessageAsync(message, DeadLetterReason, Truncate(result.Reason), CancellationToken.None).ConfigureAwait(false);
                break;
            default:
                Report(new InvalidOperationException($"Unknown message outcome {result.Outcome}: abandoned."));
                await args.AbandonMessageAsync(message, propertiesToModify: null, CancellationToken.None).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>
    /// Schedules the retry copy, then completes the message: in that order, so that a failure between the two leaves a
    /// duplicate (the handlers are idempotent), never a loss. If the copy cannot be sent, the message is abandoned.
    /// </summary>
    private async Task RetryLaterAsync(ProcessMessageEventArgs args, ServiceBusReceivedMessage message)
    {
        try
        {
            await _sender.SendMessageAsync(RetryCopy(message, _time.GetUtcNow()), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Report(e); // the broker redelivers the abandoned message at once: better early than never
            await args.AbandonMessageAsync(message, propertiesToModify: null, CancellationToken.None).ConfigureAwait(false);
            return;
        }

        await args.CompleteMessageAsync(message, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// The copy that retries <paramref name="message"/>: the same body and properties, delivered not before
    /// <paramref name="now"/> plus <see cref="RetryBackoff.After"/> the deliveries so far, which it carries, under an id of its own.
    /// </summary>
    internal static ServiceBusMessage RetryCopy(ServiceBusReceivedMessage message, DateTimeOffset now)
    {
        int deliveries = DeliveryCountOf(message);
        var copy = new ServiceBusMessage(message);
        var id = IdOf(message);
        copy.ApplicationProperties[MessageIdProperty] = id;
        copy.ApplicationProperties[DeliveriesProperty] = deliveries;
        copy.MessageId = $"{(id.Length > 100 ? Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(id)))[..32] : id)}/retry-{deliveries + 1}";
        copy.ScheduledEnqueueTime = now + RetryBackoff.After(deliveries);
        return copy;
    }

    /// <summary>The deliveries of this message so far, this one included: those of the copies before it and the broker's count of this one.</summary>
    internal static int DeliveryCountOf(ServiceBusReceivedMessage message) =>
        (message.ApplicationProperties.TryGetValue(DeliveriesProperty, out var before) && before is int n ? n : 0) + message.DeliveryCount;

    private static string IdOf(ServiceBusReceivedMessage message) =>
        message.ApplicationProperties.TryGetValue(MessageIdProperty, out var id) && id is string s ? s : message.MessageId;

    /// <summary>The message as the handler sees it; application properties become strings (invariant culture).</summary>
    internal static ReceivedMessage ToReceivedMessage(ServiceBusReceivedMessage message)
    {
        var properties = new Dictionary<string, string>(message.ApplicationProperties.Count, StringComparer.Ordinal);
        foreach (var (key, value) in message.ApplicationProperties)
        {
            if (key is DeliveriesProperty or MessageIdProperty)
            {
                continue; // the transport's own
            }

            var text = value switch
            {
                null => null,
                string s => s,
                DateTime d => d.ToString("O", CultureInfo.InvariantCulture),
                DateTimeOffset d => d.ToString("O", CultureInfo.InvariantCulture),
                _ => Convert.ToString(value, CultureInfo.InvariantCulture),
            };
            if (text is not null)
            {
                properties[key] = text;
            }
        }

        return new ReceivedMessage(IdOf(message), message.Body.ToMemory(), DeliveryCountOf(message), properties);
    }

    /// <summary>The reason cut to what Service Bus accepts, without splitting a surrogate pair.</summary>
    internal static string? Truncate(string? reason)
    {
        if (reason is null || reason.Length <= MaxDeadLetterDescriptionLength)
        {
            return reason;
        }

        var length = char.IsHighSurrogate(reason[MaxDeadLetterDescriptionLength - 1]) ? MaxDeadLetterDescriptionLength - 1 : MaxDeadLetterDescriptionLength;
        return reason[..length];
    }

    private void Report(Exception exception)
    {
        try
        {
            _onError?.Invoke(exception);
        }
        catch
        {
            // An error callback that fails must not take message handling down with it.
        }
    }

    /// <summary>Disposes the sender, and the client when the transport created it.</summary>
    public async ValueTask DisposeAsync()
    {
        await _sender.DisposeAsync().ConfigureAwait(false);
        if (_ownsClient)
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }
}
