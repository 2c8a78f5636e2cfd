using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;
using Microsoft.Playwright;

namespace Leuko.Cli.Tests;

/// <summary>
/// The review page in a real headless Chromium (Debian's, as <see cref="ReportBrowserTests"/> launches it) against a
/// real <c>leuko serve</c> on Azurite: sign in with a reviewer's key, find the uploaded images, move cells by click and
/// by keyboard, sign off, and see the stored rows, the differential, the signed webhook and a second session agree.
/// </summary>
public class ReviewPageTests
{
    private const string Reviewer = "reviewer";
    private const string Lims = "lims";
    private const string Viewer = "viewer";

    private static readonly Dictionary<string, string> Clients = new() { [Reviewer] = "read,review", [Lims] = "read,subscribe", [Viewer] = "read" };

    [Fact]
    public async Task AReviewerReclassifiesCellsByClickAndKeyboardAndSignsOff()
    {
        await using var serve = await ServeHost.StartAsync(Clients);
        var prefix = Azurite.Unique("review");
        var uploads = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient(Containers.Uploads);
        await uploads.CreateIfNotExistsAsync();
        var names = Directory.GetFiles(CliRunner.SampleImages).Order(StringComparer.Ordinal).ToList();
        var ids = new List<string>();
        foreach (var file in names)
        {
            var name = $"{prefix}/{Path.GetFileName(file)}";
            await using var content = File.OpenRead(file);
            await uploads.UploadBlobAsync(name, content);
            ids.Add(PipelineIds.Image(name));
        }

        await serve.WaitForImagesAsync(Reviewer, ids);
        var images = new List<JsonNode>();
        foreach (var id in ids)
        {
            images.Add((await serve.SendAsync(Reviewer, HttpMethod.Get, $"/api/images/{id}")).Body!);
        }

        // The image with the most cells (two in these samples) is the one reviewed.
        var target = images.OrderByDescending(i => i["cells"]!.AsArray().Count).ThenBy(i => i["id"]!.GetValue<string>(), StringComparer.Ordinal).First();
        var imageId = target["id"]!.GetValue<string>();
        Assert.True(target["cells"]!.AsArray().Count >= 2, "no sample image has two cells");
        await using var receiver = await WebhookReceiver.StartAsync();
        var (created, subscription) = await serve.SendAsync(Lims, HttpMethod.Post, "/api/webhooks",
            new JsonObject { ["url"] = receiver.Url, ["types"] = new JsonArray("image.reviewed"), ["sourcePrefix"] = $"uploads/{prefix}/" }.ToJsonString());
        Assert.Equal(HttpStatusCode.Created, created);
        var secret = subscription!["secret"]!.GetValue<string>();
        try
        {
            using var playwright = await Playwright.CreateAsync();
            await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ReportBrowserTests.ChromiumPath(), Headless = true });
            await using var context = await browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 } });
            var page = await context.NewPageAsync();
            var requests = new List<string>();
            page.Request += (_, request) => requests.Add(request.Url);
            var errors = new List<string>();
            page.PageError += (_, error) => errors.Add(error);

            await SignInAsync(page, serve);
            Assert.Equal($"Signed in as {Reviewer} (read, review)", await page.Locator("#who").InnerTextAsync());

            // The list has every uploaded image, with how many of its cells need review.
            foreach (var image in images)
            {
                var row = page.Locator($"#images tr[data-id='{image["id"]!.GetValue<string>()}']");
                await row.WaitForAsync();
                Assert.Equal(image["cells"]!.AsArray().Count(c => c!["needsReview"]!.GetValue<bool>()).ToString(CultureInfo.InvariantCulture),
                    await row.Locator("td.needs-review").InnerTextAsync());
            }

            await page.Locator($"#images tr[data-id='{imageId}'] a").ClickAsync();
            await page.WaitForSelectorAsync($"body[data-ready='image/{imageId}']");
            var tiles = page.Locator("#grid .tile");
            Assert.Equal(target["cells"]!.AsArray().Count, await tiles.CountAsync());
            await page.WaitForFunctionAsync("() => [...document.querySelectorAll('#grid .tile img')].every(i => i.complete && i.naturalWidth > 0)");
            await page.WaitForFunctionAsync("() => document.getElementById('annotated').naturalWidth > 0");

            // By click: select the first tile, click a class of the palette.
            var first = tiles.First;
            int firstIndex = int.Parse((await first.GetAttributeAsync("data-index"))!, CultureInfo.InvariantCulture);
            var firstClass = (await first.GetAttributeAsync("data-class"))!;
            var clickClass = FiveClasses.First(c => c != firstClass);
            await first.ClickAsync();
            await page.Locator($"#palette button[data-class='{clickClass}']").ClickAsync();
            await page.Locator($"#grid .tiles[data-class='{clickClass}'] .tile[data-index='{firstIndex}']").WaitForAsync();
            await page.WaitForSelectorAsync("body[data-changes='1']");
            await AssertStoredAsync(imageId, firstIndex, firstClass, clickClass);
            await AssertDifferentialAsync(page, serve, imageId);

            // By keyboard: Home and the arrows move the focus; a class's key moves the focused cell.
            await page.Keyboard.PressAsync("Home");
            await page.Keyboard.PressAsync("ArrowRight");
            var focused = page.Locator("#grid .tile:focus");
            Assert.Equal(1, await focused.CountAsync());
            Assert.Equal(await tiles.Nth(1).GetAttributeAsync("data-index"), await focused.GetAttributeAsync("data-index"));
            int keyIndex = int.Parse((await focused.GetAttributeAsync("data-index"))!, CultureInfo.InvariantCulture);
            var keyFrom = (await focused.GetAttributeAsync("data-class"))!;
            var classes = await page.Locator("#palette button").EvaluateAllAsync<string[]>("bs => bs.map(b => b.dataset.class)");
            var keyClass = classes.First(c => c != keyFrom && c != clickClass && FiveClasses.Contains(c));
            await page.Keyboard.PressAsync((Array.IndexOf(classes, keyClass) + 1).ToString(CultureInfo.InvariantCulture));
            await page.Locator($"#grid .tiles[data-class='{keyClass}'] .tile[data-index='{keyIndex}']").WaitForAsync();
            await page.WaitForSelectorAsync("body[data-changes='2']");
            await AssertStoredAsync(imageId, keyIndex, Original(target, keyIndex), keyClass);
            await AssertDifferentialAsync(page, serve, imageId);

            // The API refuses what the page never sends: an unknown class or cell, a client without the review role.
            var unknownClass = await serve.SendAsync(Reviewer, HttpMethod.Post, $"/api/images/{imageId}/cells/{firstIndex}/class", "{\"class\": \"MACROPHAGE\"}");
            Assert.Equal(HttpStatusCode.BadRequest, unknownClass.Status);
            Assert.Contains("unknown class 'MACROPHAGE'", unknownClass.Body!["detail"]!.GetValue<string>());
            Assert.Equal(HttpStatusCode.NotFound, (await serve.SendAsync(Reviewer, HttpMethod.Post, $"/api/images/{imageId}/cells/99/class", "{\"class\": \"LYMPHOCYTE\"}")).Status);
            Assert.Equal(HttpStatusCode.Forbidden, (await serve.SendAsync(Viewer, HttpMethod.Post, $"/api/images/{imageId}/cells/{firstIndex}/class", "{\"class\": \"LYMPHOCYTE\"}")).Status);

            await page.ScreenshotAsync(new() { Path = ScreenshotPath() });

            // Sign-off: the page says who signed, the state row records it, and a signed image.reviewed arrives.
            await page.Locator("#sign-off").ClickAsync();
            await page.WaitForSelectorAsync($"#signed[data-reviewer='{Reviewer}']");
            var state = (await Azurite.Tables.GetTableClient(TableReviewStore.ReviewsTable).GetEntityAsync<TableEntity>(imageId, "image")).Value;
            Assert.Equal(Reviewer, state.GetString("SignedOffBy"));
            await receiver.WaitForRequestsAsync(1);
            var delivery = Assert.Single(receiver.Requests);
            Assert.True(WebhookReceiver.SignedWith(delivery, secret), "the image.reviewed webhook is not signed with the subscription's secret");
            var payload = JsonNode.Parse(delivery.Body)!;
            Assert.Equal("image.reviewed", payload["type"]!.GetValue<string>());
            Assert.Equal(imageId, payload["data"]!["imageId"]!.GetValue<string>());
            Assert.Equal(Reviewer, payload["data"]!["reviewedBy"]!.GetValue<string>());
            Assert.Equal(2, payload["data"]!["reclassified"]!.GetValue<int>());
            var sheet = (await serve.SendAsync(Reviewer, HttpMethod.Get, $"/api/images/{imageId}/review")).Body!;
            foreach (var (name, count) in sheet["totals"]!["reviewedDifferential"]!.AsObject())
            {
                Assert.Equal(count!["count"]!.GetValue<int>(), payload["data"]!["differential"]![name]!.GetValue<int>());
            }

            // Signed off, the cells stay as they are: the page says so and the API refuses.
            await page.Locator("#grid .tile").First.FocusAsync();
            await page.Keyboard.PressAsync("1");
            Assert.Contains($"Signed off by {Reviewer}", await page.Locator("#message").InnerTextAsync());
            var late = await serve.SendAsync(Reviewer, HttpMethod.Post, $"/api/images/{imageId}/cells/{firstIndex}/class", "{\"class\": \"NOT_A_CELL\"}");
            Assert.Equal(HttpStatusCode.Conflict, late.Status);
            Assert.Contains("signed off by reviewer", late.Body!["detail"]!.GetValue<string>());
            Assert.Equal(HttpStatusCode.Conflict, (await serve.SendAsync(Reviewer, HttpMethod.Post, $"/api/images/{imageId}/sign-off")).Status);

            // A second browser session, signed in afresh, sees both cells where the first left them, and the sign-off.
            await using var second = await browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 800 } });
            var other = await second.NewPageAsync();
            other.Request += (_, request) => requests.Add(request.Url);
            await SignInAsync(other, serve);
            await other.Locator($"#images tr[data-id='{imageId}'] td.signed").WaitForAsync();
            Assert.StartsWith(Reviewer, await other.Locator($"#images tr[data-id='{imageId}'] td.signed").InnerTextAsync());
            await other.Locator($"#images tr[data-id='{imageId}'] a").ClickAsync();
            await other.WaitForSelectorAsync($"body[data-ready='image/{imageId}']");
            Assert.Equal(1, await other.Locator($"#grid .tiles[data-class='{clickClass}'] .tile[data-index='{firstIndex}']").CountAsync());
            Assert.Equal(1, await other.Locator($"#grid .tiles[data-class='{keyClass}'] .tile[data-index='{keyIndex}']").CountAsync());
            Assert.StartsWith($"Signed off by {Reviewer}", await other.Locator("#signed").InnerTextAsync());
            Assert.True(await other.Locator("#sign-off").IsDisabledAsync());

            // Nothing left this machine, and no script failed.
            Assert.NotEmpty(requests);
            Assert.All(requests, url =>
                Assert.True(new Uri(url.StartsWith("blob:", StringComparison.Ordinal) ? url["blob:".Length..] : url).Host is "127.0.0.1" or "localhost", $"a request left localhost: {url}"));
            Assert.Empty(errors);
        }
        finally
        {
            await serve.SendAsync(Lims, HttpMethod.Delete, $"/api/webhooks/{subscription!["subscription"]!["id"]!.GetValue<string>()}");
        }
    }

    private static async Task SignInAsync(IPage page, ServeHost serve)
    {
        await page.GotoAsync($"{serve.Url}/api/review");
        await page.Locator("#key").FillAsync(serve.Keys[Reviewer]);
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForSelectorAsync($"#who[data-client='{Reviewer}']");
    }

    private static IReadOnlyList<string> Differential(ServeHost serve) => ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"];

    /// <summary>The five classes of the differential, as the bundled model's card has them.</summary>
    private static readonly IReadOnlyList<string> FiveClasses = ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"];

    private static string Original(JsonNode image, int index) =>
        image["cells"]!.AsArray().Single(c => c!["index"]!.GetValue<int>() == index)!["class"]!.GetValue<string>();

    /// <summary>The cell's review row in Azurite's <c>reviews</c> table: original and reviewed class, the reviewer, a time.</summary>
    private static async Task AssertStoredAsync(string imageId, int index, string original, string reviewed)
    {
        var image = (await Azurite.Tables.GetTableClient(TableResultStore.ImagesTable).GetEntityAsync<TableEntity>(imageId, "image")).Value;
        var row = (await Azurite.Tables.GetTableClient(TableReviewStore.ReviewsTable)
            .GetEntityAsync<TableEntity>(imageId, TableReviewStore.CellKey(image.GetString("BlobETag"), index))).Value;
        Assert.Equal(original, row.GetString("OriginalClass"));
        Assert.Equal(reviewed, row.GetString("ReviewedClass"));
        Assert.Equal(Reviewer, row.GetString("Reviewer"));
        Assert.NotNull(row.GetDateTimeOffset("At"));
    }

    /// <summary>The page's reviewed differential is the API's, and the API's is the cells' reviewed classes counted, with their exact intervals.</summary>
    private static async Task AssertDifferentialAsync(IPage page, ServeHost serve, string imageId)
    {
        var sheet = (await serve.SendAsync(Reviewer, HttpMethod.Get, $"/api/images/{imageId}/review")).Body!;
        var reviewed = sheet["cells"]!.AsArray().Select(c => c!["reviewedClass"]!.GetValue<string>()).ToList();
        var differential = FiveClasses;
        int counted = reviewed.Count(differential.Contains);
        foreach (var name in differential)
        {
            var expected = ClassCount.Of(reviewed.Count(c => c == name), counted);
            var api = sheet["totals"]!["reviewedDifferential"]![name]!;
            Assert.Equal(expected.Count, api["count"]!.GetValue<int>());
            Assert.Equal(expected.PercentLow, api["percentLow"]!.GetValue<double>());
            Assert.Equal(expected.PercentHigh, api["percentHigh"]!.GetValue<double>());
            var row = page.Locator($"#differential tr[data-class='{name}']");
            Assert.Equal(expected.Count.ToString(CultureInfo.InvariantCulture), await row.Locator("td.reviewed").InnerTextAsync());
            Assert.Equal(FormattableString.Invariant($"{expected.PercentLow:0.#}–{expected.PercentHigh:0.#}"), await row.Locator("td.interval").InnerTextAsync());
        }

        Assert.Contains("Fewer than 100 cells were counted", await page.Locator("#interval-note").InnerTextAsync());
    }

    /// <summary>Where the screenshot goes: LEUKO_REVIEW_SCREENSHOT, or beside the test assembly.</summary>
    private static string ScreenshotPath() =>
        Environment.GetEnvironmentVariable("LEUKO_REVIEW_SCREENSHOT") is { Length: > 0 } path ? path : Path.Combine(AppContext.BaseDirectory, "review-page.png");
}
