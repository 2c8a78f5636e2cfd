using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Leuko.Cli.Analysis;
using Leuko.Pipeline;

namespace Leuko.Cli.Reports;

/// <summary>
/// <c>report.html</c>: one page that needs no network (styles, chart and script inline; images are the annotated
/// copies beside it in <c>annotated/</c>): the run summary, the differential as a bar chart, failed and skipped
/// inputs, every cell in a grid grouped by class (cells to review first, as technologists review them), and every
/// image with a hoverable overlay of its cells; cells to review are marked in amber.
/// </summary>
internal sealed class HtmlReport : IResultFile
{
    private static readonly HtmlEncoder Html = HtmlEncoder.Create(System.Text.Unicode.UnicodeRanges.All);
    private static readonly UTF8Encoding Utf8 = new(false);

    private readonly ModelRecord _model;
    private readonly IReadOnlyList<SkippedInput> _skipped;
    private readonly PartFile _page;
    private readonly string _imagesPart;
    private readonly string _failedPart;
    private readonly StreamWriter _images;
    private readonly StreamWriter _failed;
    private readonly StringBuilder _b = new();
    private readonly Dictionary<string, (int Index, StreamWriter Review, StreamWriter Accepted)> _grid = new(StringComparer.Ordinal);
    private int _imageCount;
    private int _failedCount;

    /// <summary>
    /// The page's sections come in this order: summary, differential, failed and skipped inputs, cells by class, images.
    /// The summary is known last, so the failed inputs, the images and each class's cells (two files per class: to
    /// review, accepted) are written to part files beside the report as they come, and the page is put together from
    /// them at the end (as <c>report.html.part</c>, renamed when complete): memory stays flat in the number of images.
    /// </summary>
    public HtmlReport(string path, ModelRecord model, IReadOnlyList<SkippedInput> skipped)
    {
        Path = path;
        _model = model;
        _skipped = skipped;
        _page = new PartFile(path);
        _imagesPart = path + ".images.part";
        _failedPart = path + ".failed.part";
        _images = new StreamWriter(_imagesPart, false, Utf8);
        _failed = new StreamWriter(_failedPart, false, Utf8);
    }

    public string Path { get; }

    public void Write(ImageRecord image)
    {
        if (image.Status == ImageStatus.Failed)
        {
            _failed.Write($"<tr class=\"failed\"><td>{E(image.Source)}</td><td><span class=\"badge failed\">failed</span></td><td>{E(image.Error ?? "")}</td></tr>\n");
            _failedCount++;
        }

        if (image.Annotated is not null)
        {
            _b.Clear();
            Image(_b, image, _model.DifferentialClasses, _imageCount);
            _images.Write(_b);
            foreach (var cell in image.Cells)
            {
                var (review, accepted) = GridParts(cell.Class);
                _b.Clear();
                Tile(_b, image, cell, _imageCount);
                (cell.NeedsReview ? review : accepted).Write(_b);
            }

            _imageCount++;
        }
    }

    /// <summary>The two part files of a class's cells, opened when its first cell comes.</summary>
    private (StreamWriter Review, StreamWriter Accepted) GridParts(string cellClass)
    {
        if (!_grid.TryGetValue(cellClass, out var parts))
        {
            int index = _grid.Count;
            parts = (index, new StreamWriter(GridPart(index, "review"), false, Utf8), new StreamWriter(GridPart(index, "accepted"), false, Utf8));
            _grid[cellClass] = parts;
        }

        return (parts.Review, parts.Accepted);
    }

    private string GridPart(int index, string kind) => $"{Path}.cells-{index}.{kind}.part";

    public void Complete(RunSummary s)
    {
        _images.Dispose();
        _failed.Dispose();
        foreach (var (_, review, accepted) in _grid.Values)
        {
            review.Dispose();
            accepted.Dispose();
        }

        var classes = _model.DifferentialClasses;
        using var page = new StreamWriter(_page.Part, false, Utf8);
        var b = new StringBuilder();
        b.Append("""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Leukocyte analysis report</title>
            <style>
            :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
            body { margin: 0 auto; max-width: 1100px; padding: 1.5rem; }
            h1 { margin: 0 0 .25rem; } .muted { color: #5d6675; }
            section { background: #fff; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; box-shadow: 0 1px 3px #0002; }
            #summary dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .75rem; margin: 0; }
            #summary dl div { background: #f0f2f5; border-radius: 6px; padding: .5rem .75rem; }
            #summary dt { font-size: .8rem; color: #5d6675; } #summary dd { margin: 0; font-size: 1.4rem; font-weight: 600; }
            table { border-collapse: collapse; width: 100%; font-size: .9rem; }
            th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e3e6ea; }
            td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
            tr.review td { background: #fdf3c4; }
            .badge { display: inline-block; border-radius: 999px; padding: 0 .6rem; font-size: .8rem; font-weight: 600; color: #fff; }
            .badge.completed { background: #27AE60; } .badge.no-leukocytes { background: #7F8C8D; } .badge.failed { background: #C0392B; }
            .badge.review { background: #F1C40F; color: #000; }
            .frame { position: relative; max-width: 720px; margin: .5rem 0; }
            .frame img { display: block; width: 100%; height: auto; }
            .frame svg.overlay { position: absolute; inset: 0; width: 100%; height: 100%; }
            .overlay rect.cell { fill: transparent; stroke: transparent; stroke-width: 3; cursor: help; }
            .overlay rect.cell:hover { stroke: #fff; fill: #ffffff22; }
            .overlay rect.cell.review { stroke: #F1C40F; stroke-width: 4; stroke-dasharray: 10 6; }
            article.image { border-top: 1px solid #e3e6ea; padding-top: .75rem; margin-top: .75rem; }
            article.image h3 { font-size: 1rem; margin: 0; word-break: break-all; }
            .swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; vertical-align: middle; margin-right: .3rem; }
            .filters { margin: .5rem 0; }
            body.only-review article.image:not([data-review]) { display: none; }
            .grid { display: flex; flex-wrap: wrap; gap: .5rem; margin: .25rem 0 1rem; }
            .tile { margin: 0; width: 96px; font-size: .75rem; text-align: center; }
            .tile a { display: block; position: relative; width: 96px; height: 96px; overflow: hidden; border-radius: 4px; background: #e3e6ea; outline: 2px solid transparent; }
            .tile a:focus, .tile a:hover { outline-color: #1d2330; }
            .tile.review a { outline: 3px dashed #F1C40F; }
            .tile img { position: absolute; max-width: none; }
            .tile figcaption { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
            </style>
            </head>
            <body>
            """);
        b.Append("<header><h1>Leukocyte analysis</h1><p class=\"muted\">")
            .Append(E($"leuko analyze · model {_model.Name} {_model.Version} · {s.Images} images in {s.Seconds:0.0} s ({s.ImagesPerSecond:0.0} images/s)"))
            .Append("</p></header>\n");

        b.Append("<section id=\"summary\"><h2>Summary</h2><dl>\n");
        Stat(b, "images", "Images", s.Images);
        Stat(b, "completed", "With leukocytes", s.Completed);
        Stat(b, "no-leukocytes", "Without leukocytes", s.NoLeukocytes);
        Stat(b, "failed", "Failed", s.Failed);
        Stat(b, "skipped", "Skipped (not images)", s.Skipped);
        if (s.NotAnalysed > 0)
        {
            Stat(b, "not-analysed", "Not analysed (the run was interrupted)", s.NotAnalysed);
        }

        Stat(b, "cells", "Cells found", s.Cells);
        Stat(b, "needs-review", "Cells to review", s.NeedsReview);
        b.Append("</dl></section>\n");

        b.Append("<section id=\"differential\"><h2>Differential count</h2>\n");
        Chart(b, s.Differential, classes);
        b.Append("<table><thead><tr><th>Class</th><th class=\"num\">Cells</th><th class=\"num\">%</th><th class=\"num\">95% interval</th></tr></thead><tbody>\n");
        foreach (var c in classes)
        {
            var n = s.Differential[c];
            b.Append($"<tr data-class=\"{E(c)}\"><td><span class=\"swatch\" style=\"background:{Annotator.ColourOf(c, classes)}\"></span>{E(c)}</td>")
                .Append($"<td class=\"num\">{n.Count}</td><td class=\"num\">{F(n.Percent)}</td><td class=\"num interval\">{F(n.PercentLow)}&ndash;{F(n.PercentHigh)}</td></tr>\n");
        }

        b.Append("</tbody></table>\n");
        int counted = s.Differential.Values.Sum(n => n.Count);
        b.Append("<p id=\"interval-note\">")
            .Append(E($"The interval is the exact binomial 95% confidence interval of each share of the {counted} cells counted (as in Rümke's tables)."))
            .Append(counted < ClassCount.ReferenceCount
                ? E($" Fewer than {ClassCount.ReferenceCount} cells were counted: the percentages are rough estimates; count more fields for a differential.")
                : "")
            .Append("</p>\n");
        b.Append("<p id=\"other-cells\">Other cells seen (not in the differential, always to review): ")
            .Append(s.OtherCells.Values.Sum() == 0
                ? "none"
                : E(string.Join(", ", s.OtherCells.Where(o => o.Value > 0).Select(o => $"{o.Value} {o.Key}"))))
            .Append("</p></section>\n");

        if (_failedCount > 0 || _skipped.Count > 0)
        {
            b.Append("<section id=\"problems\"><h2>Failed and skipped inputs</h2><table><thead><tr><th>Input</th><th>Outcome</th><th>Reason</th></tr></thead><tbody>\n");
            Flush(page, b);
            Append(page, _failedPart);
            foreach (var k in _skipped)
            {
                b.Append($"<tr class=\"skipped\"><td>{E(k.Source)}</td><td>skipped</td><td>{E(k.Reason)}</td></tr>\n");
            }

            b.Append("</tbody></table></section>\n");
        }

        b.Append("<section id=\"cells\"><h2>Cells by class</h2>\n")
            .Append("<p class=\"muted\">Every cell found, grouped by class as a technologist reviews them, cells to review (amber) first; a cell links to its image.</p>\n");
        Flush(page, b);
        foreach (var c in _model.DifferentialClasses.Concat(_model.OtherClasses).Concat(_grid.Keys.Order(StringComparer.Ordinal)).Distinct())
        {
            if (!_grid.TryGetValue(c, out var parts))
            {
                continue;
            }

            int index = parts.Index;
            bool other = !_model.DifferentialClasses.Contains(c);
            b.Append($"<h3 data-class=\"{E(c)}\"><span class=\"swatch\" style=\"background:{Annotator.ColourOf(c, _model.Classes)}\"></span>{E(c)}")
                .Append(other ? " <span class=\"muted\">(not in the differential)</span>" : "").Append("</h3>\n")
                .Append($"<div class=\"grid\" data-class=\"{E(c)}\">\n");
            Flush(page, b);
            Append(page, GridPart(index, "review"));
            Append(page, GridPart(index, "accepted"));
            b.Append("</div>\n");
        }

        b.Append("</section>\n");
        b.Append("<section id=\"images\"><h2>Images</h2>\n");
        b.Append("<label class=\"filters\"><input type=\"checkbox\" id=\"only-review\"> only images with cells to review</label>\n");
        Flush(page, b);
        Append(page, _imagesPart);
        b.Append("""
            </section>
            <script>
            document.getElementById('only-review').addEventListener('change', e => document.body.classList.toggle('only-review', e.target.checked));
            </script>
            </body>
            </html>

            """);
        Flush(page, b);
        page.Dispose();
        _page.Publish();
        DeleteParts();
    }

    public void Dispose()
    {
        PartFile.CloseAbandoned([_images, _failed, .. _grid.Values.SelectMany(g => new IDisposable[] { g.Review, g.Accepted })]);
        DeleteParts();
    }

    private void DeleteParts()
    {
        File.Delete(_imagesPart);
        File.Delete(_failedPart);
        _page.Discard();
        for (int i = 0; i < _grid.Count; i++)
        {
            File.Delete(GridPart(i, "review"));
            File.Delete(GridPart(i, "accepted"));
        }
    }

    private static void Flush(StreamWriter page, StringBuilder b)
    {
        page.Write(b);
        b.Clear();
    }

    private static void Append(StreamWriter page, string part)
    {
        page.Flush();
        using var source = File.OpenRead(part);
        source.CopyTo(page.BaseStream);
    }

    private static void Stat(StringBuilder b, string key, string label, int value) =>
        b.Append($"<div data-key=\"{key}\"><dt>{E(label)}</dt><dd>{value}</dd></div>\n");

    private static void Chart(StringBuilder b, IReadOnlyDictionary<string, ClassCount> differential, IReadOnlyList<string> classes)
    {
        const int barHeight = 28, labelWidth = 130, width = 640;
        int height = classes.Count * (barHeight + 8) + 8;
        b.Append($"<svg id=\"differential-chart\" role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"100%\" style=\"max-width:{width}px\" aria-label=\"Differential count by class\">\n");
        for (int i = 0; i < classes.Count; i++)
        {
            var c = classes[i];
            var n = differential[c];
            int y = 8 + i * (barHeight + 8);
            double w = (width - labelWidth - 110) * n.Percent / 100.0;
            b.Append($"<g class=\"bar\" data-class=\"{E(c)}\" data-count=\"{n.Count}\">")
                .Append($"<text x=\"0\" y=\"{y + 19}\" font-size=\"14\">{E(c)}</text>")
                .Append($"<rect x=\"{labelWidth}\" y=\"{y}\" width=\"{F(w)}\" height=\"{barHeight}\" rx=\"3\" fill=\"{Annotator.ColourOf(c, classes)}\"/>")
                .Append($"<text x=\"{F(labelWidth + w + 6)}\" y=\"{y + 19}\" font-size=\"14\">{n.Count} ({F(n.Percent)}%)</text></g>\n");
        }

        b.Append("</svg>\n");
    }

    private static void Image(StringBuilder b, ImageRecord image, IReadOnlyList<string> classes, int index)
    {
        int review = image.Cells.Count(c => c.NeedsReview);
        b.Append($"<article class=\"image\" id=\"image-{index}\" data-status=\"{image.Status}\" data-cells=\"{image.Cells.Count}\"")
            .Append(review > 0 ? $" data-review=\"{review}\"" : "").Append(">\n")
            .Append($"<h3>{E(image.Source)}</h3>\n<p><span class=\"badge {image.Status}\">{image.Status}</span> ")
            .Append(E(string.Join(", ", classes.Where(c => image.Differential[c].Count > 0).Select(c => $"{c} {image.Differential[c].Count}")
                .Concat(image.OtherCells.Where(o => o.Value > 0).Select(o => $"other: {o.Key} {o.Value}")))))
            .Append(image.Scale is { } scale ? $" <span class=\"muted\">{scale.MicronsPerPixel.ToString("0.####", CultureInfo.InvariantCulture)} µm/px ({E(scale.Source)})</span>" : "")
            .Append(review > 0 ? $" <span class=\"badge review\">{review} to review</span>" : "").Append("</p>\n");
        int w = image.Width ?? 0, h = image.Height ?? 0;
        b.Append($"<div class=\"frame\"><img src=\"{E(Uri.EscapeDataString(image.Annotated!).Replace("%2F", "/"))}\" width=\"{w}\" height=\"{h}\" loading=\"lazy\" alt=\"{E(image.Source)} with its leukocytes outlined\">")
            .Append($"<svg class=\"overlay\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\">");
        foreach (var cell in image.Cells)
        {
            b.Append($"<rect class=\"cell{(cell.NeedsReview ? " review" : "")}\" data-class=\"{E(cell.Class)}\" x=\"{cell.Box.X}\" y=\"{cell.Box.Y}\" width=\"{cell.Box.Width}\" height=\"{cell.Box.Height}\">")
                .Append($"<title>{E($"cell {cell.Index}: {cell.Class} {Pct(cell.Confidence)}{(cell.NeedsReview ? ", needs review" : "")}")}</title></rect>");
        }

        b.Append("</svg></div>\n");
        if (image.Cells.Count > 0)
        {
            b.Append("<table class=\"cells\"><thead><tr><th>Cell</th><th>Class</th><th class=\"num\">Confidence</th><th>Review</th><th>Box (x, y, w, h)</th></tr></thead><tbody>\n");
            foreach (var cell in image.Cells)
            {
                b.Append($"<tr{(cell.NeedsReview ? " class=\"review\"" : "")}><td>{cell.Index}</td>")
                    .Append($"<td><span class=\"swatch\" style=\"background:{Annotator.ColourOf(cell.Class, classes)}\"></span>{E(cell.Class)}</td>")
                    .Append($"<td class=\"num\">{Pct(cell.Confidence)}</td><td>{(cell.NeedsReview ? "needs review" : "")}</td>")
                    .Append($"<td>{cell.Box.X}, {cell.Box.Y}, {cell.Box.Width}, {cell.Box.Height}</td></tr>\n");
            }

            b.Append("</tbody></table>\n");
        }

        b.Append("</article>\n");
    }

    /// <summary>Side of a cell's tile in the grid, in CSS pixels.</summary>
    private const int TileSize = 96;

    /// <summary>
    /// One cell of the grid: its square around the box, cut from the annotated image by CSS (the image loads once,
    /// lazily, for all its cells: no crop files), with class and confidence; it links to the image's article.
    /// </summary>
    private static void Tile(StringBuilder b, ImageRecord image, CellResult cell, int imageIndex)
    {
        // The square a little larger than the box, so that the cell's edge and its outline show.
        double side = Math.Max(cell.Box.Width, cell.Box.Height) * 1.15;
        double scale = TileSize / Math.Max(side, 1);
        double left = (cell.Box.X + cell.Box.Width / 2.0 - side / 2) * scale, top = (cell.Box.Y + cell.Box.Height / 2.0 - side / 2) * scale;
        string title = $"{image.Source}, cell {cell.Index}: {cell.Class} {Pct(cell.Confidence)}{(cell.NeedsReview ? $", needs review ({cell.ReviewReason})" : "")}";
        b.Append($"<figure class=\"tile{(cell.NeedsReview ? " review" : "")}\" data-class=\"{E(cell.Class)}\" data-image=\"{imageIndex}\" data-cell=\"{cell.Index}\">")
            .Append($"<a href=\"#image-{imageIndex}\" title=\"{E(title)}\">")
            .Append($"<img src=\"{E(Uri.EscapeDataString(image.Annotated!).Replace("%2F", "/"))}\" loading=\"lazy\" alt=\"\" ")
            .Append($"style=\"width:{F((image.Width ?? 0) * scale)}px;height:{F((image.Height ?? 0) * scale)}px;left:{F(-left)}px;top:{F(-top)}px\"></a>")
            .Append($"<figcaption>{Pct(cell.Confidence)}{(cell.NeedsReview ? " · review" : "")}</figcaption></figure>\n");
    }

    private static string Pct(double probability) => (probability * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string E(string text) => Html.Encode(text);

    private static string F(double value) => value.ToString("0.#", CultureInfo.InvariantCulture);
}
