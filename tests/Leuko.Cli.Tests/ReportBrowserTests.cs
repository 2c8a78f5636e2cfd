using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace Leuko.Cli.Tests;

/// <summary>
/// Opens report.html in a real headless Chromium (Debian's <c>chromium</c>, driven by Playwright; no browser download)
/// and checks what a person would see. Set LEUKO_CHROMIUM to use another Chromium binary.
/// </summary>
public class ReportBrowserTests
{
    internal static string ChromiumPath()
    {
        var path = Environment.GetEnvironmentVariable("LEUKO_CHROMIUM") is { Length: > 0 } p ? p : "/usr/bin/chromium";
        Assert.True(File.Exists(path), $"Chromium not found at '{path}': install it (apt-get install -y chromium; .ci/setup does) or set LEUKO_CHROMIUM");
        return path;
    }

    [Fact]
    public async Task TheReportShowsTheSummaryChartAndEveryImageWithItsOverlay()
    {
        using var inputs = new TempDir();
        using var output = new TempDir();
        foreach (var file in Directory.GetFiles(CliRunner.SampleImages))
        {
            File.Copy(file, Path.Combine(inputs.Path, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(inputs.Path, "broken.jpg"), "not a photograph");
        var run = await CliRunner.RunAsync("analyze", inputs.Path, "--out", output.Path);
        Assert.Equal(1, run.ExitCode);
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(output.Path, "results.json")))!;
        var summary = results["summary"]!;
        var shown = results["images"]!.AsArray().Where(i => i!["annotated"] is not null).ToList();
        Assert.Equal(6, shown.Count);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = ChromiumPath(), Headless = true });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1200, Height = 900 } });
        var requests = new List<string>();
        page.Request += (_, request) => requests.Add(request.Url);
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        await page.GotoAsync(new Uri(Path.Combine(output.Path, "report.html")).AbsoluteUri);

        // The summary says what results.json says.
        foreach (var (key, field) in new[] { ("images", "images"), ("completed", "completed"), ("failed", "failed"), ("cells", "cells"), ("needs-review", "needsReview") })
        {
            Assert.Equal(summary[field]!.GetValue<int>().ToString(), await page.Locator($"#summary [data-key='{key}'] dd").InnerTextAsync());
        }

        // One bar per class, with the run's differential counts.
        foreach (var (name, count) in summary["differential"]!.AsObject())
        {
            var bar = page.Locator($"#differential-chart g.bar[data-class='{name}']");
            Assert.Equal(count!["count"]!.GetValue<int>().ToString(), await bar.GetAttributeAsync("data-count"));

            // Its 95% interval, as results.json gives it.
            var interval = await page.Locator($"#differential tr[data-class='{name}'] td.interval").InnerTextAsync();
            Assert.Equal(FormattableString.Invariant($"{count["percentLow"]!.GetValue<double>():0.#}–{count["percentHigh"]!.GetValue<double>():0.#}"), interval);
        }

        // Seven cells are far fewer than a manual differential's 100: the report says the percentages are rough.
        Assert.Contains("Fewer than 100 cells were counted", await page.Locator("#interval-note").InnerTextAsync());

        // Every cell in the grid, under its class, cells to review first; each tile links to its image's article.
        var tiles = page.Locator("#cells figure.tile");
        Assert.Equal(summary["cells"]!.GetValue<int>(), await tiles.CountAsync());
        foreach (var (name, count) in summary["differential"]!.AsObject().Concat(summary["otherCells"]!.AsObject().Select(o => KeyValuePair.Create(o.Key, (JsonNode?)new JsonObject { ["count"] = o.Value!.GetValue<int>() }))))
        {
            var grid = page.Locator($"#cells .grid[data-class='{name}'] figure.tile");
            Assert.Equal(count!["count"]!.GetValue<int>(), await grid.CountAsync());
            var review = await grid.EvaluateAllAsync<bool[]>("tiles => tiles.map(t => t.classList.contains('review'))");
            Assert.Equal(review.OrderByDescending(r => r), review); // flagged cells first
        }

        var firstTile = tiles.First;
        Assert.Equal("lazy", await firstTile.Locator("img").GetAttributeAsync("loading"));
        var target = (await firstTile.Locator("a").GetAttributeAsync("href"))!;
        Assert.Equal(1, await page.Locator($"article.image{target}").CountAsync());
        await firstTile.Locator("a").ClickAsync();
        Assert.EndsWith(target, page.Url);

        // The failed input is listed with its reason.
        Assert.Contains("broken.jpg", await page.Locator("#problems tr.failed").InnerTextAsync());

        // Every image rendered, with its overlay on top of it: one box per cell, review cells in amber.
        var articles = page.Locator("article.image");
        Assert.Equal(shown.Count, await articles.CountAsync());
        int reviewBoxes = 0;
        for (int i = 0; i < shown.Count; i++)
        {
            var article = articles.Nth(i);
            await article.ScrollIntoViewIfNeededAsync();
            var img = article.Locator("img");
            await page.WaitForFunctionAsync("img => img.complete", await img.ElementHandleAsync());
            Assert.True(await img.EvaluateAsync<int>("img => img.naturalWidth") > 0, $"image {i} did not render");
            var cells = shown[i]!["cells"]!.AsArray();
            Assert.Equal(cells.Count, await article.Locator("svg.overlay rect.cell").CountAsync());
            var imageBox = (await img.BoundingBoxAsync())!;
            var overlayBox = (await article.Locator("svg.overlay").BoundingBoxAsync())!;
            Assert.Equal(imageBox.Width, overlayBox.Width, 1);
            Assert.Equal(imageBox.Height, overlayBox.Height, 1);
            var review = article.Locator("svg.overlay rect.cell.review");
            Assert.Equal(cells.Count(c => c!["needsReview"]!.GetValue<bool>()), await review.CountAsync());
            for (int k = 0; k < await review.CountAsync(); k++, reviewBoxes++)
            {
                Assert.Equal("rgb(241, 196, 15)", await review.Nth(k).EvaluateAsync<string>("e => getComputedStyle(e).stroke"));
            }
        }

        Assert.Equal(summary["needsReview"]!.GetValue<int>(), reviewBoxes);

        // The filter shows only the images with cells to review.
        await page.Locator("#only-review").CheckAsync();
        int withReview = shown.Count(i => i!["cells"]!.AsArray().Any(c => c!["needsReview"]!.GetValue<bool>()));
        Assert.Equal(withReview, await page.Locator("article.image:visible").CountAsync());
        await page.Locator("#only-review").UncheckAsync();

        // Self-contained: nothing but local files was asked for, and no script failed.
        Assert.All(requests, url => Assert.StartsWith("file://", url));
        Assert.Empty(errors);

        var screenshot = Path.Combine(AppContext.BaseDirectory, "report-screenshot.png");
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 10_000);
    }
}
