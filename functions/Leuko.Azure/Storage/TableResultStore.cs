using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Leuko.Pipeline;
using Leuko.Pipeline.Storage;

namespace Leuko.Azure.Storage;

/// <summary>
/// Results in Azure Table Storage. Tables: <c>images</c> (PartitionKey = image id, RowKey "image"), <c>cells</c>
/// (PartitionKey = image id, RowKey = upload version and cell index, <see cref="CellKey"/>; written in entity-group
/// transactions of at most 100),
/// <c>batches</c> (PartitionKey = batch id, RowKey "batch"), <c>batchimages</c> (PartitionKey = batch id, RowKey =
/// image id) and <c>receipts</c> (PartitionKey = container, RowKey = hash of the blob name). Image and batch rows
/// are written conditionally on the ETag they were read at (If-Match), or inserted only where none exists; the other
/// tables are upserts (replace), so replays leave the same rows. Every entity stays within Table Storage's limits:
/// free text is cut to <see cref="MaxTextChars"/>, and lists that grow with the input (an archive's skipped entries)
/// live in blobs, not rows.
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

    /// <summary>
    /// Longest free text (sources, errors, notes) kept in a property: a string property holds at most 64 KiB (32K
    /// UTF-16 characters), an entity 1 MiB; longer text is cut, saying so.
    /// </summary>
    public const int MaxTextChars = 16_000;

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

    public async Task<bool> TryWriteImageAsync(ImageRow image, CancellationToken cancellationToken) =>
        await WriteImageAsync(image, cancellationToken) is not null;

    public Task<string?> WriteImageAsync(ImageRow image, CancellationToken cancellationToken)
    {
        var e = new TableEntity(image.ImageId, ImageRowKey)
        {
            ["Source"] = Text(image.Source),
            ["Upload"] = image.Upload,
            ["BatchId"] = image.BatchId,
            ["Status"] = image.Status,
            ["Error"] = Text(image.Error),
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

        return TryWriteAsync(Table(ImagesTable), e, image.ETag, cancellationToken);
    }

    /// <summary>
    /// Inserts where <paramref name="etag"/> is null (409: a row exists), else replaces If-Match (412: changed since; 404:
    /// deleted). The row's new ETag, or null when it lost.
    /// </summary>
    private static async Task<string?> TryWriteAsync(TableClient table, TableEntity entity, string? etag, CancellationToken cancellationToken)
    {
        try
        {
            var response = etag is null
                ? await table.AddEntityAsync(entity, cancellationToken)
                : await table.UpdateEntityAsync(entity, new ETag(etag), TableUpdateMode.Replace, cancellationToken);
            return response.Headers.ETag?.ToString() ?? throw new InvalidOperationException($"table {table.Name} gave no ETag for the row it wrote");
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412 or 404)
        {
            return null;
        }
    }

    /// <summary>Free text within a string property's limit (see <see cref="MaxTextChars"/>).</summary>
    public static string? Text(string? text) =>
        text is null || text.Length <= MaxTextChars ? text : $"{text[..(MaxTextChars - 40)]}... ({text.Length - MaxTextChars + 40:N0} characters cut)";

    public async Task<ImageRow?> GetImageAsync(string imageId, CancellationToken cancellationToken)
    {
        var response = await Table(ImagesTable).GetEntityIfExistsAsync<TableEntity>(imageId, ImageRowKey, cancellationToken: cancellationToken);
        return response.HasValue ? ImageFrom(response.Value!) : null;
    }

    public async Task<IReadOnlyList<ImageRow>> ListImagesAsync(CancellationToken cancellationToken)
    {
        var rows = new List<ImageRow>();
        await foreach (var e in Table(ImagesTable).QueryAsync<TableEntity>(x => x.RowKey == ImageRowKey, cancellationToken: cancellationToken))
        {
            rows.Add(ImageFrom(e));
        }

        return rows;
    }

    public async Task<IReadOnlyList<ImageRow>> FindImagesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken)
    {
        var rows = new List<ImageRow>();
        var filter = TableClient.CreateQueryFilter($"Status eq {status} and Updated lt {before}");
        await foreach (var e in Table(ImagesTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            rows.Add(ImageFrom(e));
        }

        return rows;
    }

    /// <summary>
    /// The final rows of the uploads under <paramref name="uploadPrefix"/> (a folder, ending in '/'), in one query
    /// (paged by the service): what <c>leuko bench serve</c> waits on, a request a poll rather than one per image.
    /// </summary>
    public async Task<IReadOnlyList<ImageRow>> FindFinalImagesAsync(string uploadPrefix, CancellationToken cancellationToken)
    {
        // The names after every name that starts with the prefix: the prefix with its last character's successor.
        var end = uploadPrefix[..^1] + (char)(uploadPrefix[^1] + 1);
        var filter = TableClient.CreateQueryFilter($"Upload ge {uploadPrefix} and Upload lt {end} and Status ne {ImageRow.Classifying}");
        var rows = new List<ImageRow>();
        await foreach (var e in Table(ImagesTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            rows.Add(ImageFrom(e));
        }

        return rows;
    }

    private static ImageRow ImageFrom(TableEntity e)
    {
        var imageId = e.PartitionKey;
        return new ImageRow(
            imageId, e.GetString("Source"), e.GetString("Upload") ?? "", e.GetString("BatchId"), e.GetString("Status"), e.GetString("Error"),
            e.GetInt32("Width"), e.GetInt32("Height"), e.GetInt32("Cells") ?? 0, e.GetInt32("NeedsReview") ?? 0,
            JsonSerializer.Deserialize<Dictionary<string, int>>(e.GetString("Counts") ?? "{}")!,
            e.GetString("ModelVersion"), e.GetDouble("SegmentMs"), e.GetDouble("ClassifyMs"), e.GetString("TraceParent"), e.GetString("BlobETag"),
            e.GetDateTimeOffset("Updated") ?? e.Timestamp ?? DateTimeOffset.MinValue,
            e.GetDouble("MicronsPerPixel") is { } mpp ? new ScaleRecord(mpp, e.GetString("ScaleSource") ?? "", e.GetInt32("RedCells") ?? 0) : null,
            e.GetInt32("Orientation"))
        {
            ETag = e.ETag.ToString(),
        };
    }

    public async Task UpsertCellsAsync(string imageId, IReadOnlyList<CellRow> cells, CancellationToken cancellationToken)
    {
        var table = Table(CellsTable);
        if (cells.Count == 1)
        {
            // Most fields hold one leukocyte: one upsert, the same write as a transaction of one, without its multipart
            // body (measured in Azurite's access log: 1.6 against 2.4 ms a request, on the cores the pipeline shares with it).
            await table.UpsertEntityAsync(ToEntity(cells[0]), TableUpdateMode.Replace, cancellationToken);
            return;
        }

        foreach (var chunk in cells.Chunk(MaxTransaction))
        {
            var actions = chunk.Select(c => new TableTransactionAction(TableTransactionActionType.UpsertReplace, ToEntity(c))).ToList();
            await table.SubmitTransactionAsync(actions, cancellationToken);
        }
    }

    private static TableEntity ToEntity(CellRow c)
    {
        var e = new TableEntity(c.ImageId, CellKey(c.BlobETag, c.Index))
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
            ["BlobETag"] = c.BlobETag,
        };
        return e;
    }

    /// <summary>
    /// The upload version and the zero-padded index (<c>VERSION-00000</c>): the cells of one version sort by index, and a
    /// late writer of an old version can never overwrite a newer version's cell.
    /// </summary>
    public static string CellKey(string? blobETag, int index) =>
        $"{(blobETag is null ? "" : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(blobETag)))[..12])}-{index.ToString("D5", System.Globalization.CultureInfo.InvariantCulture)}";

    public async Task<IReadOnlyList<CellRow>> GetCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken)
    {
        var cells = new List<CellRow>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {imageId} and BlobETag eq {blobETag}");
        await foreach (var e in Table(CellsTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            cells.Add(new CellRow(
                imageId, e.GetInt32("Index") ?? 0, e.GetString("Class"), e.GetDouble("Confidence") ?? 0,
                JsonSerializer.Deserialize<Dictionary<string, double>>(e.GetString("Probabilities") ?? "{}")!, e.GetBoolean("NeedsReview") ?? false,
                new Box(e.GetInt32("X") ?? 0, e.GetInt32("Y") ?? 0, e.GetInt32("Width") ?? 0, e.GetInt32("Height") ?? 0),
                e.GetInt32("Area") ?? 0, e.GetString("Contour") ?? "", e.GetString("CropBlob") ?? "", e.GetString("ReviewReason"), e.GetString("BlobETag")));
        }

        return cells.OrderBy(c => c.Index).ToList();
    }

    public async Task DeleteCellsAsync(string imageId, string blobETag, CancellationToken cancellationToken)
    {
        var stale = new List<TableEntity>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {imageId} and BlobETag eq {blobETag}");
        await foreach (var e in Table(CellsTable).QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
        {
            stale.Add(e);
        }

        await DeleteAsync(Table(CellsTable), stale, cancellationToken);
    }

    /// <summary>Deletes entities of one partition in transactions of at most 100; ones already gone are fine.</summary>
    private static async Task DeleteAsync(TableClient table, IReadOnlyList<TableEntity> entities, CancellationToken cancellationToken)
    {
        foreach (var chunk in entities.Chunk(MaxTransaction))
        {
            try
            {
                await table.SubmitTransactionAsync(chunk.Select(e => new TableTransactionAction(TableTransactionActionType.Delete, e, ETag.All)), cancellationToken);
            }
            catch (TableTransactionFailedException)
            {
                foreach (var e in chunk)
                {
                    try
                    {
                        await table.DeleteEntityAsync(e.PartitionKey, e.RowKey, ETag.All, cancellationToken);
                    }
                    catch (RequestFailedException x) when (x.Status == 404)
                    {
                    }
                }
            }
        }
    }

    public async Task<bool> TryWriteBatchAsync(BatchRow batch, CancellationToken cancellationToken) =>
        await TryWriteAsync(
            Table(BatchesTable),
            new TableEntity(batch.BatchId, BatchRowKey)
            {
                ["Archive"] = Text(batch.Archive),
                ["Status"] = batch.Status,
                ["Error"] = Text(batch.Error),
                ["Images"] = batch.Images,
                ["Refused"] = batch.Refused,
                ["Skipped"] = batch.Skipped,
                ["Updated"] = batch.Updated,
                ["Note"] = Text(batch.Note),
                ["ArchiveETag"] = batch.ArchiveETag,
                ["Announcing"] = batch.Announcing ? true : null,
            },
            batch.ETag, cancellationToken) is not null;

    public async Task<BatchRow?> GetBatchAsync(string batchId, CancellationToken cancellationToken)
    {
        var response = await Table(BatchesTable).GetEntityIfExistsAsync<TableEntity>(batchId, BatchRowKey, cancellationToken: cancellationToken);
        return response.HasValue ? BatchFrom(response.Value!) : null;
    }

    public async Task<IReadOnlyList<BatchRow>> ListBatchesAsync(CancellationToken cancellationToken)
    {
        var rows = new List<BatchRow>();
        await foreach (var e in Table(BatchesTable).QueryAsync<TableEntity>(x => x.RowKey == BatchRowKey, cancellationToken: cancellationToken))
        {
            rows.Add(BatchFrom(e));
        }

        return rows;
    }

    public async Task<IReadOnlyList<BatchRow>> FindBatchesAsync(string status, DateTimeOffset before, CancellationToken cancellationToken)
    {
        var rows = new List<BatchRow>();
        var filter = TableClient.CreateQueryFilter($"Status eq {status} and Updated lt {before}");
        await foreach (var e in Table(BatchesTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            rows.Add(BatchFrom(e));
        }

        return rows;
    }

    public async Task<IReadOnlyList<BatchRow>> FindAnnouncingBatchesAsync(DateTimeOffset before, CancellationToken cancellationToken)
    {
        var rows = new List<BatchRow>();
        var filter = TableClient.CreateQueryFilter($"Announcing eq {true} and Updated lt {before}");
        await foreach (var e in Table(BatchesTable).QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            rows.Add(BatchFrom(e));
        }

        return rows;
    }

    /// <summary>The count of skipped entries; rows written before the list moved to a blob held the list itself.</summary>
    private static int SkippedCount(TableEntity e) => (e.TryGetValue("Skipped", out var value) ? value : null) switch
    {
        int count => count,
        string list => JsonSerializer.Deserialize<List<string>>(list)?.Count ?? 0,
        _ => 0,
    };

    private static BatchRow BatchFrom(TableEntity e) =>
        new(e.PartitionKey, e.GetString("Archive"), e.GetString("Status"), e.GetString("Error"), e.GetInt32("Images") ?? 0, e.GetInt32("Refused") ?? 0,
            SkippedCount(e), e.GetDateTimeOffset("Updated") ?? DateTimeOffset.MinValue, e.GetString("Note"), e.GetString("ArchiveETag"))
        {
            ETag = e.ETag.ToString(),
            Announcing = e.GetBoolean("Announcing") ?? false,
        };

    public Task UpsertBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken) =>
        Table(BatchImagesTable).UpsertEntityAsync(MemberEntity(member), TableUpdateMode.Replace, cancellationToken);

    public async Task<bool> UpdateBatchMemberAsync(BatchMemberRow member, CancellationToken cancellationToken) =>
        await TryWriteAsync(Table(BatchImagesTable), MemberEntity(member), ETag.All.ToString(), cancellationToken) is not null;

    private static TableEntity MemberEntity(BatchMemberRow member) =>
        new(member.BatchId, member.ImageId)
        {
            ["Source"] = Text(member.Source),
            ["Status"] = member.Status,
            ["Error"] = Text(member.Error),
            ["Counts"] = JsonSerializer.Serialize(member.Counts),
        };

    public async Task DeleteBatchMembersAsync(string batchId, IReadOnlySet<string>? except, CancellationToken cancellationToken)
    {
        var members = new List<TableEntity>();
        await foreach (var e in Table(BatchImagesTable).QueryAsync<TableEntity>(x => x.PartitionKey == batchId, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
        {
            if (except?.Contains(e.RowKey) != true)
            {
                members.Add(e);
            }
        }

        await DeleteAsync(Table(BatchImagesTable), members, cancellationToken);
    }

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
        return existing.HasValue && existing.Value!.GetString("ETag") == etag && existing.Value.GetDateTimeOffset("Handled") is not null;
    }

    public async Task<IReadOnlyList<BlobVersion>> ListReceiptsAsync(string container, CancellationToken cancellationToken)
    {
        var receipts = new List<BlobVersion>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {container}");
        await foreach (var e in Table(ReceiptsTable).QueryAsync<TableEntity>(filter, select: ["Name", "ETag", "Handled"], cancellationToken: cancellationToken))
        {
            if (e.GetDateTimeOffset("Handled") is not null && e.GetString("Name") is { } name && e.GetString("ETag") is { } etag)
            {
                receipts.Add(new BlobVersion(name, etag));
            }
        }

        return receipts;
    }

    public async Task AddReceiptsAsync(string container, IReadOnlyCollection<BlobVersion> blobs, CancellationToken cancellationToken)
    {
        // One partition (the container), so a hundred receipts are one request; a name twice (two versions) keeps the last.
        var handled = DateTimeOffset.UtcNow;
        var entities = blobs.GroupBy(b => ReceiptKey(b.Name)).Select(g => new TableEntity(container, g.Key)
        {
            ["Name"] = Text(g.Last().Name), ["ETag"] = g.Last().ETag, ["Handled"] = handled,
        });
        foreach (var chunk in entities.Chunk(MaxTransaction))
        {
            await Table(ReceiptsTable).SubmitTransactionAsync(chunk.Select(e => new TableTransactionAction(TableTransactionActionType.UpsertMerge, e)), cancellationToken);
        }
    }

    public async Task<int> AddFailedAttemptAsync(string container, string blobName, string etag, string error, CancellationToken cancellationToken)
    {
        var table = Table(ReceiptsTable);
        var existing = await table.GetEntityIfExistsAsync<TableEntity>(container, ReceiptKey(blobName), cancellationToken: cancellationToken);
        int attempts = (existing.HasValue && existing.Value!.GetString("ETag") == etag ? existing.Value.GetInt32("Attempts") ?? 0 : 0) + 1;
        await table.UpsertEntityAsync(
            new TableEntity(container, ReceiptKey(blobName)) { ["Name"] = Text(blobName), ["ETag"] = etag, ["Attempts"] = attempts, ["Error"] = Text(error), ["Handled"] = null },
            TableUpdateMode.Replace, cancellationToken);
        return attempts;
    }

    /// <summary>Blob names may hold characters RowKeys may not ('/', '#', '?'): the key is the name's hash, the name a property.</summary>
    private static string ReceiptKey(string blobName) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(blobName)));
}
