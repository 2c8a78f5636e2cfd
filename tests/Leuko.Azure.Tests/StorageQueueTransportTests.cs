using System.Collections.Concurrent;
using System.Text;
using Leuko.Azure.Messaging;
using Leuko.Pipeline.Messaging;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>The Storage Queue adapter against a real Azurite queue.</summary>
[Collection("Azurite")]
public class StorageQueueTransportTests
{
    private static async Task<StorageQueueTransport> TransportAsync(TimeSpan? visibility = null, int concurrency = 2)
    {
        await Azurite.RequireAsync();
        var transport = new StorageQueueTransport(Azurite.Queues, Azurite.Unique("q"),
            new StorageQueueOptions(visibility ?? TimeSpan.FromSeconds(5), concurrency, TimeSpan.FromMilliseconds(100)));
        await transport.InitializeAsync(CancellationToken.None);
        return transport;
    }

    private static OutgoingMessage Message(string id, string body) =>
        new(id, Encoding.UTF8.GetBytes(body), new Dictionary<string, string> { ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });

    /// <summary>Runs the consumer until <paramref name="done"/> holds or the time is up.</summary>
    private static async Task ConsumeUntilAsync(StorageQueueTransport transport, MessageHandler handler, Func<bool> done, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource();
        var run = transport.RunAsync(handler, cts.Token);
        var deadline = DateTime.UtcNow + timeout;
        while (!done() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        await cts.CancelAsync();
        await run;
        Assert.True(done(), "the consumer did not get there in time");
    }

    [Fact]
    public async Task MessagesArriveWithTheirIdBodyAndPropertiesAndCompleteOnce()
    {
        var transport = await TransportAsync();
        await transport.SendAsync(Message("m1", "{\"imageId\":\"a\"}"), CancellationToken.None);
        await transport.SendAsync(Message("m2", "{\"imageId\":\"b\"}"), CancellationToken.None);
        var seen = new ConcurrentBag<ReceivedMessage>();
        await ConsumeUntilAsync(transport, (m, _) =>
        {
            seen.Add(m);
            return Task.FromResult(MessageResult.Completed);
        }, () => seen.Count >= 2, TimeSpan.FromSeconds(20));

        Assert.Equal(["m1", "m2"], seen.Select(m => m.MessageId).Order());
        Assert.Equal("{\"imageId\":\"a\"}", Encoding.UTF8.GetString(seen.Single(m => m.MessageId == "m1").Body.Span));
        Assert.All(seen, m => Assert.Equal(1, m.DeliveryCount));
        Assert.All(seen, m => Assert.StartsWith("00-0af7651916cd43dd8448eb211c80319c", m.Properties["traceparent"]));

        // Completed messages are gone: a second consumer gets nothing.
        int again = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await transport.RunAsync((_, _) => { Interlocked.Increment(ref again); return Task.FromResult(MessageResult.Completed); }, cts.Token);
        Assert.Equal(0, again);
    }

    [Fact]
    public async Task AMessageThisTransportSendsCutsTheEmptyQueuesBackOffShort()
    {
        await Azurite.RequireAsync();
        var transport = new StorageQueueTransport(Azurite.Queues, Azurite.Unique("q"),
            new StorageQueueOptions(TimeSpan.FromSeconds(5), 2, TimeSpan.FromMilliseconds(100), MaxPollInterval: TimeSpan.FromMinutes(1)));
        await transport.InitializeAsync(CancellationToken.None);
        var received = new TaskCompletionSource<DateTime>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cts = new CancellationTokenSource();
        var run = transport.RunAsync((_, _) =>
        {
            received.TrySetResult(DateTime.UtcNow);
            return Task.FromResult(MessageResult.Completed);
        }, cts.Token);

        // Empty receives wait 0.1, 0.2, 0.4, 0.8 and 1.6 s, then 3.2 s: once the sixth has come back empty the loop is
        // in that wait, which without the wake would end about 3 s after the send below.
        while (transport.EmptyReceives < 6)
        {
            await Task.Delay(20);
        }

        var sent = DateTime.UtcNow;
        await transport.SendAsync(Message("wake", "{}"), CancellationToken.None);
        var at = await received.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await cts.CancelAsync();
        await run;
        Assert.True(at - sent < TimeSpan.FromSeconds(1.5), $"received {(at - sent).TotalSeconds:F2} s after it was sent");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetryRedeliversWithAGrowingDeliveryCount(bool sentWhileConsuming)
    {
        // Sent while the consumer runs, the first delivery is a hand-over the service does not count; the count is the same.
        var transport = await TransportAsync();
        if (!sentWhileConsuming)
        {
            await transport.SendAsync(Message("retry", "{}"), CancellationToken.None);
        }

        var counts = new ConcurrentQueue<int>();
        using var cts = new CancellationTokenSource();
        var run = transport.RunAsync((m, _) =>
        {
            counts.Enqueue(m.DeliveryCount);
            return Task.FromResult(m.DeliveryCount < 3 ? new MessageResult(MessageOutcome.Retry, "not yet") : MessageResult.Completed);
        }, cts.Token);
        if (sentWhileConsuming)
        {
            await WaitForAsync(() => transport.EmptyReceives >= 1, "the consumer's first receive");
            await transport.SendAsync(Message("retry", "{}"), CancellationToken.None);
        }

        await WaitForAsync(() => counts.Count >= 3, "three deliveries", TimeSpan.FromSeconds(30));
        await cts.CancelAsync();
        await run;
        Assert.Equal([1, 2, 3], counts.Take(3));
        Assert.Equal(sentWhileConsuming ? 1 : 0, transport.HandedOver);
    }

    [Fact]
    public async Task AMessageSentWhileItsConsumerRunsIsHandedOverUnderALockWithoutAReceive()
    {
        var transport = await TransportAsync();
        var service = Azurite.Queues.GetQueueClient(QueueName(transport));
        var handled = new TaskCompletionSource<ReceivedMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cts = new CancellationTokenSource();
        var run = transport.RunAsync(async (m, _) =>
        {
            handled.TrySetResult(m);
            await release.Task;
            return MessageResult.Completed;
        }, cts.Token);
        await WaitForAsync(() => transport.EmptyReceives >= 1, "the consumer's first receive");

        await transport.SendAsync(Message("own", "{\"imageId\":\"a\"}"), CancellationToken.None);
        var message = await handled.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal("own", message.MessageId);
        Assert.Equal("{\"imageId\":\"a\"}", Encoding.UTF8.GetString(message.Body.Span));
        Assert.Equal(1, message.DeliveryCount);
        Assert.StartsWith("00-0af7651916cd43dd8448eb211c80319c", message.Properties["traceparent"]);

        // While it is handled it is on the queue (durable) and locked: another host's receive does not get it.
        Assert.Equal(1, (await service.GetPropertiesAsync()).Value.ApproximateMessagesCount);
        Assert.Empty((await service.ReceiveMessagesAsync(32, TimeSpan.FromSeconds(1))).Value);
        Assert.Equal(0, transport.Received);
        Assert.Equal(1, transport.HandedOver);

        // Completed with the send's pop receipt: gone from the queue.
        release.SetResult();
        await WaitForAsync(async () => (await service.GetPropertiesAsync()).Value.ApproximateMessagesCount == 0, "the message's deletion");
        await cts.CancelAsync();
        await run;
        Assert.Equal(0, transport.Received);
    }

    private static Task WaitForAsync(Func<bool> done, string what, TimeSpan? timeout = null) =>
        WaitForAsync(() => Task.FromResult(done()), what, timeout);

    private static async Task WaitForAsync(Func<Task<bool>> done, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task DeadLettersGoToThePoisonQueueWithTheReason()
    {
        var transport = await TransportAsync();
        await transport.SendAsync(Message("bad", "{}"), CancellationToken.None);
        int handled = 0;
        await ConsumeUntilAsync(transport, (_, _) =>
        {
            Interlocked.Increment(ref handled);
            return Task.FromResult(new MessageResult(MessageOutcome.DeadLetter, "will never work"));
        }, () => handled >= 1, TimeSpan.FromSeconds(20));

        var dead = Assert.Single((await transport.PeekDeadLettersAsync(10, CancellationToken.None))!);
        Assert.Equal("bad", dead.MessageId);
        Assert.Equal("will never work", dead.Properties["deadLetterReason"]);
        Assert.Equal(0, (await Azurite.Queues.GetQueueClient(QueueName(transport)).GetPropertiesAsync()).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task TheLockIsRenewedWhileASlowHandlerRuns()
    {
        // Handling outlasts the 10 s lock, which is renewed every 5 s: without renewal the message would be delivered again
        // to the idle consumers meanwhile. A renewal would have to stall for 5 s to let that happen (with a 2 s lock
        // renewed every second, one busy second on a loaded machine did).
        var transport = await TransportAsync(visibility: TimeSpan.FromSeconds(10), concurrency: 4);
        await transport.SendAsync(Message("slow", "{}"), CancellationToken.None);
        var deliveries = new ConcurrentQueue<int>();
        bool finished = false;
        await ConsumeUntilAsync(transport, async (m, ct) =>
        {
            deliveries.Enqueue(m.DeliveryCount);
            await Task.Delay(TimeSpan.FromSeconds(13), ct);
            finished = true;
            return MessageResult.Completed;
        }, () => finished, TimeSpan.FromSeconds(60));
        Assert.Equal([1], deliveries);
    }

    [Theory]
    [InlineData(0.2, 1)]
    [InlineData(1.0, 1)]
    [InlineData(1.5, 2)]
    [InlineData(30.01, 31)]
    public async Task ADelayedMessageStaysInvisibleAtLeastUntilItsTime(double delaySeconds, int invisibleSeconds)
    {
        // The service takes whole seconds; the SDK drops the fraction, so a webhook's Retry-After of 1 s (sent a few
        // milliseconds after the answer) became 0 s. The clock is the test's, so the delay asked is exactly the one given.
        await Azurite.RequireAsync();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var transport = new StorageQueueTransport(Azurite.Queues, Azurite.Unique("q"), time: time);
        await transport.InitializeAsync(CancellationToken.None);

        var receipt = await transport.SendForReceiptAsync(
            Message("later", "{}") with { NotBefore = time.GetUtcNow() + TimeSpan.FromSeconds(delaySeconds) }, CancellationToken.None);

        // Both times are the service's own, so the difference is the visibility timeout it was given.
        Assert.Equal(TimeSpan.FromSeconds(invisibleSeconds), receipt.TimeNextVisible - receipt.InsertionTime);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AMessageLeftUnsettledComesBackToAnotherHostAfterItsLock(bool handedOver)
    {
        // The first consumer stops mid-message (as a host that dies): the message reappears for another host, as its
        // second delivery also where the first was a hand-over that the service did not count.
        var transport = await TransportAsync(visibility: TimeSpan.FromSeconds(2));
        if (!handedOver)
        {
            await transport.SendAsync(Message("orphan", "{}"), CancellationToken.None);
        }

        using (var cts = new CancellationTokenSource())
        {
            var (run, started) = RunHolding(transport, cts.Token);
            if (handedOver)
            {
                await WaitForAsync(() => transport.EmptyReceives >= 1, "the consumer's first receive");
                await transport.SendAsync(Message("orphan", "{}"), CancellationToken.None);
            }

            await started.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await cts.CancelAsync();
            await run;
        }

        Assert.Equal(handedOver ? 1 : 0, transport.HandedOver);
        var other = new StorageQueueTransport(Azurite.Queues, QueueName(transport), new StorageQueueOptions(TimeSpan.FromSeconds(5), 2, TimeSpan.FromMilliseconds(100)));
        int delivery = 0;
        await ConsumeUntilAsync(other, (m, _) =>
        {
            delivery = m.DeliveryCount;
            return Task.FromResult(MessageResult.Completed);
        }, () => delivery > 0, TimeSpan.FromSeconds(20));
        Assert.Equal(2, delivery);
        Assert.Equal(1, other.Received);
    }

    [Fact]
    public async Task AHandOverStillWaitingWhenTheConsumerStopsIsLeftToTheQueueNotToALaterConsumer()
    {
        // One slot, held by the first message: the second waits in the hand-over when the consumer stops. A consumer
        // started later in the same process gets it from the service after its lock, as delivery 2, not from memory.
        var transport = await TransportAsync(visibility: TimeSpan.FromSeconds(2), concurrency: 1);
        using (var cts = new CancellationTokenSource())
        {
            var (run, started) = RunHolding(transport, cts.Token);
            await WaitForAsync(() => transport.EmptyReceives >= 1, "the consumer's first receive");
            await transport.SendAsync(Message("first", "{}"), CancellationToken.None);
            await started.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await transport.SendAsync(Message("second", "{}"), CancellationToken.None);
            await cts.CancelAsync();
            await run;
        }

        Assert.Equal(1, transport.HandedOver);
        var deliveries = new ConcurrentDictionary<string, int>();
        await ConsumeUntilAsync(transport, (m, _) =>
        {
            deliveries[m.MessageId] = m.DeliveryCount;
            return Task.FromResult(MessageResult.Completed);
        }, () => deliveries.Count >= 2, TimeSpan.FromSeconds(20));
        Assert.Equal(2, deliveries["first"]);
        Assert.Equal(2, deliveries["second"]);
        Assert.Equal(1, transport.HandedOver);
    }

    /// <summary>A consumer that holds every message it gets until it is stopped (as a host that dies mid-message); <c>Started</c>: it got one.</summary>
    private static (Task Run, TaskCompletionSource Started) RunHolding(StorageQueueTransport transport, CancellationToken stop)
    {
        var started = new TaskCompletionSource();
        var run = transport.RunAsync(async (_, ct) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return MessageResult.Completed;
        }, stop);
        return (run, started);
    }

    private static string QueueName(StorageQueueTransport transport) => transport.QueueName;
}

[CollectionDefinition("Azurite", DisableParallelization = true)]
public sealed class AzuriteCollection;
