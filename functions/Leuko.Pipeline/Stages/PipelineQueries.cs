using System.Text.Json;
using Leuko.Pipeline.Storage;
using OpenCvSharp;

namespace Leuko.Pipeline.Stages;

/// <summary>An image as the HTTP API returns it (<c>GET /api/images/{id}</c>).</summary>
public sealed record ImageView(
    string Id, string Source, string? BatchId, string Status, string? Error, int? Width, int? Height, string? ModelVersion,
    double? SegmentMs, double? ClassifyMs, string? TraceParent, DateTimeOffset Updated, IReadOnlyList<CellView> Cells,
    IReadOnlyDictionary<string, ClassCount> Differential, IReadOnlyDictionary<string, int> OtherCells, ScaleRecord? Scale, int? Orientation);

/// <summary>A classified cell as the HTTP API returns it.</summary>
public sealed record CellView(
    int Index, Box Box, string Class, double Confidence, IReadOnlyDictionary<string, double> Probabilities, bool NeedsReview, int Area, string Crop,
    string? ReviewReason);

/// <summary>An archive's batch as the HTTP API returns it (<c>GET /api/batches/{id}</c>).</summary>
/// <param name="Status"><c>expanding</c>, <c>processing</c> (images pending), <c>completed</c>, or <c>failed</c> (archive refused, with <paramref name="Error"/>).</param>
/// <param name="Note">What was done that the upload did not ask for (an image uploaded as an archive, analysed as a batch of one).</param>
public sealed record BatchView(
    string Id, string Archive, string Status, string? Error, string? Note, int Total, int Completed, int NoLeukocytes, int Failed, int Pending,
    IReadOnlyList<string> Skipped, IReadOnlyDictionary<string, ClassCount> Differential, IReadOnlyDictionary<string, int> OtherCells,
    IReadOnlyList<BatchImageView> Images);

/// <summary>One image of a batch.</summary>
public sealed record BatchImageView(string Id, string Source, string Status, string? Error);

/// <summary>The read side of the pipeline, shared by the Functions HTTP API and <c>leuko serve</c>.</summary>
public sealed class PipelineQueries(IBlobStore blobs, IResultStore results, CellClasses classes)
{
    public async Task<ImageView?> GetImageAsync(string imageId, CancellationToken cancellationToken)
    {
        var row = await results.GetImageAsync(imageId, cancellationToken);
        if (row is null)
        {
            return null;
        }

        var cells = row is { Status: ImageStatus.Completed, BlobETag: { } version } ? await results.GetCellsAsync(imageId, version, cancellationToken) : [];
        return new ImageView(
            row.ImageId, row.Source, row.BatchId, row.Status, row.Error, row.Width, row.Height, row.ModelVersion, row.SegmentMs, row.ClassifyMs,
            row.TraceParent, row.Updated,
            cells.Select(c => new CellView(c.Index, c.Box, c.Class, c.Confidence, c.Probabilities, c.NeedsReview, c.Area, c.CropBlob, c.ReviewReason)).ToList(),
            classes.Count(cells.Select(c => c.Class)), classes.CountOthers(cells.Select(c => c.Class)), row.Scale, row.Orientation);
    }

    public async Task<BatchView?> GetBatchAsync(string batchId, CancellationToken cancellationToken)
    {
        var batch = await results.GetBatchAsync(batchId, cancellationToken);
        if (batch is null)
        {
            return null;
        }

        var members = await results.GetBatchMembersAsync(batchId, cancellationToken);
        int pending = members.Count(m => m.Status == BatchMemberRow.Pending);
        var (differential, others) = classes.FromCounts(classes.All.ToDictionary(c => c, c => members.Sum(m => m.Counts.GetValueOrDefault(c))));
        var status = batch.Status switch
        {
            BatchRow.Failed => "failed",
            BatchRow.Expanding => "expanding",
            BatchRow.Completed => "completed",
            _ => pending > 0 ? "processing" : "completed",
        };
        var skipped = batch.Skipped > 0 && await blobs.GetAsync(Containers.Batches, BatchRow.SkippedBlob(batchId), cancellationToken) is { } list
            ? JsonSerializer.Deserialize<List<string>>(list.Content.Span) ?? []
            : [];
        return new BatchView(
            batch.BatchId, batch.Archive, status, batch.Error, batch.Note, members.Count,
            members.Count(m => m.Status == ImageStatus.Completed), members.Count(m => m.Status == ImageStatus.NoLeukocytes),
            members.Count(m => m.Status == ImageStatus.Failed), pending, skipped,
            differential, others,
            members.Select(m => new BatchImageView(m.ImageId, m.Source, m.Status, m.Error)).ToList());
    }

    /// <summary>The uploaded image with its cells drawn, as PNG; null when the image is unknown or was not decoded.</summary>
    public async Task<byte[]?> GetAnnotatedPngAsync(string imageId, CancellationToken cancellationToken)
    {
        var row = await results.GetImageAsync(imageId, cancellationToken);
        if (row is null || row.Status is not (ImageStatus.Completed or ImageStatus.NoLeukocytes))
        {
            return null;
        }

        var blob = await blobs.GetAsync(Containers.Uploads, row.Upload, cancellationToken);
        if (blob is null)
        {
            return null;
        }

        var cells = row.BlobETag is { } version ? await results.GetCellsAsync(imageId, version, cancellationToken) : [];
        using var image = Leuko.Core.Imaging.ImageDecoder.Decode(blob.Content.Span);
        var drawnCells = cells.Select(c => c.ToResult()).ToList();
        using var drawn = Annotator.Draw(image, drawnCells, cells.Select(c => Contours.Parse(c.Contour)).ToList(), classes.All);
        Cv2.ImEncode(".png", drawn, out var png);
        return png;
    }
}
