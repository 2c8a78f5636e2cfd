using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using Leuko.Pipeline;
using Leuko.Pipeline.Storage;

namespace Leuko.Azure.Storage;

/// <summary>
/// Results in Azure Table Storage. Tables: <c>images</c> (PartitionKey = image id, RowKey "image"), <c>cells</c>
/// (PartitionKey = image id, RowKey = cell index, zero-padded; written in entity-group transactions of at most 100),
/// <c>batches</c> (PartitionKey = batch id, RowKey "batch"), <c>batchimages</c> (PartitionKey = batch id, RowKey =
/// image id) and <c>receipts</c> (PartitionKey = container, RowKey = hash of the blob name). Every write is an
/// upsert (replace), so replays leave the same rows.
/// </summary>
public sealed class TableResultStore(TableServiceClient service) : IResultStore
{
    public const string ImagesTable = "images";
    public const string CellsTable = "cells";
    public const string BatchesTable = "batches";
    public const string BatchImagesTable = "batchimages";
    public const string ReceiptsTable = "receipts";

    /// <summary>Entity-group transactions hold at most 100 operations.</summary>
    public const int MaxTransaction = 100;

    private const string ImageRowKey = "image";
    private const string BatchRowKey = "batch";

    private TableClient Table(string name) => service.GetTableClient(name);

    /// <summary>Creates the tables (idempotent).</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        foreach (var table in new[] { ImagesTable, CellsTable, BatchesTable, BatchImagesTable, ReceiptsTable })
        {
            await service.CreateTableIfNotExistsAsync(table, cancellationToken);
        }
    }

    public Task UpsertImageAsync(ImageRow image, CancellationToken cancellationToken)
    {
        var e = new TableEntity(image.ImageId, ImageRowKey)
        {
            ["Source"] = image.Source,
            ["Upload"] = image.Upload,
            ["BatchId"] = image.BatchId,
            ["Status"] = image.Status,
            ["Error"] = image.Error,
            ["Width"] = image.Width,
            ["Height"] = image.Height,
            ["Cells"] = image.Cells,
            ["NeedsReview"] = image.NeedsReview,
            ["ModelVersion"] = image.ModelVersion,
            ["SegmentMs"] = image.SegmentMs,
            ["ClassifyMs"] = image.ClassifyMs,
            ["TraceParent"] = image.TraceParent,
            ["BlobETag"] = image.BlobETag,
            ["Updated"] = image.Updated,
            ["Counts"] = JsonSerializer.Serialize(image.Counts),
            ["MicronsPerPixel"] = image.Scale?.MicronsPerPixel,
            ["ScaleSource"] = image.Scale?.Source,
            ["RedCells"] = image.Scale?.RedCells,
            ["Orientation"] = image.Orientation,
        };
        foreach (var (cls, count) in image.Counts)
        {
            e[$"Count_{cls}"] = count; // queryable per class, beside the JSON that keeps the class order
        }

        return Table(ImagesTable).UpsertEntityAsync(e, TableUpdateMode.Replace, cancellationToken);
    }

    public async Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken)
    {
        var response = await Table(ImagesTable).GetEntityIfExistsAsync<TableEntity>(imageId, ImageRowKey, cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            return null;
        }

        var e = response.Value!;
        return new ImageRow(
            imageId, e.GetString("Source"), e.GetString("Upload") ?? "", e.GetString("BatchId"), e.GetString("Status"), e.GetString("Error"),
            e.GetInt32("Width"), e.GetInt32("Height"), e.GetInt32("Cells") ?? 0, e.GetInt32("NeedsReview") ?? 0,
            JsonSerializer.Deserialize<Dictionary<string, int>>(e.GetString("Counts") ?? "{}")!,
            e.GetString("ModelVersion"), e.GetDouble("SegmentMs"), e.GetDouble("ClassifyMs"), e.GetString("TraceParent"), e.GetString("BlobETag"),
            e.GetDateTimeOffset("Updated") ?? e.Timestamp ?? DateTimeOffset.MinValue,
            e.GetDouble("MicronsPerPixel") is { } mpp ? new ScaleRecord(mpp, e.GetString("ScaleSource") ?? "", e.GetInt32("RedCells") ?? 0) : null,
            e.GetInt32("Orientation"));
    }

    public async Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken)
    {
        var table = Table(CellsTable);
        foreach (var chunk in cells.Chunk(MaxTransaction))
        {
            var actions = chunk.Select(c => new TableTransactionAction(TableTransactionActionType.UpsertReplace, ToEntity(c))).ToList();
            await table.SubmitTransactionAsync(actions, cancellationToken);
        }
    }

    private static TableEntity ToEntity(CellRow c)
    {
        var e = new TableEntity(c.ImageId, CellKey(c.Index))
        {
            ["Index"] = c.Index,
            ["Class"] = c.Class,
            ["Confidence"] = c.Confidence,
            ["NeedsReview"] = c.NeedsReview,
            ["X"] = c.Box.X,
            ["Y"] = c.Box.Y,
            ["Width"] = c.Box.Width,
            ["Height"] = c.Box.Height,
            ["Area"] = c.Area,
            ["Contour"] = c.Contour,
            ["CropBlob"] = c.CropBlob,
            ["Probabilities"] = JsonSerializer.Serialize(c.Probabilities),
            ["ReviewReason"] = c.ReviewReason,
        };
        return e;
    }

    /// <summary>Zero-padded so that rows sort by index.</summary>
    public static string CellKey(int index) => index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);

    public async Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, CancellationToken cancellationToken)
    {
        var cells = new List<CellRow>();
        await foreach (var e in Table(CellsTable).QueryAsync<TableEntity>(x => x.PartitionKey == imageId, cancellationToken: cancellationToken))
        {
            cells.Add(new CellRow(
                imageId, e.GetInt32("Index") ?? 0, e.GetString("Class"), e.GetDouble("Confidence") ?? 0,
                JsonSerializer.Deserialize<Dictionary<string, double>>(e.GetString("Probabilities") ?? "{}")!, e.GetBoolean("NeedsReview") ?? false,
                new Box(e.GetInt32("X") ?? 0, e.GetInt32("Y") ?? 0, e.GetInt32("Width") ?? 0, e.GetInt32("Height") ?? 0),
                e.GetInt32("Area") ?? 0, e.GetString("Contour") ?? "", e.GetString("CropBlob") ?? "", e.GetString("ReviewReason")));
        }

        return cells.OrderBy(c => c.Index).ToList();
    }

    public Task UpsertBatchAsync(BatchRow batch, CancellationToken cancellationToken) =>
        Table(BatchesTable).UpsertEntityAsync(
            new TableEntity(batch.BatchId, BatchRowKey)
            {
                ["Archive"] = batch.Archive,
                ["Status"] = batch.Status,
                ["Error"] = batch.Error,
                ["Images"] = batch.Images,
                ["Refused"] = batch.Refused,
                ["Skipped"] = JsonSerializer.Serialize(batch.Skipped),
                ["Updated"] = batch.Updated,
                ["Note"] = batch.Note,
            },
            TableUpdateMode.Replace, cancellationToken);

    public async Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken)
    {
        var response = await Table(BatchesTable).GetEntityIfExistsAsync<TableEntity>(batchId, BatchRowKey, cancellationToken: cancellationToken);
        if (!response.HasValue)
        {
            return null;
        }

        var e = response.Value!;
        return new BatchRow(
            batchId, e.GetString("Archive"), e.GetString("Status"), e.GetString("Error"), e.GetInt32("Images") ?? 0, e.GetInt32("Refused") ?? 0,
            JsonSerializer.Deserialize<List<string>>(e.GetString("Skipped") ?? "[]")!, e.GetDateTimeOffset("Updated") ?? DateTimeOffset.MinValue,
            e.GetString("Note"));
    }

    public Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken) =>
        Table(BatchImagesTable).UpsertEntityAsync(
            new TableEntity(member.BatchId, member.ImageId)
            {
                ["Source"] = member.Source,
                ["Status"] = member.Status,
                ["Error"] = member.Error,
                ["Counts"] = JsonSerializer.Serialize(member.Counts),
            },
            TableUpdateMode.Replace, cancellationToken);

    public async Task<IReadOnlyList<BatchMemberRow>> GetBatchMembersAsync(string batchId, CancellationToken cancellationToken)
    {
        var members = new List<BatchMemberRow>();
        await foreach (var e in Table(BatchImagesTable).QueryAsync<TableEntity>(x => x.PartitionKey == batchId, cancellationToken: cancellationToken))
        {
            members.Add(new BatchMemberRow(batchId, e.RowKey, e.GetString("Source"), e.GetString("Status"), e.GetString("Error"),
                JsonSerializer.Deserialize<Dictionary<string, int>>(e.GetString("Counts") ?? "{}")!));
        }

        return members;
    }

    public async Task<BatchMemberRow?> GetBatchMemberAsync(string batchId, string imageId, CancellationToken cancellationToken)
    {
        var found = await Table(BatchImagesTable).GetEntityIfExistsAsync<TableEntity>(batchId, imageId, cancellationToken: cancellationToken);
        return found.HasValue
            ? new BatchMemberRow(batchId, imageId, found.Value!.GetString("Source"), found.Value.GetString("Status"), found.Value.GetString("Error"),
                JsonSerializer.Deserialize<Dictionary<string, int>>(found.Value.GetString("Counts") ?? "{}")!)
            : null;
    }

    public async Task<bool> HasPendingMembersAsync(string batchId, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {batchId} and Status eq {BatchMemberRow.Pending}");
        await foreach (var page in Table(BatchImagesTable)
                           .QueryAsync<TableEntity>(filter, maxPerPage: 1, select: ["RowKey"], cancellationToken: cancellationToken)
                           .AsPages(pageSizeHint: 1))
        {
            if (page.Values.Count > 0)
            {
                return true;
            }
        }

        return false;
    }

    public async Task<bool> HasReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken)
    {
        var existing = await Table(ReceiptsTable).GetEntityIfExistsAsync<TableEntity>(container, ReceiptKey(blobName), cancellationToken: cancellationToken);
        return existing.HasValue && existing.Value!.GetString("ETag") == etag;
    }

    public Task AddReceiptAsync(string container, string blobName, string etag, CancellationToken cancellationToken) =>
        Table(ReceiptsTable).UpsertEntityAsync(
            new TableEntity(container, ReceiptKey(blobName)) { ["Name"] = blobName, ["ETag"] = etag, ["Handled"] = DateTimeOffset.UtcNow },
            TableUpdateMode.Replace, cancellationToken);

    /// <summary>Blob names may hold characters RowKeys may not ('/', '#', '?'): the key is the name's hash, the name a property.</summary>
    private static string ReceiptKey(string blobName) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(blobName)));
}
