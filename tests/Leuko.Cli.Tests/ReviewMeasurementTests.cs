using System.Diagnostics;
using System.Globalization;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using Microsoft.Playwright;
using OpenCvSharp;
using Xunit.Abstractions;

namespace Leuko.Cli.Tests;

/// <summary>
/// How the review page holds up with a batch of 2,000 cells (100 images of 20): the time to the first grid and the
/// time to reclassify a cell, in Chromium against <c>leuko serve</c> on Azurite. Figures are printed, never asserted
/// (a loaded machine changes them); see the README's "Review" section.
/// </summary>
public class ReviewMeasurementTests(ITestOutputHelper output)
{
    private const int Images = 100;
    private const int CellsPerImage = 20;
    private const int Changes = 10;

    private static readonly string[] Classes = ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"];

    [MeasureFact]
    public async Task ReviewMeasurement()
    {
        await Azurite.RequireAsync();
        var batchId = await SeedBatchAsync();

        await using var serve = await ServeHost.StartAsync(new Dictionary<string, string> { ["reviewer"] = "read,review" });
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ReportBrowserTests.ChromiumPath(), Headless = true });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 } });
        await page.GotoAsync($"{serve.Url}/api/review");
        await page.Locator("#key").FillAsync(serve.Keys["reviewer"]);
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForSelectorAsync("#who[data-client='reviewer']");

        var firstGrid = new List<double>();
        var visibleCrops = new List<double>();
        for (int run = 0; run < 3; run++)
        {
            await page.EvaluateAsync("() => { location.hash = ''; }");
            await page.WaitForSelectorAsync($"#batches tr[data-id='{batchId}']");
            var clock = Stopwatch.StartNew();
            await page.EvaluateAsync($"() => {{ location.hash = 'batch/{batchId}'; }}");
            await page.WaitForSelectorAsync($"body[data-ready='batch/{batchId}']");
            firstGrid.Add(clock.Elapsed.TotalMilliseconds);
            Assert.Equal(Images * CellsPerImage, await page.Locator("#grid .tile").CountAsync());
            await page.WaitForFunctionAsync(
                "() => [...document.querySelectorAll('#grid .tile img')].filter(i => { const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; }).every(i => i.complete && i.naturalWidth > 0)");
            visibleCrops.Add(clock.Elapsed.TotalMilliseconds);
            await page.EvaluateAsync("() => delete document.body.dataset.ready");
        }

        int loaded = await page.Locator("#grid .tile img[src]").CountAsync();
        var reclassify = new List<double>();
        await page.Locator("#grid .tile").First.ClickAsync();
        for (int i = 0; i < Changes; i++)
        {
            // A class of the five the focused cell is not in (its key is its place in the palette, 1 to 5).
            var from = await page.Locator("#grid .tile:focus").GetAttributeAsync("data-class");
            int key = 1 + Enumerable.Range(0, 5).Select(k => (k + i) % 5).First(k => Classes[k] != from);
            var clock = Stopwatch.StartNew();
            await page.Keyboard.PressAsync(key.ToString(CultureInfo.InvariantCulture));
            await page.WaitForSelectorAsync($"body[data-changes='{i + 1}']");
            reclassify.Add(clock.Elapsed.TotalMilliseconds);
        }

        output.WriteLine(FormattableString.Invariant(
            $"batch of {Images * CellsPerImage} cells ({Images} images), Chromium 1280x800; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
        output.WriteLine(FormattableString.Invariant($"time to first grid (sheet fetched, {Images * CellsPerImage} tiles laid out), ms: {string.Join(", ", firstGrid.Select(t => $"{t:0}"))}"));
        output.WriteLine(FormattableString.Invariant($"time until every visible crop is shown, ms: {string.Join(", ", visibleCrops.Select(t => $"{t:0}"))} ({loaded} crops fetched, lazily, of {Images * CellsPerImage})"));
        output.WriteLine(FormattableString.Invariant(
            $"time to reclassify (key press to grid and differential updated), ms: median {Median(reclassify):0}, max {reclassify.Max():0} over {Changes}"));
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>A batch of <see cref="Images"/> analysed images of <see cref="CellsPerImage"/> cells, written as the stages write them (uploads with receipts, so serve leaves them be).</summary>
    private static async Task<string> SeedBatchAsync()
    {
        var tables = Azurite.Tables;
        var results = new TableResultStore(tables);
        var blobs = new AzureBlobStore(Azurite.Blobs);
        await results.InitializeAsync(default);
        await blobs.InitializeAsync(default);
        var name = Azurite.Unique("measure");
        var batchId = PipelineIds.Batch($"{name}.zip");
        var samples = Directory.GetFiles(CliRunner.SampleImages).Order(StringComparer.Ordinal).ToList();
        var random = new Random(14);
        await Parallel.ForEachAsync(Enumerable.Range(0, Images), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            var file = samples[i % samples.Count];
            var upload = $"{batchId}/{i:D3}-{Path.GetFileName(file)}";
            var bytes = await File.ReadAllBytesAsync(file, ct);
            await blobs.PutAsync(Containers.Uploads, upload, bytes, "image/jpeg", null, ct);
            var etag = (await blobs.GetInfoAsync(Containers.Uploads, upload, ct))!.ETag;
            var id = PipelineIds.Image(upload);
            using var image = Cv2.ImDecode(bytes, ImreadModes.Color);
            var cells = new List<CellRow>();
            for (int k = 0; k < CellsPerImage; k++)
            {
                int x, y;
                string cls;
                double confidence;
                lock (random)
                {
                    (x, y, cls, confidence) = (random.Next(0, image.Width - 80), random.Next(0, image.Height - 80), Classes[random.Next(Classes.Length)], 0.5 + random.NextDouble() / 2);
                }

                using var crop = new Mat(image, new Rect(x, y, 80, 80));
                Cv2.ImEncode(".png", crop, out var png);
                var cropName = $"{PipelineIds.CropFolder(id, etag)}{k}.png";
                await blobs.PutAsync(Containers.Crops, cropName, png, "image/png", null, ct);
                cells.Add(new CellRow(id, k, cls, confidence, new Dictionary<string, double> { [cls] = confidence }, confidence < 0.7, new Box(x, y, 80, 80), 5000,
                    $"{x},{y} {x + 80},{y} {x + 80},{y + 80} {x},{y + 80}", $"{Containers.Crops}/{cropName}", confidence < 0.7 ? "low-confidence" : null, etag));
            }

            await results.UpsertCellsAsync(id, cells, ct);
            var counts = Classes.ToDictionary(c => c, c => cells.Count(x => x.Class == c));
            await results.TryWriteImageAsync(new ImageRow(id, $"archives/{name}.zip!{i:D3}.jpg", upload, batchId, ImageStatus.Completed, null, image.Width, image.Height,
                cells.Count, cells.Count(c => c.NeedsReview), counts, "seeded", 1, 1, null, etag, DateTimeOffset.UtcNow, new ScaleRecord(0.12, "estimated", 50), 1), ct);
            await results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, id, $"archives/{name}.zip!{i:D3}.jpg", ImageStatus.Completed, null, counts), ct);
            await results.AddReceiptsAsync(Containers.Uploads, [new BlobVersion(upload, etag)], ct);
        });
        await results.TryWriteBatchAsync(new BatchRow(batchId, $"archives/{name}.zip", BatchRow.Completed, null, Images, 0, 0, DateTimeOffset.UtcNow), default);
        return batchId;
    }
}
