using System.IO.Compression;
using Azure.Data.Tables;
using Leuko.Core.Classification;
using Leuko.Core.Segmentation;
using Leuko.Pipeline;
using Leuko.Pipeline.Messaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;
using Microsoft.Extensions.DependencyInjection;

namespace Leuko.Integration.Tests;

/// <summary>The cloud pipeline end to end on a real Azurite: blobs, storage queue and tables.</summary>
[Collection("Azurite")]
public class PipelineTests
{
    private static readonly WebhookCaller Lims = new("lims", IsAdmin: false);

    [Fact]
    public async Task TwentyUploadsGiveTwentyImageRowsThatAgreeWithAnalyze()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("twenty");
        var samples = Samples.All().Take(20).ToList();
        Assert.Equal(20, samples.Count);
        foreach (var (name, data) in samples)
        {
            await PipelineHarness.UploadAsync(Containers.Uploads, $"{run}/{name}", data);
        }

        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, samples.Select(s => $"{run}/{s.Name}").ToList(), TimeSpan.FromMinutes(3));

        // The same images through `leuko analyze`'s pipeline: the same stages in memory, in this process.
        var classifier = pipeline.Services.GetRequiredService<LeukocyteClassifier>();
        await using var analyze = new LocalPipeline(new LeukocyteSegmenter(), classifier, 2);
        for (int i = 0; i < samples.Count; i++)
        {
            var local = (await analyze.AnalyzeAsync(samples[i].Name, samples[i].Name, samples[i].Data, CancellationToken.None)).Result;
            var row = rows[i];
            Assert.Equal(local.Status, row.Status);
            Assert.Equal($"{Containers.Uploads}/{run}/{samples[i].Name}", row.Source);
            Assert.Equal(classifier.Card.Version, row.ModelVersion);
            Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", row.TraceParent);
            var cells = await pipeline.Results.GetCellsAsync(row.ImageId, row.BlobETag!, CancellationToken.None);
            Assert.Equal(local.Cells.Select(c => (c.Class, c.Box, c.NeedsReview)), cells.Select(c => (c.Class, c.Box, c.NeedsReview)));
            Assert.Equal(local.Cells.Select(c => c.Confidence), cells.Select(c => c.Confidence));
            Assert.Equal(local.Differential.ToDictionary(d => d.Key, d => d.Value.Count), row.Counts.Where(c => local.Differential.ContainsKey(c.Key)));
            Assert.Equal(local.OtherCells, row.Counts.Where(c => local.OtherCells.ContainsKey(c.Key)));
            Assert.Equal(local.Scale, row.Scale);
        }

        // Table rows, as a client of the account sees them.
        var images = Azurite.Tables.GetTableClient("images");
        foreach (var row in rows)
        {
            var entity = (await images.GetEntityAsync<TableEntity>(row.ImageId, "image")).Value;
            Assert.Equal(ImageStatus.Completed, entity.GetString("Status"));
            Assert.Equal(row.Cells, entity.GetInt32("Cells"));
        }
    }

    [Fact]
    public async Task AnArchiveOf200ImagesCompletesAsOneBatchAndItsSubscriberHearsOfEveryImage()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var samples = Samples.All();
        var entries = Enumerable.Range(0, 200).Select(i => ($"day{i % 3}/{i:D3}-{Path.GetFileName(samples[i % samples.Count].Name)}", samples[i % samples.Count].Data)).ToList();
        entries.Add(("notes.txt", "not an image"u8.ToArray()));
        var archiveName = $"{Azurite.Unique("batch")}.zip";
        var webhooks = pipeline.Services.GetRequiredService<WebhookService>();
        var subscription = await webhooks.CreateAsync(
            new WebhookRequest(receiver.Url, null, null, $"{Containers.Archives}/{archiveName}"), Lims, CancellationToken.None);
        await PipelineHarness.UploadAsync(Containers.Archives, archiveName, Zips.Build(CompressionLevel.Fastest, entries.ToArray()));
        var batchId = PipelineIds.Batch(archiveName);

        BatchView? batch = null;
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while (DateTime.UtcNow < deadline)
        {
            batch = await pipeline.Queries.GetBatchAsync(batchId, CancellationToken.None);
            if (batch is { Status: "completed" or "failed" })
            {
                break;
            }

            await Task.Delay(500);
        }

        Assert.NotNull(batch);
        Assert.Equal("completed", batch.Status);
        Assert.Equal(200, batch.Total);
        Assert.Equal(200, batch.Completed + batch.NoLeukocytes);
        Assert.Equal(0, batch.Pending);
        Assert.Equal(0, batch.Failed);
        Assert.Single(batch.Skipped, s => s.StartsWith("notes.txt", StringComparison.Ordinal));
        Assert.Equal(200, batch.Images.Select(i => i.Id).Distinct().Count());
        Assert.True(batch.Differential.Values.Sum(d => d.Count) + batch.OtherCells.Values.Sum() >= 200); // every field holds a leukocyte
        Assert.All(batch.Images, i => Assert.StartsWith($"{Containers.Archives}/{archiveName}!day", i.Source));

        // The subscriber hears of every image once and of the batch once (receivers deduplicate by webhook-id).
        var events = new Dictionary<string, System.Text.Json.Nodes.JsonNode>();
        deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var request in receiver.Requests)
            {
                Assert.True(WebhookReceiver.SignedWith(request, subscription.Secret));
                events[request.Id] = System.Text.Json.Nodes.JsonNode.Parse(request.Body)!;
            }

            if (events.Values.Count(e => e["type"]!.GetValue<string>() == WebhookEvents.ImageCompleted) >= 200 &&
                events.Values.Any(e => e["type"]!.GetValue<string>() == WebhookEvents.BatchCompleted))
            {
                break;
            }

            await Task.Delay(250);
        }

        var imageEvents = events.Values.Where(e => e["type"]!.GetValue<string>() == WebhookEvents.ImageCompleted).ToList();
        Assert.Equal(batch.Images.Select(i => i.Id).Order(), imageEvents.Select(e => e["data"]!["imageId"]!.GetValue<string>()).Order());
        var batchEvent = Assert.Single(events.Values, e => e["type"]!.GetValue<string>() == WebhookEvents.BatchCompleted);
        Assert.Equal(batchId, batchEvent["data"]!["batchId"]!.GetValue<string>());
        Assert.Equal(200, batchEvent["data"]!["images"]!.GetValue<int>());
        Assert.DoesNotContain(events.Values, e => e["type"]!.GetValue<string>() == WebhookEvents.ImageFailed);
        await webhooks.DeleteAsync(subscription.Subscription.Id, Lims, CancellationToken.None);
    }

    [Fact]
    public async Task ReplayedEventsAndMessagesChangeNothing()
    {
        // No watcher and no consumer: the test delivers the blob event and the message itself, twice each.
        await using var pipeline = await PipelineHarness.StartAsync(watch: false, consume: false);
        var name = $"{Azurite.Unique("replay")}/field.jpg";
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All().First(s => s.Name.EndsWith("BloodImage_00010.jpg", StringComparison.Ordinal)).Data);
        var blobs = pipeline.Services.GetRequiredService<IBlobStore>();
        var results = pipeline.Results;
        var classification = pipeline.Services.GetRequiredService<ClassificationStage>();
        var sent = new InMemoryTransport();
        var segmentation = new SegmentationStage(blobs, results, sent, new LeukocyteSegmenter(), classification.Classes);

        var first = await segmentation.ProcessAsync(name, null, CancellationToken.None);
        Assert.Equal(ImageRow.Classifying, first.Status);
        var message = await PipelineHarness.TakeAsync(sent);
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(message, CancellationToken.None)).Outcome);
        var done = (await results.GetImageAsync(first.ImageId, CancellationToken.None))!;

        // One trace from the upload to the table row: the row's trace id is the one segmentation put on the message.
        Assert.Equal(first.TraceParent![3..35], message.Properties["traceparent"][3..35]);
        Assert.Equal(first.TraceParent[3..35], done.TraceParent![3..35]);
        var cells = await PipelineHarness.CellEntitiesAsync(first.ImageId);
        Assert.Equal(2, cells.Count);

        // The same blob event again: the image is final for this version, so nothing is written or sent.
        var replay = await segmentation.ProcessAsync(name, null, CancellationToken.None);
        Assert.Equal(Json(done), Json(replay));
        Assert.Equal(0, sent.Pending);

        // The same message again (at-least-once delivery): the same rows, no more of them.
        Assert.Equal(MessageOutcome.Complete, (await classification.HandleAsync(message with { DeliveryCount = 2 }, CancellationToken.None)).Outcome);
        var again = (await results.GetImageAsync(first.ImageId, CancellationToken.None))!;
        Assert.Equal(Json(done with { Updated = again.Updated, ClassifyMs = again.ClassifyMs, TraceParent = again.TraceParent }), Json(again));
        var cellsAgain = await PipelineHarness.CellEntitiesAsync(first.ImageId);
        Assert.Equal(cells.Select(c => c.RowKey), cellsAgain.Select(c => c.RowKey));
        Assert.Equal(cells.Select(c => c.GetString("Class")), cellsAgain.Select(c => c.GetString("Class")));
    }

    [Fact]
    public async Task AnUploadsScaleMetadataIsUsedAndRecordedAndAMalformedOneFailsItWithTheReason()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("scale");
        var field = Samples.All()[0].Data;
        var names = new[] { $"{run}/estimated.jpg", $"{run}/given.jpg", $"{run}/malformed.jpg" };
        await PipelineHarness.UploadAsync(Containers.Uploads, names[0], field);
        await PipelineHarness.UploadAsync(Containers.Uploads, names[1], field, metadata: new Dictionary<string, string> { ["micronsPerPixel"] = "0.085" });
        await PipelineHarness.UploadAsync(Containers.Uploads, names[2], field, metadata: new Dictionary<string, string> { ["micronsperpixel"] = "ten" });

        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, names, TimeSpan.FromMinutes(1));
        Assert.Equal("estimated", rows[0].Scale!.Source);
        Assert.InRange(rows[0].Scale!.MicronsPerPixel, 0.06, 0.12); // a BCCD field: about 0.08 µm/px
        Assert.Equal(new Leuko.Pipeline.ScaleRecord(0.085, "given", 0), rows[1].Scale);
        Assert.Equal(ImageStatus.Failed, rows[2].Status);
        Assert.Contains("micronsperpixel='ten'", rows[2].Error);

        // The API shows the same scale.
        var view = await pipeline.Queries.GetImageAsync(rows[1].ImageId, CancellationToken.None);
        Assert.Equal(rows[1].Scale, view!.Scale);
    }

    [Fact]
    public async Task BadUploadsFailWithTheirReasonsAndNothingIsStuck()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("bad");
        var good = Samples.All()[0].Data;
        var names = new[] { $"{run}/truncated.jpg", $"{run}/notes.txt", $"{run}/empty.png" };
        await PipelineHarness.UploadAsync(Containers.Uploads, names[0], good[..(good.Length / 3)]);
        await PipelineHarness.UploadAsync(Containers.Uploads, names[1], "a text file, not a photograph"u8.ToArray());
        await PipelineHarness.UploadAsync(Containers.Uploads, names[2], []);

        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, names, TimeSpan.FromMinutes(1));
        Assert.All(rows, r =>
        {
            Assert.Equal(ImageStatus.Failed, r.Status);
            Assert.False(string.IsNullOrWhiteSpace(r.Error));
        });
        Assert.Contains("truncated", rows[0].Error);

        // Failed on the first try: no message was queued for them and nothing is waiting.
        var queue = Azurite.Queues.GetQueueClient(pipeline.Options.Queue);
        var properties = await queue.GetPropertiesAsync();
        Assert.Equal(0, properties.Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task APoisonMessageIsDeadLetteredAndItsImageFailed()
    {
        await using var pipeline = await PipelineHarness.StartAsync(maxAttempts: 2, watch: false);
        var name = $"{Azurite.Unique("poison")}/field.jpg";
        await PipelineHarness.UploadAsync(Containers.Uploads, name, Samples.All()[0].Data);
        // Segmented as another replica would (no crops handed over in this process), so classification reads the crop's blob.
        var classes = pipeline.Services.GetRequiredService<LeukocyteClassifier>().Card.Classes;
        var segmentation = new SegmentationStage(
            pipeline.Services.GetRequiredService<IBlobStore>(), pipeline.Results, pipeline.Services.GetRequiredService<IMessageSender>(), new LeukocyteSegmenter(), classes);
        var row = await segmentation.ProcessAsync(name, null, CancellationToken.None);
        Assert.Equal(ImageRow.Classifying, row.Status);

        // Ruin the crop after segmentation: classification can never succeed.
        await PipelineHarness.UploadAsync(Containers.Crops, $"{PipelineIds.CropFolder(row.ImageId, row.BlobETag!)}0.png", "not a png"u8.ToArray());
        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, [name], TimeSpan.FromMinutes(1));
        Assert.Equal(ImageStatus.Failed, rows[0].Status);
        Assert.Contains("after 2 attempts", rows[0].Error);
        Assert.Contains("is not an image", rows[0].Error);

        // The stage fails the row while it handles the last delivery; the transport dead-letters the message once the
        // handler has returned, a moment later: looked for until it is there (the deadline only bounds a hang).
        var transport = pipeline.Services.GetRequiredService<IMessageTransport>();
        var dead = await transport.PeekDeadLettersAsync(10, CancellationToken.None);
        for (var deadline = DateTime.UtcNow.AddMinutes(1); dead is { Count: 0 } && DateTime.UtcNow < deadline; dead = await transport.PeekDeadLettersAsync(10, CancellationToken.None))
        {
            await Task.Delay(100);
        }

        var letter = Assert.Single(dead!);
        Assert.Contains("after 2 attempts", letter.Properties["deadLetterReason"]);
    }

    private static string Json(ImageRow row) => System.Text.Json.JsonSerializer.Serialize(row);
}

[CollectionDefinition("Azurite", DisableParallelization = true)]
public sealed class AzuriteCollection;
