using System.Text.Json.Nodes;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;

namespace Leuko.Pipeline.Tests;

/// <summary>Webhook subscriptions, publishing and the sender stage, delivering to a real HTTP receiver on 127.0.0.1.</summary>
public sealed class WebhookDeliveryTests
{
    /// <summary>The API client these tests subscribe as (ownership is tested in Leuko.Functions.Tests).</summary>
    private static readonly WebhookCaller Lims = new("lims", IsAdmin: false);

    private static readonly WebhookOptions Fast = WebhookOptions.Default with
    {
        AllowLoopback = true,
        RetrySchedule = [TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50)],
        Timeout = TimeSpan.FromSeconds(60), // a bound on a hang: under load a first request to a new Kestrel took over 5 s
    };

    /// <summary>Subscriptions, a publisher and a sender on one in-memory delivery queue.</summary>
    private sealed class Rig(WebhookOptions options)
    {
        public InMemoryWebhookStore Store { get; } = new();

        public InMemoryTransport Queue { get; } = new(2);

        public WebhookService Service => new(Store, TestSecrets.Shared, options);

        public WebhookPublisher Publisher => new(Store, Queue, "http://127.0.0.1:7071/api", Classes);

        /// <summary>
        /// Runs the sender until every delivery queued so far, and every retry it queues, is settled: the queue then has
        /// nothing left, so no delivery can come later (no waiting to see whether one does).
        /// </summary>
        public async Task DeliverAllAsync()
        {
            var sender = new WebhookSender(Store, TestSecrets.Shared, Queue, WebhookSender.CreateHttpClient(options), options);
            Queue.Complete();
            await Queue.RunAsync(sender.HandleAsync, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));
        }
    }

    /// <summary>Five-part differential with the other-cell kinds apart, as the bundled model's card has it.</summary>
    private static readonly CellClasses Classes = new(
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "ERYTHROBLAST"],
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"], ["ERYTHROBLAST"]);

    private static ImageRow Completed(string id) => new(
        id, $"uploads/{id}.jpg", $"{id}.jpg", null, ImageStatus.Completed, null, 640, 480, 2, 1,
        new Dictionary<string, int> { ["EOSINOPHIL"] = 0, ["LYMPHOCYTE"] = 1, ["MONOCYTE"] = 0, ["NEUTROPHIL"] = 1 },
        "v1", 10, 3, null, "\"etag\"", DateTimeOffset.UtcNow);

    /// <summary>The in-memory store, counting subscription reads and holding each read's answer until released.</summary>
    private sealed class HeldReads(InMemoryWebhookStore inner) : IWebhookStore
    {
        public int Reads;

        public TaskCompletionSource Release { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Reading { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<IReadOnlyList<WebhookSubscription>> ListAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Reads);
            var answer = await inner.ListAsync(cancellationToken); // read now, answered once released
            Reading.TrySetResult();
            await Release.Task;
            return answer;
        }

        public Task CreateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.CreateAsync(subscription, cancellationToken);

        public Task<bool> TryUpdateAsync(WebhookSubscription subscription, CancellationToken cancellationToken) => inner.TryUpdateAsync(subscription, cancellationToken);

        public Task<WebhookSubscription?> GetAsync(string id, CancellationToken cancellationToken) => inner.GetAsync(id, cancellationToken);

        public Task<IReadOnlyList<WebhookSubscription>> ListByOwnerAsync(string owner, CancellationToken cancellationToken) => inner.ListByOwnerAsync(owner, cancellationToken);

        public Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) => inner.DeleteAsync(id, cancellationToken);

        public Task AddAttemptAsync(WebhookAttempt attempt, CancellationToken cancellationToken) => inner.AddAttemptAsync(attempt, cancellationToken);

        public Task<bool> WasDeliveredAsync(string subscriptionId, string webhookId, CancellationToken cancellationToken) =>
            inner.WasDeliveredAsync(subscriptionId, webhookId, cancellationToken);

        public Task<IReadOnlyList<WebhookAttempt>> GetAttemptsAsync(string subscriptionId, int max, CancellationToken cancellationToken) =>
            inner.GetAttemptsAsync(subscriptionId, max, cancellationToken);
    }

    [Fact]
    public async Task EventsFinalWhileSubscriptionsAreReadShareTheNextReadAndASubscriptionMadeBeforeAnEventGetsIt()
    {
        var rig = new Rig(Fast);
        var store = new HeldReads(rig.Store);
        var publisher = new WebhookPublisher(store, rig.Queue, "http://127.0.0.1:7071/api", Classes);

        // An event's read is under way (no subscriptions yet) when a subscription is made and two more images are final.
        var first = publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await store.Reading.Task;
        await rig.Service.CreateAsync(new WebhookRequest("http://127.0.0.1:9/hook", [WebhookEvents.ImageCompleted], null, null), Lims, CancellationToken.None);
        var later = new[] { publisher.ImageFinalAsync(Completed("img2"), CancellationToken.None), publisher.ImageFinalAsync(Completed("img3"), CancellationToken.None) };
        var released = store.Release;
        store.Release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        store.Release.SetResult();
        released.SetResult();
        await first;
        await Task.WhenAll(later);

        Assert.Equal(2, store.Reads); // the first event's, and one for both later ones
        Assert.Equal(2, rig.Queue.Pending); // the subscription gets the two events final after it was made, not the first
    }

    [Fact]
    public async Task ADeliveryIsSignedPerTheStandardAndCarriesAThinPayload()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.ImageCompleted], null, null), Lims, CancellationToken.None);
        Assert.StartsWith("whsec_", created.Secret);

        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        var request = Assert.Single(receiver.Requests);
        Assert.StartsWith("msg_", request.Id);
        Assert.True(WebhookReceiver.SignedWith(request, created.Secret));
        Assert.InRange(long.Parse(request.Timestamp), DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Assert.True(WebhookSigner.Verify(created.Secret, request.Id, long.Parse(request.Timestamp), request.Body, request.Signature, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        var body = JsonNode.Parse(request.Body)!;
        Assert.Equal(["type", "timestamp", "data"], body.AsObject().Select(p => p.Key));
        Assert.Equal(WebhookEvents.ImageCompleted, body["type"]!.GetValue<string>());
        Assert.Equal("img1", body["data"]!["imageId"]!.GetValue<string>());
        Assert.Equal(1, body["data"]!["differential"]!["NEUTROPHIL"]!.GetValue<int>());
        Assert.Equal(0, body["data"]!["differential"]!["BASOPHIL"]!.GetValue<int>()); // the five-part differential, every class listed
        Assert.Equal(0, body["data"]!["otherCells"]!["ERYTHROBLAST"]!.GetValue<int>()); // other cells apart from it
        Assert.Equal("http://127.0.0.1:7071/api/images/img1", body["data"]!["links"]!["self"]!.GetValue<string>());

        // A tampered body or another secret does not verify.
        Assert.False(WebhookReceiver.SignedWith(request with { Body = request.Body.Replace("img1", "img2") }, created.Secret));
        Assert.False(WebhookReceiver.SignedWith(request, WebhookSigner.NewSecret()));
    }

    [Fact]
    public async Task AReceiverThatFailsTwiceGetsOneSuccessfulDeliveryOnTheThirdAttempt()
    {
        await using var receiver = await WebhookReceiver.StartAsync(n => n switch { 1 => (500, null), 2 => (503, null), _ => (200, null) });
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);

        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        Assert.Equal([500, 503, 200], receiver.Requests.Select(r => r.AnsweredWith));
        Assert.Single(receiver.Requests.Select(r => r.Id).Distinct()); // the same webhook-id on every attempt
        Assert.All(receiver.Requests, r => Assert.True(WebhookReceiver.SignedWith(r, created.Secret)));
        var attempts = await rig.Service.DeliveriesAsync(created.Subscription.Id, Lims, 10, CancellationToken.None);
        Assert.Equal([(1, "retry", 500), (2, "retry", 503), (3, "delivered", 200)],
            attempts!.Reverse().Select(a => (a.Attempt, a.Outcome, a.StatusCode ?? 0)));
        Assert.Equal(0, (await rig.Store.GetAsync(created.Subscription.Id, CancellationToken.None))!.Failures);
    }

    [Fact]
    public async Task AnEventPublishedAgainAfterACrashIsNotDeliveredAgainToASubscriberThatHasIt()
    {
        // A host killed after an image's event was queued and before its message was settled publishes the event again
        // when the message comes back (here: a second host on the same store): the same webhook-id, queued again. The
        // subscriber that has it does not get it twice; one that never got it (every attempt answered 500, the schedule
        // exhausted) gets it now.
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var failing = await WebhookReceiver.StartAsync(n => n <= 1 + Fast.RetrySchedule.Count ? (500, null) : (200, null));
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.ImageCompleted], null, null), Lims, CancellationToken.None);
        await rig.Service.CreateAsync(new WebhookRequest(failing.Url, [WebhookEvents.ImageCompleted], null, null), Lims, CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();
        Assert.Single(receiver.Requests);
        Assert.All(failing.Requests, r => Assert.Equal(500, r.AnsweredWith));

        var again = new InMemoryTransport(2);
        await new WebhookPublisher(rig.Store, again, "http://127.0.0.1:7071/api", Classes).ImageFinalAsync(Completed("img1"), CancellationToken.None);
        var sender = new WebhookSender(rig.Store, TestSecrets.Shared, again, WebhookSender.CreateHttpClient(Fast), Fast);
        again.Complete();
        await again.RunAsync(sender.HandleAsync, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Single(receiver.Requests);
        Assert.Equal(200, failing.Requests.Last().AnsweredWith);
        Assert.Single(failing.Requests.Select(r => r.Id).Distinct());
        var attempts = await rig.Service.DeliveriesAsync(created.Subscription.Id, Lims, 10, CancellationToken.None);
        Assert.Equal([(1, WebhookAttempt.Delivered)], attempts!.Select(a => (a.Attempt, a.Outcome)));
    }

    [Theory]
    [InlineData("2")]
    [InlineData("Wed, 02 Jan 2030 03:04:07 GMT")] // the same two seconds as an HTTP date
    public async Task ARetryIsNeverSoonerThanTheReceiverAsked(string retryAfter)
    {
        // A clock the test moves: the retry waits on it, so what is checked is the time asked for, not how busy the machine is.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var receiver = await WebhookReceiver.StartAsync(n => n == 1 ? (503, retryAfter) : (200, null));
        var store = new InMemoryWebhookStore();
        var queue = new InMemoryTransport(1, time);
        var created = await new WebhookService(store, TestSecrets.Shared, Fast, time).CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        await new WebhookPublisher(store, queue, "http://x/api", Classes, time).ImageFinalAsync(Completed("img1"), CancellationToken.None);
        queue.Complete();
        var run = queue.RunAsync(new WebhookSender(store, TestSecrets.Shared, queue, WebhookSender.CreateHttpClient(Fast), Fast, time).HandleAsync, CancellationToken.None);

        await receiver.WaitForRequestsAsync(1);
        while (queue.Scheduled == 0 && !run.IsCompleted)
        {
            await Task.Delay(10); // until the sender has queued its retry (an event the queue has no callback for)
        }

        time.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, queue.Scheduled); // a millisecond early: still held
        Assert.Single(receiver.Requests);

        time.Advance(TimeSpan.FromMilliseconds(1));
        await run.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal([503, 200], receiver.Requests.Select(r => r.AnsweredWith));
        var attempts = (await store.GetAttemptsAsync(created.Subscription.Id, 10, CancellationToken.None)).Reverse().ToList();
        Assert.Equal([(1, "retry"), (2, "delivered")], attempts.Select(a => (a.Attempt, a.Outcome)));
        Assert.Contains("next attempt in 2 s", attempts[0].Error);
    }

    [Fact]
    public async Task ARetryAfterBeyondTheLongestWaitFailsTheDeliveryRatherThanComeSooner()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => (503, "7200"));
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        Assert.Single(receiver.Requests);
        var attempt = Assert.Single((await rig.Service.DeliveriesAsync(created.Subscription.Id, Lims, 10, CancellationToken.None))!);
        Assert.Equal("failed", attempt.Outcome);
        Assert.Contains("asking to retry after 7200 s, more than the 3600 s", attempt.Error);
        Assert.Single(rig.Queue.DeadLetters);
    }

    [Fact]
    public async Task AnExhaustedScheduleDeadLettersAndCountsAFailure()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => (502, null));
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        Assert.Equal(4, receiver.Requests.Count); // the first attempt and three retries
        Assert.Equal(1, (await rig.Service.ListAsync(Lims, CancellationToken.None)).Single().Failures);
        Assert.Single(rig.Queue.DeadLetters);
        Assert.Contains("gave up after 4 attempts", (await rig.Service.DeliveriesAsync(created.Subscription.Id, Lims, 1, CancellationToken.None))![0].Error);
    }

    [Fact]
    public async Task GoneDisablesTheSubscription()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => (410, null));
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        var view = (await rig.Service.ListAsync(Lims, CancellationToken.None)).Single();
        Assert.False(view.Enabled);
        Assert.Contains("410", view.DisabledReason);

        // Nothing more is queued for a disabled subscription.
        await rig.Publisher.ImageFinalAsync(Completed("img2"), CancellationToken.None);
        Assert.Equal(0, rig.Queue.Pending);
        Assert.Single(receiver.Requests);
        Assert.Equal("disabled", (await rig.Service.DeliveriesAsync(created.Subscription.Id, Lims, 5, CancellationToken.None))![0].Outcome);
    }

    [Theory]
    [InlineData("http://10.0.0.7/hook")]
    [InlineData("https://10.0.0.7/hook")]
    [InlineData("https://192.168.1.20/hook")]
    [InlineData("https://172.16.0.1/hook")]
    [InlineData("https://169.254.169.254/metadata/instance")]
    [InlineData("https://[fd00:ec2::254]/hook")]
    [InlineData("https://127.0.0.1/hook")]
    [InlineData("https://localhost/hook")]
    [InlineData("http://example.org/hook")]
    [InlineData("ftp://example.org/hook")]
    [InlineData("not a url")]
    public async Task UnsafeTargetsAreRefusedWhenSubscribing(string url)
    {
        var service = new WebhookService(new InMemoryWebhookStore(), TestSecrets.Shared, WebhookOptions.Default);
        var e = await Assert.ThrowsAsync<WebhookRequestException>(() => service.CreateAsync(new WebhookRequest(url, null, null, null), Lims, CancellationToken.None));
        Assert.StartsWith("url refused", e.Message);
    }

    [Fact]
    public async Task TargetsAreCheckedAgainWhenSending()
    {
        // A subscription whose target became unsafe (stored before, or its name now resolves inward) is refused at send time.
        await using var receiver = await WebhookReceiver.StartAsync();
        var rig = new Rig(Fast with { AllowLoopback = false });
        await rig.Store.CreateAsync(new WebhookSubscription("wh_1", receiver.Url, WebhookEvents.All, null, null,
            [(await TestSecrets.Shared.NewAsync("wh_1", null, CancellationToken.None)).Stored], null, 0, DateTimeOffset.UtcNow), CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        Assert.Empty(receiver.Requests);
        var attempt = Assert.Single((await rig.Store.GetAttemptsAsync("wh_1", 10, CancellationToken.None)));
        Assert.Equal("failed", attempt.Outcome);
        Assert.Contains("refused", attempt.Error);
    }

    [Fact]
    public async Task DuringARotationBothSecretsSign()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var rig = new Rig(Fast);
        var created = await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        var rotated = await rig.Service.RotateSecretAsync(created.Subscription.Id, Lims, CancellationToken.None);
        Assert.NotNull(rotated);
        Assert.NotEqual(created.Secret, rotated.Secret);

        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None);
        await rig.DeliverAllAsync();

        var request = Assert.Single(receiver.Requests);
        Assert.Equal(2, request.Signature.Split(' ').Length);
        Assert.True(WebhookReceiver.SignedWith(request, created.Secret));
        Assert.True(WebhookReceiver.SignedWith(request, rotated.Secret));
    }

    [Fact]
    public async Task AfterTheGracePeriodOnlyTheNewSecretSigns()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var store = new InMemoryWebhookStore();
        var options = Fast with { RotationGrace = TimeSpan.FromHours(1) };
        var service = new WebhookService(store, TestSecrets.Shared, options, time);
        await using var receiver = await WebhookReceiver.StartAsync();
        var created = await service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        var rotated = (await service.RotateSecretAsync(created.Subscription.Id, Lims, CancellationToken.None))!;
        time.Now += TimeSpan.FromHours(2);

        var queue = new InMemoryTransport();
        await new WebhookPublisher(store, queue, "http://x/api", Classes, time).ImageFinalAsync(Completed("img1"), CancellationToken.None);
        queue.Complete();
        var sender = new WebhookSender(store, TestSecrets.Shared, queue, WebhookSender.CreateHttpClient(options), options, time);
        await queue.RunAsync(sender.HandleAsync, CancellationToken.None);

        var request = Assert.Single(receiver.Requests);
        Assert.Single(request.Signature.Split(' '));
        Assert.True(WebhookReceiver.SignedWith(request, rotated.Secret));
        Assert.False(WebhookReceiver.SignedWith(request, created.Secret));
    }

    [Fact]
    public async Task FiltersAndTypesChooseTheSubscribers()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var rig = new Rig(Fast);
        await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.ImageFailed], null, null), Lims, CancellationToken.None);
        await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.ImageCompleted], "batch-7", null), Lims, CancellationToken.None);
        await rig.Service.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.ImageCompleted], null, "uploads/ward-3/"), Lims, CancellationToken.None);
        await rig.Publisher.ImageFinalAsync(Completed("img1"), CancellationToken.None); // completed, no batch, uploads/img1.jpg
        Assert.Equal(0, rig.Queue.Pending);
        await rig.Publisher.ImageFinalAsync(Completed("img2") with { Source = "uploads/ward-3/img2.jpg" }, CancellationToken.None);
        Assert.Equal(1, rig.Queue.Pending);
        await Assert.ThrowsAsync<WebhookRequestException>(() => rig.Service.CreateAsync(new WebhookRequest(receiver.Url, ["image.done"], null, null), Lims, CancellationToken.None));
    }

    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
