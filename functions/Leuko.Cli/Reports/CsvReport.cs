using System.Globalization;
using CsvHelper;
using Leuko.Cli.Analysis;

namespace Leuko.Cli.Reports;

/// <summary>
/// <c>results.csv</c>: one row per cell (RFC 4180, CRLF), with its image, box, class, confidence, review flag and
/// reason, the image's physical scale and how it was obtained, and the probability of every class.
/// </summary>
internal static class CsvReport
{
    public static void Write(string path, ResultsDocument document)
    {
        using var writer = new StreamWriter(path);
        using var csv = CsvWriter.Create(writer, null, false);
        var classes = document.Model.Classes;
        csv.WriteHeader(new[] { "source", "cell", "class", "confidence", "needs_review", "x", "y", "width", "height", "area", "review_reason", "microns_per_pixel", "scale_source" }
            .Concat(classes.Select(c => $"p_{c.ToLowerInvariant()}")).ToArray());
        foreach (var image in document.Images)
        {
            foreach (var cell in image.Cells)
            {
                csv.WriteRecord(new[]
                    {
                        image.Source, N(cell.Index), cell.Class, N(cell.Confidence), cell.NeedsReview ? "true" : "false",
                        N(cell.Box.X), N(cell.Box.Y), N(cell.Box.Width), N(cell.Box.Height), N(cell.Area),
                        cell.ReviewReason ?? "", image.Scale is { } scale ? N(scale.MicronsPerPixel) : "", image.Scale?.Source ?? "",
                    }
                    .Concat(classes.Select(c => N(cell.Probabilities[c]))).ToArray());
            }
        }

        csv.Flush();
    }

    private static string N(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
