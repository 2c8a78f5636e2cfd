using System.Globalization;
using CsvHelper;
using Leuko.Cli.Analysis;

namespace Leuko.Cli.Reports;

/// <summary>
/// <c>results.csv</c>: one row per cell (RFC 4180, CRLF), with its image, box, class, confidence, review flag and
/// reason, the image's physical scale and how it was obtained, and the probability of every class. Written as the
/// run goes, image by image in input order, as a <see cref="PartFile"/>.
/// </summary>
internal sealed class CsvReport : IResultFile
{
    private readonly StreamWriter _writer;
    private readonly CsvWriter _csv;
    private readonly IReadOnlyList<string> _classes;
    private readonly PartFile _file;

    public CsvReport(string path, ModelRecord model)
    {
        Path = path;
        _file = new PartFile(path);
        _classes = model.Classes;
        _writer = new StreamWriter(_file.Part);
        _csv = CsvWriter.Create(_writer, null, false);
        _csv.WriteHeader(new[] { "source", "cell", "class", "confidence", "needs_review", "x", "y", "width", "height", "area", "review_reason", "microns_per_pixel", "scale_source" }
            .Concat(_classes.Select(c => $"p_{c.ToLowerInvariant()}")).ToArray());
    }

    public string Path { get; }

    public void Write(ImageRecord image)
    {
        foreach (var cell in image.Cells)
        {
            _csv.WriteRecord(new[]
                {
                    image.Source, N(cell.Index), cell.Class, N(cell.Confidence), cell.NeedsReview ? "true" : "false",
                    N(cell.Box.X), N(cell.Box.Y), N(cell.Box.Width), N(cell.Box.Height), N(cell.Area),
                    cell.ReviewReason ?? "", image.Scale is { } scale ? N(scale.MicronsPerPixel) : "", image.Scale?.Source ?? "",
                }
                .Concat(_classes.Select(c => N(cell.Probabilities[c]))).ToArray());
        }
    }

    public void Complete(RunSummary summary)
    {
        Close();
        _file.Publish();
    }

    public void Dispose()
    {
        PartFile.CloseAbandoned(_csv, _writer);
        _file.Discard();
    }

    private void Close()
    {
        _csv.Dispose();
        _writer.Dispose();
    }

    private static string N(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
