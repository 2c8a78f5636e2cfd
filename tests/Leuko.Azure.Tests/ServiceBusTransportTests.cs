using System.Text;
using Azure.Messaging.ServiceBus;
using Leuko.Azure.Messaging;
using Leuko.Pipeline.Messaging;

namespace Leuko.Azure.Tests;

/// <summary>
/// The Service Bus adapter without a broker (there is no emulator here): the SDK's own doubles (its model factory and
/// the mocking constructors of the client, sender, receiver and processor) record what the adapter asks of the broker.
/// </summary>
public class ServiceBusTransportTests
{
    private const string Queue = "classify";
    private const string TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    private static ServiceBusReceivedMessage Received(
        string messageId = "image-1/cell-3",
        string body = """{"cell":3}""",
        int deliveryCount = 1,
        IDictionary<string, object>? properties = null) =>
        ServiceBusModelFactory.ServiceBusReceivedMessage(
            body: BinaryData.FromString(body),
            messageId: messageId,
            contentType: "application/json",
            properties: properties ?? new Dictionary<string, object>(),
            lockTokenGuid: Guid.NewGuid(),
            deliveryCount: deliveryCount);

    /// <summary>Hands <paramref name="message"/> to the adapter as the processor would, and returns what was settled.</summary>
    private static readonly DateTimeOffset Now = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private static async Task<RecordingReceiver> HandleAsync(
        ServiceBusReceivedMessage message,
        MessageHandler handler,
        Action<Exception>? onError = null,
        CancellationToken processorToken = default,
        FakeClient? client = null)
    {
        client ??= new FakeClient();
        await using var transport = new ServiceBusTransport(client, Queue, onError: onError, time: new Microsoft.Extensions.Time.Testing.FakeTimeProvider(Now));
        var receiver = new RecordingReceiver();
        await transport.HandleMessageAsync(new ProcessMessageEventArgs(message, receiver, processorToken), handler);
        return receiver;
    }

    private static MessageHandler Returns(MessageResult result) => (_, _) => Task.FromResult(result);

    [Fact]
    public async Task SendMapsIdBodyContentTypeAndTraceContext()
    {
        var client = new FakeClient();
        await using var transport = new ServiceBusTransport(client, Queue);
        var body = Encoding.UTF8.GetBytes("""{"imageId":"image-1","cell":3}""");

        await transport.SendAsync(
            new OutgoingMessage("image-1/cell-3", body, new Dictionary<string, string> { ["traceparent"] = TraceParent, ["imageId"] = "image-1" }),
            CancellationToken.None);

        Assert.Equal(Queue, client.SenderQueue);
        var sent = Assert.Single(client.Sender.Sent);
        Assert.Equal("image-1/cell-3", sent.MessageId);
        Assert.Equal("application/json", sent.ContentType);
        Assert.Equal(body, sent.Body.ToArray());
        Assert.Equal(TraceParent, sent.ApplicationProperties["traceparent"]);
        Assert.Equal(TraceParent, sent.ApplicationProperties["Diagnostic-Id"]);
        Assert.Equal("image-1", sent.ApplicationProperties["imageId"]);
        Assert.Equal(3, sent.ApplicationProperties.Count);
    }

    [Fact]
    public async Task SendWithoutTraceParentAddsNoDiagnosticId()
    {
        var client = new FakeClient();
        await using var transport = new ServiceBusTransport(client, Queue);

        await transport.SendAsync(new OutgoingMessage("m", new byte[] { 1 }, new Dictionary<string, string>()), CancellationToken.None);

        Assert.Empty(Assert.Single(client.Sender.Sent).ApplicationProperties);
    }

    [Fact]
    public async Task ADelayedMessageIsScheduled()
    {
        var client = new FakeClient();
        await using var transport = new ServiceBusTransport(client, Queue);
        var at = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);

        await transport.SendAsync(new OutgoingMessage("m", new byte[] { 1 }, new Dictionary<string, string>()) { NotBefore = at }, CancellationToken.None);
        await transport.SendAsync(new OutgoingMessage("n", new byte[] { 1 }, new Dictionary<string, string>()), CancellationToken.None);

        Assert.Equal(at, client.Sender.Sent[0].ScheduledEnqueueTime);
        Assert.Equal(default, client.Sender.Sent[1].ScheduledEnqueueTime);
    }

    [Fact]
    public async Task CompleteOutcomeCompletesOnceAndNothingElse()
    {
        var message = Received();

        var receiver = await HandleAsync(message, Returns(MessageResult.Completed));

        Assert.Equal(["complete"], receiver.Calls);
        Assert.Same(message, receiver.Settled);
    }

    [Fact]
    public async Task RetryOutcomeSchedulesABackedOffCopyThenCompletes()
    {
        // An abandon would be redelivered at once; the storage queue waits 1 s, 2 s, 4 s ...: so does this.
        var client = new FakeClient();
        var receiver = await HandleAsync(
            Received(properties: new Dictionary<string, object> { ["traceparent"] = TraceParent }),
            Returns(new MessageResult(MessageOutcome.Retry, "blob not there yet")), client: client);

        Assert.Equal(["complete"], receiver.Calls);
        var copy = Assert.Single(client.Sender.Sent);
        Assert.Equal(Now + TimeSpan.FromSeconds(1), copy.ScheduledEnqueueTime);
        Assert.Equal("""{"cell":3}""", copy.Body.ToString());
        Assert.Equal("image-1/cell-3/retry-2", copy.MessageId); // its own id: duplicate detection would drop the original's
        Assert.Equal("image-1/cell-3", copy.ApplicationProperties[ServiceBusTransport.MessageIdProperty]);
        Assert.Equal(1, copy.ApplicationProperties[ServiceBusTransport.DeliveriesProperty]);
        Assert.Equal(TraceParent, copy.ApplicationProperties["traceparent"]);
    }

    [Fact]
    public async Task ARetryCopyCarriesTheDeliveryCountOnAndBacksOffFurther()
    {
        // The fourth copy, delivered once more after a host died holding it: deliveries 3 before it, and 2 of it.
        var fourth = Received(messageId: "image-1/cell-3/retry-4", deliveryCount: 2, properties: new Dictionary<string, object>
        {
            [ServiceBusTransport.DeliveriesProperty] = 3, [ServiceBusTransport.MessageIdProperty] = "image-1/cell-3", ["traceparent"] = TraceParent,
        });
        ReceivedMessage? seen = null;
        var client = new FakeClient();

        await HandleAsync(fourth, (m, _) =>
        {
            seen = m;
            return Task.FromResult(new MessageResult(MessageOutcome.Retry, "again"));
        }, client: client);

        Assert.Equal(5, seen!.DeliveryCount); // what the stage compares with Leuko:MaxAttempts
        Assert.Equal("image-1/cell-3", seen.MessageId);
        Assert.Equal(["traceparent"], seen.Properties.Keys); // the transport's own properties stay its own
        var copy = Assert.Single(client.Sender.Sent);
        Assert.Equal(5, copy.ApplicationProperties[ServiceBusTransport.DeliveriesProperty]);
        Assert.Equal("image-1/cell-3/retry-6", copy.MessageId);
        Assert.Equal(Now + TimeSpan.FromSeconds(16), copy.ScheduledEnqueueTime);
    }

    [Fact]
    public void TheBackOffDoublesUpToThirtySeconds() =>
        Assert.Equal([1, 2, 4, 8, 16, 30, 30], Enumerable.Range(1, 7).Select(n => RetryBackoff.After(n).TotalSeconds));

    [Fact]
    public async Task ARetryThatCannotBeScheduledIsAbandonedRatherThanLost()
    {
        var client = new FakeClient();
        client.Sender.Fail = true;
        var errors = new List<Exception>();

        var receiver = await HandleAsync(Received(), Returns(new MessageResult(MessageOutcome.Retry, "later")), errors.Add, client: client);

        Assert.Equal(["abandon"], receiver.Calls);
        Assert.IsType<ServiceBusException>(Assert.Single(errors));
    }

    [Fact]
    public async Task DeadLetterOutcomeDeadLettersWithTheReason()
    {
        var receiver = await HandleAsync(Received(), Returns(new MessageResult(MessageOutcome.DeadLetter, "crop is not a JPEG")));

        Assert.Equal(["deadletter"], receiver.Calls);
        Assert.Equal(ServiceBusTransport.DeadLetterReason, receiver.DeadLetterReason);
        Assert.Equal("poison", receiver.DeadLetterReason);
        Assert.Equal("crop is not a JPEG", receiver.DeadLetterDescription);
    }

    [Fact]
    public async Task AVeryLongReasonIsTruncatedToTheLimit()
    {
        var reason = "model failed: " + new string('x', 10_000);

        var receiver = await HandleAsync(Received(), Returns(new MessageResult(MessageOutcome.DeadLetter, reason)));

        Assert.Equal(["deadletter"], receiver.Calls);
        Assert.Equal(4096, receiver.DeadLetterDescription?.Length);
        Assert.Equal(reason[..4096], receiver.DeadLetterDescription);
    }

    [Fact]
    public void TruncationDoesNotSplitASurrogatePair()
    {
        var reason = new string('x', 4095) + "\U0001F52C" + "tail";

        var truncated = ServiceBusTransport.Truncate(reason);

        Assert.Equal(new string('x', 4095), truncated);
        Assert.Equal("short", ServiceBusTransport.Truncate("short"));
        Assert.Null(ServiceBusTransport.Truncate(null));
    }

    [Fact]
    public async Task AThrowingHandlerIsRetriedLaterAndReportsTheException()
    {
        var errors = new List<Exception>();

        var client = new FakeClient();
        var receiver = await HandleAsync(Received(), (_, _) => throw new InvalidOperationException("model not loaded"), errors.Add, client: client);

        Assert.Equal(["complete"], receiver.Calls); // retried as any failure is: a scheduled copy
        Assert.Single(client.Sender.Sent);
        Assert.Equal("model not loaded", Assert.Single(errors).Message);
    }

    [Fact]
    public async Task AHandlerCancelledWhileStoppingAbandonsWithoutAnError()
    {
        using var stopping = new CancellationTokenSource();
        var errors = new List<Exception>();

        var receiver = await HandleAsync(
            Received(),
            async (_, ct) =>
            {
                await stopping.CancelAsync();
                ct.ThrowIfCancellationRequested();
                return MessageResult.Completed;
            },
            errors.Add,
            stopping.Token);

        Assert.Equal(["abandon"], receiver.Calls);
        Assert.Empty(errors);
        Assert.False(receiver.SettleToken.IsCancellationRequested);
    }

    [Fact]
    public async Task AMessageHandledWhileStoppingIsStillCompleted()
    {
        using var stopping = new CancellationTokenSource();

        var receiver = await HandleAsync(
            Received(),
            async (_, _) =>
            {
                await stopping.CancelAsync();
                return MessageResult.Completed;
            },
            processorToken: stopping.Token);

        Assert.Equal(["complete"], receiver.Calls);
        Assert.False(receiver.SettleToken.IsCancellationRequested);
    }

    [Fact]
    public async Task DeliveryCountBodyAndPropertiesReachTheHandler()
    {
        var message = Received(
            messageId: "image-7/cell-0",
            body: """{"cell":0}""",
            deliveryCount: 3,
            properties: new Dictionary<string, object>
            {
                ["traceparent"] = TraceParent,
                ["attempt"] = 2,
                ["score"] = 0.5,
                ["at"] = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero),
            });
        ReceivedMessage? seen = null;

        await HandleAsync(message, (m, _) =>
        {
            seen = m;
            return Task.FromResult(MessageResult.Completed);
        });

        Assert.NotNull(seen);
        Assert.Equal("image-7/cell-0", seen.MessageId);
        Assert.Equal(3, seen.DeliveryCount);
        Assert.Equal("""{"cell":0}""", Encoding.UTF8.GetString(seen.Body.Span));
        Assert.Equal(TraceParent, seen.Properties["traceparent"]);
        Assert.Equal("2", seen.Properties["attempt"]);
        Assert.Equal("0.5", seen.Properties["score"]);
        Assert.Equal("2025-01-02T03:04:05.0000000+00:00", seen.Properties["at"]);
        Assert.Equal(4, seen.Properties.Count);
    }

    [Fact]
    public async Task RunAsyncReceivesInPeekLockSettlesAndStopsOnCancellation()
    {
        var client = new FakeClient();
        var options = new ServiceBusTransportOptions { MaxConcurrentCalls = 4, MaxAutoLockRenewalDuration = TimeSpan.FromMinutes(5) };
        await using var transport = new ServiceBusTransport(client, Queue, options);
        var receiver = new RecordingReceiver();
        client.Processor.Deliver = [Received(messageId: "a"), Received(messageId: "b")];
        client.Processor.Receiver = receiver;
        using var cts = new CancellationTokenSource();
        var handled = new List<string>();

        var run = transport.RunAsync(
            (m, _) =>
            {
                handled.Add(m.MessageId);
                return Task.FromResult(m.MessageId == "a" ? MessageResult.Completed : new MessageResult(MessageOutcome.Retry));
            },
            cts.Token);
        await client.Processor.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(run.IsCompleted);
        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(Queue, client.ProcessorQueue);
        var used = client.ProcessorOptions!;
        Assert.Equal(ServiceBusReceiveMode.PeekLock, used.ReceiveMode);
        Assert.False(used.AutoCompleteMessages);
        Assert.Equal(4, used.MaxConcurrentCalls);
        Assert.Equal(TimeSpan.FromMinutes(5), used.MaxAutoLockRenewalDuration);
        Assert.Equal(0, used.PrefetchCount);
        Assert.Equal(["a", "b"], handled);
        Assert.Equal(["complete", "complete"], receiver.Calls); // b is retried as a scheduled copy
        Assert.Equal("b/retry-2", Assert.Single(client.Sender.Sent).MessageId);
        Assert.Equal(1, client.Processor.Stops);
        Assert.True(client.Processor.Disposed);
    }

    [Fact]
    public async Task RunAsyncReportsProcessorErrors()
    {
        var client = new FakeClient();
        var errors = new List<Exception>();
        await using var transport = new ServiceBusTransport(client, Queue, onError: errors.Add);
        client.Processor.Error = new ServiceBusException("connection dropped", ServiceBusFailureReason.ServiceCommunicationProblem);
        using var cts = new CancellationTokenSource();

        var run = transport.RunAsync(Returns(MessageResult.Completed), cts.Token);
        await client.Processor.Started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Same(client.Processor.Error, Assert.Single(errors));
    }

    [Fact]
    public async Task DisposeDisposesTheSenderButNotAnInjectedClient()
    {
        var client = new FakeClient();
        var transport = new ServiceBusTransport(client, Queue);

        await transport.DisposeAsync();

        Assert.True(client.Sender.Disposed);
        Assert.False(client.Disposed);
    }

    /// <summary>A client that hands out the doubles below and records what it was asked for.</summary>
    private sealed class FakeClient : ServiceBusClient
    {
        public RecordingSender Sender { get; } = new();

        public FakeProcessor Processor { get; } = new();

        public string? SenderQueue { get; private set; }

        public string? ProcessorQueue { get; private set; }

        public ServiceBusProcessorOptions? ProcessorOptions { get; private set; }

        public bool Disposed { get; private set; }

        public override ServiceBusSender CreateSender(string queueOrTopicName)
        {
            SenderQueue = queueOrTopicName;
            return Sender;
        }

        public override ServiceBusProcessor CreateProcessor(string queueName, ServiceBusProcessorOptions options)
        {
            ProcessorQueue = queueName;
            ProcessorOptions = options;
            return Processor;
        }

        public override ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    private sealed class RecordingSender : ServiceBusSender
    {
        public List<ServiceBusMessage> Sent { get; } = [];

        public bool Disposed { get; private set; }

        public bool Fail { get; set; }

        public override Task SendMessageAsync(ServiceBusMessage message, CancellationToken cancellationToken = default)
        {
            if (Fail)
            {
                throw new ServiceBusException("the namespace is unreachable", ServiceBusFailureReason.ServiceCommunicationProblem);
            }

            Sent.Add(message);
            return Task.CompletedTask;
        }

        public override ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Records each settlement, in order; the processor's event args settle through these.</summary>
    private sealed class RecordingReceiver : ServiceBusReceiver
    {
        public List<string> Calls { get; } = [];

        public ServiceBusReceivedMessage? Settled { get; private set; }

        public CancellationToken SettleToken { get; private set; }

        public string? DeadLetterReason { get; private set; }

        public string? DeadLetterDescription { get; private set; }

        private Task Record(string call, ServiceBusReceivedMessage message, CancellationToken cancellationToken)
        {
            Calls.Add(call);
            Settled = message;
            SettleToken = cancellationToken;
            return Task.CompletedTask;
        }

        public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default) =>
            Record("complete", message, cancellationToken);

        public override Task AbandonMessageAsync(
            ServiceBusReceivedMessage message,
            IDictionary<string, object>? propertiesToModify = null,
            CancellationToken cancellationToken = default) =>
            Record("abandon", message, cancellationToken);

        public override Task DeferMessageAsync(
            ServiceBusReceivedMessage message,
            IDictionary<string, object>? propertiesToModify = null,
            CancellationToken cancellationToken = default) =>
            Record("defer", message, cancellationToken);

        public override Task DeadLetterMessageAsync(
            ServiceBusReceivedMessage message,
            IDictionary<string, object>? propertiesToModify = null,
            CancellationToken cancellationToken = default) =>
            Record("deadletter", message, cancellationToken);

        public override Task DeadLetterMessageAsync(
            ServiceBusReceivedMessage message,
            string deadLetterReason,
            string? deadLetterErrorDescription = null,
            CancellationToken cancellationToken = default)
        {
            DeadLetterReason = deadLetterReason;
            DeadLetterDescription = deadLetterErrorDescription;
            return Record("deadletter", message, cancellationToken);
        }

        public override Task DeadLetterMessageAsync(
            ServiceBusReceivedMessage message,
            IDictionary<string, object> propertiesToModify,
            string deadLetterReason,
            string? deadLetterErrorDescription = null,
            CancellationToken cancellationToken = default)
        {
            DeadLetterReason = deadLetterReason;
            DeadLetterDescription = deadLetterErrorDescription;
            return Record("deadletter", message, cancellationToken);
        }
    }

    /// <summary>On start, raises the handlers registered with it for the messages (and error) it was given, in order.</summary>
    private sealed class FakeProcessor : ServiceBusProcessor
    {
        public IReadOnlyList<ServiceBusReceivedMessage> Deliver { get; set; } = [];

        public ServiceBusReceiver Receiver { get; set; } = new RecordingReceiver();

        public Exception? Error { get; set; }

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Stops { get; private set; }

        public bool Disposed { get; private set; }

        public override async Task StartProcessingAsync(CancellationToken cancellationToken = default)
        {
            foreach (var message in Deliver)
            {
                await OnProcessMessageAsync(new ProcessMessageEventArgs(message, Receiver, cancellationToken));
            }

            if (Error is not null)
            {
                await OnProcessErrorAsync(new ProcessErrorEventArgs(Error, ServiceBusErrorSource.Receive, "test.servicebus.windows.net", Queue, "test", cancellationToken));
            }

            Started.SetResult();
        }

        public override Task StopProcessingAsync(CancellationToken cancellationToken = default)
        {
            Stops++;
            return Task.CompletedTask;
        }

        /// <summary>What the processor's (not virtual) <c>DisposeAsync</c> calls.</summary>
        public override Task CloseAsync(CancellationToken cancellationToken = default)
        {
            Disposed = true;
            return Task.CompletedTask;
        }
    }
}
