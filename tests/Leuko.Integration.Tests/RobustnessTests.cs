using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Leuko.Azure.Hosting;
using Leuko.Azure.Storage;
using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Leuko.Integration.Tests;

/// <summary>
/// The cloud pipeline on Azurite when inputs and timing are against it: a blob that cannot be handled, an archive too
/// big for a table row, uploads replaced under the same name, replays interleaved with classification, stuck rows,
/// refused archives and entries, and batches completed by two images at once.
/// </summary>
[Collection("Azurite")]
public class RobustnessTests
{
    private static readonly WebhookCaller Lims = new("lims", IsAdmin: false);

    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task AnArchiveOf20000EntriesCompletesWithItsSkippedListOutsideTheTable()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var entries = Enumerable.Range(0, 20_000).Select(i => ($"notes/{i:D5}.txt", "x"u8.ToArray())).Append(("field.jpg", Samples.All()[0].Data)).ToArray();
        var name = $"{Azurite.Unique("many")}.zip";
        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(CompressionLevel.Fastest, entries));

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(name), b => b.Status is "completed" or "failed");
        Assert.Equal("completed", batch.Status);
        Assert.Equal(1, batch.Total);
        Assert.Equal(20_000, batch.Skipped.Count);
        Assert.StartsWith("notes/00000.txt: not an image (.txt)", batch.Skipped[0]);
    }

    [Fact]
    public async Task ABlobWhoseWorkAlwaysFailsIsGivenUpAfterItsAttemptsAndTheOthersGoOn()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false);
        var run = Azurite.Unique("isolate");
        var blobs = new FailingArchives(pipeline.Services.GetRequiredService<IBlobStore>(), $"{run}/poison");
        var events = new RecordingEvents();
        var archives = new ArchiveStage(blobs, pipeline.Results, events: events);
        var watcher = new UploadWatcher(blobs, pipeline.Results, pipeline.Services.GetRequiredService<SegmentationStage>(), archives,
            NullLogger<UploadWatcher>.Instance, TimeSpan.FromMilliseconds(100), maxAttempts: 3);
        var poison = $"{run}/poison.zip";
        await PipelineHarness.UploadAsync(Containers.Archives, poison, Zips.Build(("field.jpg", Samples.All()[0].Data)));
        await watcher.StartAsync(CancellationToken.None);
        try
        {
            // An upload after the bad blob is handled while the bad blob is still being retried, and after it is given up.
            var good = $"{run}/good.jpg";
            await PipelineHarness.UploadAsync(Containers.Uploads, good, Samples.All()[0].Data);
            var image = Assert.Single(await PipelineHarness.WaitForImagesAsync(pipeline.Results, [good], Patience));
            Assert.Equal(ImageStatus.Completed, image.Status);

            var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(poison), b => b.Status == "failed");
            Assert.Equal("gave up after 3 attempts: the storage account answered 500", batch.Error);
            var failed = Assert.Single(events.Of(batch.Id));
            Assert.Equal((WebhookEvents.BatchFailed, batch.Id, batch.Error), failed);

            // Given up for good: the receipt follows the failure, so the blob is not tried again.
            var etag = await ETagAsync(Containers.Archives, poison);
            var deadline = DateTime.UtcNow + Patience;
            while (!await pipeline.Results.HasReceiptAsync(Containers.Archives, poison, etag, CancellationToken.None))
            {
                Assert.True(DateTime.UtcNow < deadline, $"no receipt for {poison} after {Patience}");
                await Task.Delay(100);
            }
        }
        finally
        {
            await watcher.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task AnImageReplacedByOneWithFewerCellsOrByNonImageBytesKeepsOnlyTheNewVersionsCellsAndCrops()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var name = $"{Azurite.Unique("replace")}/field.jpg";
        var imageId = PipelineIds.Image(name);
        var two = Samples.All().Single(s => s.Name.EndsWith("BloodImage_00010.jpg", StringComparison.Ordinal)).Data;
        var one = Samples.All().Single(s => s.Name.EndsWith("BloodImage_00000.jpg", StringComparison.Ordinal)).Data;

        var first = await UploadAndWaitAsync(pipeline, name, two);
        Assert.Equal(2, first.Cells);
        Assert.Equal(2, (await PipelineHarness.CellEntitiesAsync(imageId)).Count);

        // The API answers with the new version's cells as soon as its row is final; the replaced version's cells and
        // crops are deleted right after that row is written.
        var second = await UploadAndWaitAsync(pipeline, name, one);
        Assert.Equal(ImageStatus.Completed, second.Status);
        Assert.Equal(1, second.Cells);
        var view = await pipeline.Queries.GetImageAsync(imageId, CancellationToken.None);
        Assert.Single(view!.Cells);
        var folder = PipelineIds.CropFolder(imageId, second.BlobETag!);
        await EventuallyAsync(async () => (await PipelineHarness.CellEntitiesAsync(imageId)).Select(c => c.GetString("BlobETag")).SequenceEqual([second.BlobETag]) &&
                                          (await CropsAsync(imageId)).SequenceEqual([$"{folder}0.png"]),
            "only the second version's cell and crop");

        var third = await UploadAndWaitAsync(pipeline, name, "not a photograph"u8.ToArray());
        Assert.Equal(ImageStatus.Failed, third.Status);
        await EventuallyAsync(async () => (await PipelineHarness.CellEntitiesAsync(imageId)).Count == 0 && (await CropsAsync(imageId)).Count == 0, "no cells and no crops");
    }

    [Fact]
    public async Task AnUploadLongerThanAnyImageFileFailsWithItsLengthWithoutBeingRead()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var name = $"{Azurite.Unique("huge")}/video.jpg";
        var path = Path.GetTempFileName();
        try
        {
            using (var sparse = File.Create(path))
            {
                sparse.SetLength(Leuko.Core.Imaging.ImageFile.MaxBytes + 1); // no disk used; a mistaken upload of a video or a disk image
            }

            await Azurite.Blobs.GetBlobContainerClient(Containers.Uploads).GetBlobClient(name).UploadAsync(path, overwrite: true);
        }
        finally
        {
            File.Delete(path);
        }

        var row = await FinalRowAsync(pipeline, name);

        Assert.Equal(ImageStatus.Failed, row.Status);
        Assert.StartsWith("file too large (268,435,457 bytes): an image file is at most 256 MB", row.Error); // the CLI's reason, from its length alone
        await Azurite.Blobs.GetBlobContainerClient(Containers.Uploads).GetBlobClient(name).DeleteAsync(); // 256 MB of Azurite's memory
    }

    [Theory]
    [InlineData("a/b", false)] // a key Table Storage cannot hold: it failed as "gave up after 3 attempts: ... 500"
    [InlineData("x#y?z", false)]
    [InlineData("no-such-batch", false)]
    [InlineData("0123456789abcdef01234567", true)] // well formed, of no batch: no member row to update
    public async Task AnUploadsBatchMetadataSetByHandIsNoBatchsUnlessItIsABatchIdAndTheImageIsAnalysed(string batchId, bool wellFormed)
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var name = $"{Azurite.Unique("crafted")}/field.jpg";
        var one = Samples.All().Single(s => s.Name.EndsWith("BloodImage_00000.jpg", StringComparison.Ordinal)).Data;
        await PipelineHarness.UploadAsync(Containers.Uploads, name, one, metadata: new Dictionary<string, string> { [Containers.BatchIdKey] = batchId });
        var row = await FinalRowAsync(pipeline, name);

        Assert.True(row.Status == ImageStatus.Completed, $"{row.Status}: {row.Error}");
        Assert.Equal(wellFormed ? batchId : null, row.BatchId);
        Assert.Equal($"{Containers.Uploads}/{name}", row.Source);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"not {what} after {Patience}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task AnArchiveReuploadedWithNewContentIsExpandedAgainAndItsBatchIsTheNewVersions()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var name = $"{Azurite.Unique("again")}.zip";
        var samples = Samples.All();
        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(("a.jpg", samples[0].Data), ("b.jpg", samples[1].Data)));
        var batchId = PipelineIds.Batch(name);
        var first = await WaitForBatchAsync(pipeline, batchId, b => b.Status == "completed");
        Assert.Equal(2, first.Total);

        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(("c.jpg", samples[2].Data)));
        var second = await WaitForBatchAsync(pipeline, batchId, b => b.Status == "completed" && b.Images.Any(i => i.Source.EndsWith("!c.jpg", StringComparison.Ordinal)));
        var member = Assert.Single(second.Images);
        Assert.Equal($"{Containers.Archives}/{name}!c.jpg", member.Source);
        Assert.Equal(1, second.Completed);
    }

    [Fact]
    public async Task AnExpansionResumedAfterTheHostDiedLeavesTheImagesItWroteAsTheyWere()
    {
        // A host dies after writing two of an archive's three images; the next expands the same version again. The two
        // keep their blob versions (a new one would be analysed and announced again) and their member rows (one already
        // final stays so); the third is written; a member row the interrupted expansion left from before goes.
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var results = pipeline.Results;
        var name = $"{Azurite.Unique("resumed")}.zip";
        var samples = Samples.All();
        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(("a.jpg", samples[0].Data), ("b.jpg", samples[1].Data), ("c.jpg", samples[2].Data)));
        var batchId = PipelineIds.Batch(name);

        await Assert.ThrowsAsync<IOException>(() => new ArchiveStage(new DyingAfterPuts(blobs, Containers.Uploads, 2), results).ExpandAsync(name, CancellationToken.None));
        var written = new Dictionary<string, string>();
        foreach (var entry in new[] { "a.jpg", "b.jpg" })
        {
            written[entry] = (await blobs.GetInfoAsync(Containers.Uploads, $"{batchId}/{entry}", CancellationToken.None))!.ETag;
        }

        var first = PipelineIds.Image($"{batchId}/a.jpg");
        var member = (await results.GetBatchMembersAsync(batchId, CancellationToken.None)).Single(m => m.ImageId == first);
        Assert.True(await results.UpdateBatchMemberAsync(member with { Status = ImageStatus.Completed }, CancellationToken.None)); // its image finished meanwhile
        await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, "stale0000000000000000000", "archives/old.zip!x.jpg", BatchMemberRow.Pending, null,
            new Dictionary<string, int>()), CancellationToken.None);

        // While its row is fresh, the expansion is its host's: another host leaves it, writing nothing.
        var left = await new ArchiveStage(blobs, results).ExpandAsync(name, CancellationToken.None);
        Assert.Equal(BatchRow.Expanding, left.Status);
        Assert.Null(await blobs.GetInfoAsync(Containers.Uploads, $"{batchId}/c.jpg", CancellationToken.None));

        // Once the row is older than the lease, its host is taken for dead: the next host resumes the expansion.
        var later = new ShiftedTime(ArchiveStage.DefaultLease + TimeSpan.FromSeconds(1));
        var batch = await new ArchiveStage(blobs, results, time: later).ExpandAsync(name, CancellationToken.None);
        Assert.Equal(BatchRow.Expanded, batch.Status);
        Assert.Equal(3, batch.Images);
        foreach (var (entry, etag) in written)
        {
            Assert.Equal(etag, (await blobs.GetInfoAsync(Containers.Uploads, $"{batchId}/{entry}", CancellationToken.None))!.ETag);
        }

        Assert.NotNull(await blobs.GetInfoAsync(Containers.Uploads, $"{batchId}/c.jpg", CancellationToken.None));
        var members = await results.GetBatchMembersAsync(batchId, CancellationToken.None);
        Assert.Equal(3, members.Count);
        Assert.Equal(ImageStatus.Completed, members.Single(m => m.ImageId == first).Status);
        Assert.All(members.Where(m => m.ImageId != first), m => Assert.Equal(BatchMemberRow.Pending, m.Status));
    }

    [Fact]
    public async Task ALongExpansionRenewsItsLeaseAndCompletes()
    {
        // Every read of the clock six seconds later: the row is written again every third of the 30 s lease, and the
        // expansion's last write is conditional on the row as renewed.
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("long")}.zip";
        var samples = Samples.All();
        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(("a.jpg", samples[0].Data), ("b.jpg", samples[1].Data), ("c.jpg", samples[2].Data)));
        var start = DateTimeOffset.UtcNow;
        var batch = await new ArchiveStage(pipeline.Services.GetRequiredService<IBlobStore>(), pipeline.Results, time: new SteppingTime(TimeSpan.FromSeconds(6)))
            .ExpandAsync(name, CancellationToken.None);
        Assert.Equal(BatchRow.Expanded, batch.Status);
        Assert.Equal(3, batch.Images);
        Assert.True(batch.Updated - start > ArchiveStage.DefaultLease / 3);
    }

    [Fact]
    public async Task AnImageFinishedByAHostThatDiedBeforeItsEventIsAnnouncedByTheMessagesRedeliveryNotByADuplicate()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("died")}/field.jpg";
        var imageId = PipelineIds.Image(name);
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All()[0].Data);
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var classifier = pipeline.Services.GetRequiredService<LeukocyteClassifier>();
        var events = new DyingOnceEvents();
        var sent = new InMemoryTransport();
        await new SegmentationStage(blobs, pipeline.Results, sent, new LeukocyteSegmenter(), classifier.Card.Classes).ProcessAsync(name, null, CancellationToken.None);
        var message = await PipelineHarness.TakeAsync(sent);

        // The final row is written, then the event cannot be queued (as when the host dies there): the message is not settled.
        Assert.Equal(MessageOutcome.Retry, (await new ClassificationStage(blobs, pipeline.Results, classifier, events: events).HandleAsync(message, CancellationToken.None)).Outcome);
        Assert.Equal(ImageStatus.Completed, (await pipeline.Results.GetImageAsync(imageId, CancellationToken.None))!.Status);
        Assert.Empty(events.Recorded.Of(imageId));

        // A duplicate of the message (its first delivery) finds the version done and says nothing; its redelivery
        // announces it, as the host would have.
        var classification = new ClassificationStage(blobs, pipeline.Results, classifier, events: events);
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(message, CancellationToken.None)).Outcome);
        Assert.Empty(events.Recorded.Of(imageId));
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(message with { DeliveryCount = 2 }, CancellationToken.None)).Outcome);
        Assert.Equal([(WebhookEvents.ImageCompleted, imageId, null)], events.Recorded.Of(imageId));
    }

    [Fact]
    public async Task AnImageFailedBySegmentationOnAHostThatDiedBeforeItsEventIsAnnouncedWhenItsUploadIsHandledAgain()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("died")}/notes.jpg";
        var imageId = PipelineIds.Image(name);
        await PipelineHarness.UploadAsync(Containers.Uploads, name, "not an image"u8.ToArray());
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var classes = pipeline.Services.GetRequiredService<LeukocyteClassifier>().Card.Classes;
        var events = new DyingOnceEvents();
        SegmentationStage Stage() => new(blobs, pipeline.Results, new InMemoryTransport(), new LeukocyteSegmenter(), classes, events: events);

        await Assert.ThrowsAsync<IOException>(() => Stage().ProcessAsync(name, null, CancellationToken.None));
        Assert.Equal(ImageStatus.Failed, (await pipeline.Results.GetImageAsync(imageId, CancellationToken.None))!.Status);
        var row = await Stage().ProcessAsync(name, null, CancellationToken.None); // the blob has no receipt: handled again after the restart
        Assert.Equal(ImageStatus.Failed, row.Status);
        var failed = Assert.Single(events.Recorded.Of(imageId));
        Assert.Equal(WebhookEvents.ImageFailed, failed.Type);
    }

    [Fact]
    public async Task ABatchMadeFinalByAHostThatDiedBeforeItsEventIsAnnouncedByTheSweeperOnceWithItsTime()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var results = pipeline.Results;
        var batchId = Azurite.Unique("batch");
        Assert.True(await results.TryWriteBatchAsync(
            new BatchRow(batchId, $"{Containers.Archives}/{batchId}.zip", BatchRow.Expanded, null, 0, 0, 0, DateTimeOffset.UtcNow, ArchiveETag: "v1"), CancellationToken.None));
        var events = new DyingOnceEvents();

        // Completed two minutes ago (as the sweeper will see it) by a host that died before queuing batch.completed.
        await Assert.ThrowsAsync<IOException>(() => BatchProgress.CheckCompletedAsync(results, batchId, events, new ShiftedTime(TimeSpan.FromMinutes(-2)), CancellationToken.None));
        var completed = (await results.GetBatchAsync(batchId, CancellationToken.None))!;
        Assert.Equal(BatchRow.Completed, completed.Status);
        Assert.True(completed.Announcing);

        var sweeper = new PipelineSweeper(results, TimeSpan.FromHours(1), events);
        await sweeper.SweepOnceAsync(CancellationToken.None);
        await sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.Equal([(WebhookEvents.BatchCompleted, batchId, null)], events.Recorded.Of(batchId));
        var announced = (await results.GetBatchAsync(batchId, CancellationToken.None))!;
        Assert.False(announced.Announcing);
        Assert.Equal(completed.Updated, announced.Updated); // the subject of the webhook-id: the same as the lost announcement's

        // A batch whose writer lived is announced by it and left alone by the sweeper.
        var other = Azurite.Unique("batch");
        Assert.True(await results.TryWriteBatchAsync(
            new BatchRow(other, $"{Containers.Archives}/{other}.zip", BatchRow.Expanded, null, 0, 0, 0, DateTimeOffset.UtcNow, ArchiveETag: "v1"), CancellationToken.None));
        await BatchProgress.CheckCompletedAsync(results, other, events, new ShiftedTime(TimeSpan.FromMinutes(-2)), CancellationToken.None);
        await sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.Single(events.Recorded.Of(other));
        Assert.False((await results.GetBatchAsync(other, CancellationToken.None))!.Announcing);
    }

    [Fact]
    public async Task AReplayedEventThatReadTheRowBeforeItWasFinalNeverOverwritesIt()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("race")}/field.jpg";
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All()[0].Data);
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var classification = pipeline.Services.GetRequiredService<ClassificationStage>();
        var sent = new InMemoryTransport();
        var segmentation = new SegmentationStage(blobs, pipeline.Results, sent, new LeukocyteSegmenter(), classification.Classes);
        var classifying = await segmentation.ProcessAsync(name, null, CancellationToken.None);
        Assert.Equal(ImageRow.Classifying, classifying.Status);
        var readEarly = (await pipeline.Results.GetImageAsync(classifying.ImageId, CancellationToken.None))!;

        // Classification finishes the image; a replay of the blob event had read the row just before.
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(await PipelineHarness.TakeAsync(sent), CancellationToken.None)).Outcome);
        var replayed = new InMemoryTransport();
        var replay = new SegmentationStage(blobs, new StaleFirstRead(pipeline.Results, readEarly), replayed, new LeukocyteSegmenter(), classification.Classes);
        var answer = await replay.ProcessAsync(name, null, CancellationToken.None);

        Assert.Equal(ImageStatus.Completed, answer.Status);
        Assert.Equal(ImageStatus.Completed, (await pipeline.Results.GetImageAsync(classifying.ImageId, CancellationToken.None))!.Status);
        Assert.Equal(0, replayed.Pending);
    }

    [Fact]
    public async Task AnUploadEventReplayedBeforeClassificationLeavesOneFinalRowItsCellsOnceAndOneAnnouncement()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("twice")}/field.jpg";
        var imageId = PipelineIds.Image(name);
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All().Single(s => s.Name.EndsWith("BloodImage_00010.jpg", StringComparison.Ordinal)).Data);
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var events = new RecordingEvents();
        var classification = new ClassificationStage(blobs, pipeline.Results, pipeline.Services.GetRequiredService<LeukocyteClassifier>(), events: events);

        // Segmented twice before anything is classified (a replayed upload event): the replay rewrites the row, so the
        // first message's row ETag is no longer the row's when it is handled.
        var first = new InMemoryTransport();
        await new SegmentationStage(blobs, pipeline.Results, first, new LeukocyteSegmenter(), classification.Classes).ProcessAsync(name, null, CancellationToken.None);
        var second = new InMemoryTransport();
        await new SegmentationStage(blobs, pipeline.Results, second, new LeukocyteSegmenter(), classification.Classes).ProcessAsync(name, null, CancellationToken.None);
        var messages = new[] { await PipelineHarness.TakeAsync(first), await PipelineHarness.TakeAsync(second) };
        var bodies = messages.Select(m => JsonSerializer.Deserialize<ClassificationMessage>(m.Body.Span, PipelineJson.Options)!).ToList();
        Assert.All(bodies, b => Assert.Equal(2, b.Contents?.Cells.Count)); // the manifest in the message
        Assert.NotEqual(bodies[0].RowETag, bodies[1].RowETag);
        Assert.Equal(bodies[1].RowETag, (await pipeline.Results.GetImageAsync(imageId, CancellationToken.None))!.ETag);

        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(messages[0], CancellationToken.None)).Outcome);
        var row = (await pipeline.Results.GetImageAsync(imageId, CancellationToken.None))!;
        Assert.Equal(ImageStatus.Completed, row.Status);
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(messages[1], CancellationToken.None)).Outcome);

        Assert.Equal(row.ETag, (await pipeline.Results.GetImageAsync(imageId, CancellationToken.None))!.ETag); // not written again
        Assert.Equal([(WebhookEvents.ImageCompleted, imageId, null)], events.Of(imageId));
        var cells = await PipelineHarness.CellEntitiesAsync(imageId);
        Assert.Equal([0, 1], cells.Select(c => c.GetInt32("Index")!.Value).Order());
        var folder = PipelineIds.CropFolder(imageId, row.BlobETag!);
        Assert.Equal([$"{folder}0.png", $"{folder}1.png"], await CropsAsync(imageId)); // crops only: no manifest blob
    }

    [Fact]
    public async Task AManifestTooLargeForTheMessageGoesAsABlobAndClassifiesAsOneInTheMessage()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var data = Samples.All().Single(s => s.Name.EndsWith("BloodImage_00010.jpg", StringComparison.Ordinal)).Data;
        var run = Azurite.Unique("large");
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var classification = pipeline.Services.GetRequiredService<ClassificationStage>();
        var rows = new List<ImageRow>();
        foreach (var (name, limit) in new[] { ($"{run}/inline.jpg", SegmentationStage.MaxInlineManifestBytes), ($"{run}/blob.jpg", 0) })
        {
            await PipelineHarness.UploadAsync(Containers.Uploads, name, data);
            var sent = new InMemoryTransport();
            var segmentation = new SegmentationStage(blobs, pipeline.Results, sent, new LeukocyteSegmenter(), classification.Classes, maxInlineManifestBytes: limit);
            var classifying = await segmentation.ProcessAsync(name, null, CancellationToken.None);
            var message = await PipelineHarness.TakeAsync(sent);
            var body = JsonSerializer.Deserialize<ClassificationMessage>(message.Body.Span, PipelineJson.Options)!;
            var folder = PipelineIds.CropFolder(classifying.ImageId, classifying.BlobETag!);
            Assert.Equal(limit == 0 ? [$"{folder}0.png", $"{folder}1.png", $"{folder}manifest.json"] : [$"{folder}0.png", $"{folder}1.png"],
                await CropsAsync(classifying.ImageId));
            Assert.Equal(limit == 0, body.Contents is null);
            Assert.Equal(PipelineIds.Manifest(classifying.ImageId, classifying.BlobETag!), body.Manifest);

            Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(message, CancellationToken.None)).Outcome);
            rows.Add((await pipeline.Results.GetImageAsync(classifying.ImageId, CancellationToken.None))!);
        }

        Assert.All(rows, r => Assert.Equal(ImageStatus.Completed, r.Status));
        var cells = new List<IReadOnlyList<CellRow>>();
        foreach (var row in rows)
        {
            cells.Add(await pipeline.Results.GetCellsAsync(row.ImageId, row.BlobETag!, CancellationToken.None));
        }

        Assert.Equal(2, cells[0].Count);
        Assert.Equal(
            cells[0].Select(c => (c.Index, c.Class, c.Confidence, c.Box, c.Area, c.Contour, c.ReviewReason)),
            cells[1].Select(c => (c.Index, c.Class, c.Confidence, c.Box, c.Area, c.Contour, c.ReviewReason)));
    }

    [Fact]
    public async Task CropsSegmentedInThisProcessAreClassifiedFromMemoryAsTheyWouldBeFromTheirBlobs()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var data = Samples.All().Single(s => s.Name.EndsWith("BloodImage_00010.jpg", StringComparison.Ordinal)).Data;
        var run = Azurite.Unique("handoff");
        var blobs = new CountingBlobStore(pipeline.Services.GetRequiredService<IBlobStore>());
        var classifier = pipeline.Services.GetRequiredService<LeukocyteClassifier>();
        var cells = new List<IReadOnlyList<CellRow>>();
        foreach (var (name, handOff) in new[] { ($"{run}/memory.jpg", new CropHandOff()), ($"{run}/storage.jpg", (CropHandOff?)null) })
        {
            await PipelineHarness.UploadAsync(Containers.Uploads, name, data);
            var sent = new InMemoryTransport();
            var classification = new ClassificationStage(blobs, pipeline.Results, classifier, handOff: handOff);
            var segmented = await new SegmentationStage(blobs, pipeline.Results, sent, new LeukocyteSegmenter(), classification.Classes, handOff: handOff)
                .ProcessAsync(name, null, CancellationToken.None);
            Assert.Equal(handOff is null ? 0 : 2, handOff?.Count ?? 0);
            blobs.Reads.Clear();

            Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(await PipelineHarness.TakeAsync(sent), CancellationToken.None)).Outcome);

            Assert.Equal(handOff is null ? 2 : 0, blobs.Reads.GetValueOrDefault(Containers.Crops)); // the two crops, read back or not
            Assert.Equal(0, handOff?.Count ?? 0);
            var row = (await pipeline.Results.GetImageAsync(segmented.ImageId, CancellationToken.None))!;
            Assert.Equal(ImageStatus.Completed, row.Status);
            cells.Add(await pipeline.Results.GetCellsAsync(row.ImageId, row.BlobETag!, CancellationToken.None));
        }

        Assert.Equal(2, cells[0].Count);
        Assert.Equal(
            cells[1].Select(c => (c.Index, c.Class, c.Confidence, c.NeedsReview, c.ReviewReason, c.Box)),
            cells[0].Select(c => (c.Index, c.Class, c.Confidence, c.NeedsReview, c.ReviewReason, c.Box)));
        Assert.Equal(cells[1].Select(c => c.Probabilities.OrderBy(p => p.Key).ToList()), cells[0].Select(c => c.Probabilities.OrderBy(p => p.Key).ToList()));
    }

    [Fact]
    public async Task TheSweeperFailsAnImageStuckInClassifyingAndABatchStuckInExpandingOnceWithTheReason()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("stuck")}/field.jpg";
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All()[0].Data);
        var image = await pipeline.Services.GetRequiredService<SegmentationStage>().ProcessAsync(name, null, CancellationToken.None);
        Assert.Equal(ImageRow.Classifying, image.Status); // and no consumer: it stays so
        var batchId = Azurite.Unique("stuckbatch");
        Assert.True(await pipeline.Results.TryWriteBatchAsync(
            new BatchRow(batchId, "archives/stuck.zip", BatchRow.Expanding, null, 0, 0, 0, DateTimeOffset.UtcNow), CancellationToken.None));
        var events = new RecordingEvents();

        // Within the bound nothing is touched.
        var sweeper = new PipelineSweeper(pipeline.Results, TimeSpan.FromHours(1), events);
        await sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.Equal(ImageRow.Classifying, (await pipeline.Results.GetImageAsync(image.ImageId, CancellationToken.None))!.Status);
        Assert.Equal(BatchRow.Expanding, (await pipeline.Results.GetBatchAsync(batchId, CancellationToken.None))!.Status);

        // Past it (the two rows last updated two hours ago: not a clock run ahead, which would sweep every other test's
        // rows in the shared Azurite too), each is failed once, however often the sweeper runs.
        var twoHoursAgo = DateTimeOffset.UtcNow - TimeSpan.FromHours(2);
        var stuckImage = (await pipeline.Results.GetImageAsync(image.ImageId, CancellationToken.None))!;
        Assert.True(await pipeline.Results.TryWriteImageAsync(stuckImage with { Updated = twoHoursAgo }, CancellationToken.None));
        var stuckBatch = (await pipeline.Results.GetBatchAsync(batchId, CancellationToken.None))!;
        Assert.True(await pipeline.Results.TryWriteBatchAsync(stuckBatch with { Updated = twoHoursAgo }, CancellationToken.None));
        await sweeper.SweepOnceAsync(CancellationToken.None);
        await sweeper.SweepOnceAsync(CancellationToken.None);

        var row = (await pipeline.Results.GetImageAsync(image.ImageId, CancellationToken.None))!;
        Assert.Equal(ImageStatus.Failed, row.Status);
        Assert.Contains("stuck in classifying", row.Error);
        Assert.Equal([(WebhookEvents.ImageFailed, image.ImageId, row.Error)], events.Of(image.ImageId));
        var batch = (await pipeline.Results.GetBatchAsync(batchId, CancellationToken.None))!;
        Assert.Equal(BatchRow.Failed, batch.Status);
        Assert.Contains("stuck in expanding", batch.Error);
        Assert.Equal([(WebhookEvents.BatchFailed, batchId, batch.Error)], events.Of(batchId));
    }

    [Fact]
    public async Task ABoundShorterThanAnExpansionsLeaseFailsNoExpansionAnotherHostCouldStillTakeOver()
    {
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var batchId = Azurite.Unique("leased");
        var written = DateTimeOffset.UtcNow - ArchiveStage.DefaultLease - TimeSpan.FromSeconds(1); // past its lease: another host would resume it
        Assert.True(await pipeline.Results.TryWriteBatchAsync(
            new BatchRow(batchId, "archives/leased.zip", BatchRow.Expanding, null, 0, 0, 0, written), CancellationToken.None));
        var events = new RecordingEvents();
        await new PipelineSweeper(pipeline.Results, TimeSpan.FromSeconds(1), events).SweepOnceAsync(CancellationToken.None);
        Assert.Equal(BatchRow.Expanding, (await pipeline.Results.GetBatchAsync(batchId, CancellationToken.None))!.Status);
        Assert.Empty(events.Of(batchId));
    }

    [Fact]
    public async Task EntriesRefusedInAnArchiveAreImagesWithRowsAndImageFailedEvents()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var name = $"{Azurite.Unique("refused")}.zip";
        var webhooks = pipeline.Services.GetRequiredService<WebhookService>();
        await webhooks.CreateAsync(new WebhookRequest(receiver.Url, null, null, $"{Containers.Archives}/{name}"), Lims, CancellationToken.None);
        await PipelineHarness.UploadAsync(Containers.Archives, name, Zips.Build(("good.jpg", Samples.All()[0].Data), ("../escape.jpg", Samples.All()[1].Data)));

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(name), b => b.Status == "completed");
        var refused = Assert.Single(batch.Images, i => i.Status == ImageStatus.Failed);
        var view = await pipeline.Queries.GetImageAsync(refused.Id, CancellationToken.None);
        Assert.NotNull(view);
        Assert.Equal(ImageStatus.Failed, view.Status);
        Assert.Contains("unsafe name", view.Error);
        Assert.Equal($"{Containers.Archives}/{name}!../escape.jpg", view.Source);

        var events = await WaitForEventsAsync(receiver, e => e.Any(x => x["type"]!.GetValue<string>() == WebhookEvents.BatchCompleted));
        var failed = Assert.Single(events, e => e["type"]!.GetValue<string>() == WebhookEvents.ImageFailed);
        Assert.Equal(refused.Id, failed["data"]!["imageId"]!.GetValue<string>());
        Assert.Single(events, e => e["type"]!.GetValue<string>() == WebhookEvents.ImageCompleted);
    }

    [Theory]
    [InlineData("cut")]
    [InlineData("shorter-than-an-end-record")]
    [InlineData("directory-past-the-end")]
    [InlineData("bytes-before")]
    public async Task ARefusedArchiveIsAnnouncedAsBatchFailedWithItsReason(string corruption)
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var name = $"{Azurite.Unique("corrupt")}.zip";
        var webhooks = pipeline.Services.GetRequiredService<WebhookService>();
        await webhooks.CreateAsync(new WebhookRequest(receiver.Url, [WebhookEvents.BatchFailed], null, $"{Containers.Archives}/{name}"), Lims, CancellationToken.None);
        var zip = Zips.Build(("field.jpg", Samples.All()[0].Data));
        var bytes = corruption switch
        {
            "cut" => zip[..(zip.Length - 30)], // the central directory cut off
            "shorter-than-an-end-record" => "not a zip"u8.ToArray(), // a blob read stream refuses the seek to its end record
            "directory-past-the-end" => Zips.WithCentralDirectoryOffset(zip, 0x7FFF_FFF0), // where no blob read stream can seek
            // Bytes before a directory that is not one (a self-extracting archive whose directory is broken): the
            // directory is read late, at the first look at the entries, and the shift unzip would apply finds none.
            _ => [.. new byte[5000], .. Zips.WithBrokenCentralDirectory(zip)],
        };
        await PipelineHarness.UploadAsync(Containers.Archives, name, bytes);

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(name), b => b.Status == "failed");
        Assert.StartsWith("archive refused: not a readable zip archive", batch.Error);
        var events = await WaitForEventsAsync(receiver, e => e.Count > 0);
        var failed = Assert.Single(events);
        Assert.Equal(WebhookEvents.BatchFailed, failed["type"]!.GetValue<string>());
        Assert.Equal(batch.Id, failed["data"]!["batchId"]!.GetValue<string>());
        Assert.Equal(batch.Error, failed["data"]!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task BatchCompletedIsAnnouncedOnceHoweverManyImagesFinishAtOnce()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var batchId = Azurite.Unique("once");
        Assert.True(await store.TryWriteBatchAsync(new BatchRow(batchId, "archives/once.zip", BatchRow.Expanded, null, 8, 0, 0, DateTimeOffset.UtcNow), CancellationToken.None));
        for (int i = 0; i < 8; i++)
        {
            await store.UpsertBatchMemberAsync(new BatchMemberRow(batchId, $"i{i}", $"archives/once.zip!{i}.jpg", ImageStatus.Completed, null, new Dictionary<string, int>()), CancellationToken.None);
        }

        // Every image's stage checks the batch when it finishes; eight finishing at once all find it complete.
        var events = new RecordingEvents();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => BatchProgress.CheckCompletedAsync(store, batchId, events, TimeProvider.System, CancellationToken.None))));
        await BatchProgress.CheckCompletedAsync(store, batchId, events, TimeProvider.System, CancellationToken.None);

        Assert.Equal([(WebhookEvents.BatchCompleted, batchId, (string?)null)], events.Of(batchId));
        Assert.Equal(BatchRow.Completed, (await store.GetBatchAsync(batchId, CancellationToken.None))!.Status);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASenderNeverUndoesARotationOrADeleteMadeWhileItDelivered(bool delete)
    {
        await Azurite.RequireAsync();
        var store = new TableWebhookStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var options = WebhookOptions.Default with { AllowLoopback = true };
        var service = new WebhookService(store, TestSecrets.Shared, options);
        string? id = null, rotatedSecret = null;

        // The receiver answers 410 Gone; while it answers, the subscription is rotated (or deleted) through the API.
        await using var receiver = await WebhookReceiver.StartAsync(_ =>
        {
            if (delete)
            {
                service.DeleteAsync(id!, Lims, CancellationToken.None).GetAwaiter().GetResult();
            }
            else
            {
                rotatedSecret = service.RotateSecretAsync(id!, Lims, CancellationToken.None).GetAwaiter().GetResult()!.Secret;
            }

            return (410, null);
        });
        var created = await service.CreateAsync(new WebhookRequest(receiver.Url, null, null, null), Lims, CancellationToken.None);
        id = created.Subscription.Id;
        var sender = new WebhookSender(store, TestSecrets.Shared, new InMemoryTransport(), WebhookSender.CreateHttpClient(options), options);
        var delivery = new WebhookDelivery(id, "msg_test", WebhookEvents.ImageCompleted, "{}", 1);
        var message = new ReceivedMessage("m1", System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(delivery, PipelineJson.Options), 1, new Dictionary<string, string>());

        Assert.Equal(MessageOutcome.Complete, (await sender.HandleAsync(message, CancellationToken.None)).Outcome);

        var after = await store.GetAsync(id, CancellationToken.None);
        if (delete)
        {
            Assert.Null(after);
        }
        else
        {
            Assert.NotNull(after);
            Assert.False(after.Enabled);
            Assert.Equal([rotatedSecret!, created.Secret], await TestSecrets.Shared.SigningSecretsAsync(after, DateTimeOffset.UtcNow, CancellationToken.None));
        }
    }

    private static async Task<ImageRow> UploadAndWaitAsync(PipelineHarness pipeline, string name, byte[] data)
    {
        await PipelineHarness.UploadAsync(Containers.Uploads, name, data);
        return await FinalRowAsync(pipeline, name);
    }

    /// <summary>The final row of the upload's version now in <c>uploads/</c>.</summary>
    private static async Task<ImageRow> FinalRowAsync(PipelineHarness pipeline, string name)
    {
        var etag = await ETagAsync(Containers.Uploads, name);
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var row = await pipeline.Results.GetImageAsync(PipelineIds.Image(name), CancellationToken.None);
            if (row is { IsFinal: true } && row.BlobETag == etag)
            {
                return row;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{name} version {etag} not final after {Patience} ({row?.Status ?? "no row"})");
            await Task.Delay(250);
        }
    }

    private static async Task<string> ETagAsync(string container, string name) =>
        (await Azurite.Blobs.GetBlobContainerClient(container).GetBlobClient(name).GetPropertiesAsync()).Value.ETag.ToString().Trim('"'); // as the pipeline records versions

    private static async Task<BatchView> WaitForBatchAsync(PipelineHarness pipeline, string batchId, Func<BatchView, bool> done)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var batch = await pipeline.Queries.GetBatchAsync(batchId, CancellationToken.None);
            if (batch is not null && done(batch))
            {
                return batch;
            }

            Assert.True(DateTime.UtcNow < deadline, $"batch {batchId} is {batch?.Status ?? "unknown"} ({batch?.Error}) after {Patience}");
            await Task.Delay(250);
        }
    }

    /// <summary>The receiver's events by webhook-id (one per id, as a receiver deduplicates), once <paramref name="enough"/> holds.</summary>
    private static async Task<List<JsonNode>> WaitForEventsAsync(WebhookReceiver receiver, Func<List<JsonNode>, bool> enough)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var events = receiver.Requests.GroupBy(r => r.Id).Select(g => JsonNode.Parse(g.First().Body)!).ToList();
            if (enough(events))
            {
                return events;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{events.Count} events after {Patience}");
            await Task.Delay(250);
        }
    }



    private static async Task<List<string>> CropsAsync(string imageId)
    {
        var names = new List<string>();
        await foreach (var blob in Azurite.Blobs.GetBlobContainerClient(Containers.Crops).GetBlobsAsync(global::Azure.Storage.Blobs.Models.BlobTraits.None, global::Azure.Storage.Blobs.Models.BlobStates.None, imageId + "/", CancellationToken.None))
        {
            names.Add(blob.Name);
        }

        return names;
    }
}
