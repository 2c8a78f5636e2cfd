using System.Globalization;
using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Leuko.Pipeline.Reviews;

namespace Leuko.Azure.Storage;

/// <summary>
/// Reviews in Azure Table Storage, table <c>reviews</c>, one partition per image or batch (PartitionKey = its id):
/// RowKey <c>image</c> or <c>batch</c> is the state (<see cref="ReviewState"/>), <c>cell-VERSION-00000</c> a cell's
/// reviewed class (<see cref="CellReview"/>, keyed as the <c>cells</c> table keys it), <c>history-TICKS-N</c> an entry
/// of the history (<see cref="ReviewEntry"/>). A change is one entity-group transaction: the state replaced If-Match
/// the ETag it was read at (or added where none exists), the cell upserted and the entry added, all or nothing.
/// </summary>
public sealed class TableReviewStore(TableServiceClient service) : IReviewStore
{
    public const string ReviewsTable = "reviews";

    private const string CellPrefix = "cell-";
    private const string HistoryPrefix = "history-";

    private TableClient Table => service.GetTableClient(ReviewsTable);

    public Task InitializeAsync(CancellationToken cancellationToken) => service.CreateTableIfNotExistsAsync(ReviewsTable, cancellationToken);

    public async Task<ReviewState?> GetStateAsync(string subjectId, string kind, CancellationToken cancellationToken)
    {
        var found = await Table.GetEntityIfExistsAsync<TableEntity>(subjectId, kind, cancellationToken: cancellationToken);
        return found.HasValue ? StateFrom(found.Value!) : null;
    }

    public Task<IReadOnlyList<ReviewState>> ListStatesAsync(string kind, CancellationToken cancellationToken) =>
        QueryStatesAsync(TableClient.CreateQueryFilter($"RowKey eq {kind}"), cancellationToken);

    public Task<IReadOnlyList<ReviewState>> ListBatchStatesAsync(string batchId, CancellationToken cancellationToken) =>
        QueryStatesAsync(TableClient.CreateQueryFilter($"RowKey eq {ReviewState.Image} and BatchId eq {batchId}"), cancellationToken);

    private async Task<IReadOnlyList<ReviewState>> QueryStatesAsync(string filter, CancellationToken cancellationToken)
    {
        var states = new List<ReviewState>();
        await foreach (var e in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            states.Add(StateFrom(e));
        }

        return states;
    }

    public async Task<bool> TryWriteAsync(ReviewState state, CellReview? cell, ReviewEntry entry, CancellationToken cancellationToken)
    {
        var stateEntity = new TableEntity(state.SubjectId, state.Kind)
        {
            ["BatchId"] = state.BatchId,
            ["BlobETag"] = state.BlobETag,
            ["Revision"] = state.Revision,
            ["Reclassified"] = state.Reclassified,
            ["ReviewedCounts"] = JsonSerializer.Serialize(state.ReviewedCounts),
            ["SignedOffBy"] = state.SignedOffBy,
            ["SignedOffAt"] = state.SignedOffAt,
            ["Updated"] = state.Updated,
        };
        var actions = new List<TableTransactionAction>
        {
            state.ETag is null
                ? new TableTransactionAction(TableTransactionActionType.Add, stateEntity)
                : new TableTransactionAction(TableTransactionActionType.UpdateReplace, stateEntity, new ETag(state.ETag)),
        };
        if (cell is not null)
        {
            actions.Add(new TableTransactionAction(TableTransactionActionType.UpsertReplace, new TableEntity(cell.ImageId, CellKey(cell.BlobETag, cell.Index))
            {
                ["BlobETag"] = cell.BlobETag,
                ["Index"] = cell.Index,
                ["OriginalClass"] = cell.OriginalClass,
                ["ReviewedClass"] = cell.ReviewedClass,
                ["Reviewer"] = cell.Reviewer,
                ["At"] = cell.At,
            }));
        }

        // Ticks order the history; the revision tells apart two entries of one tick (each write has its own revision).
        actions.Add(new TableTransactionAction(TableTransactionActionType.Add, new TableEntity(
            entry.SubjectId, $"{HistoryPrefix}{entry.At.UtcTicks.ToString("D19", CultureInfo.InvariantCulture)}-{state.Revision.ToString("D9", CultureInfo.InvariantCulture)}")
        {
            ["Action"] = entry.Action,
            ["Cell"] = entry.Cell,
            ["OriginalClass"] = entry.OriginalClass,
            ["FromClass"] = entry.FromClass,
            ["ToClass"] = entry.ToClass,
            ["Reviewer"] = entry.Reviewer,
            ["At"] = entry.At,
        }));
        try
        {
            await Table.SubmitTransactionAsync(actions, cancellationToken);
            return true;
        }
        catch (TableTransactionFailedException e) when (e.Status is 409 or 412 or 404)
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<CellReview>> GetCellReviewsAsync(string imageId, string blobETag, CancellationToken cancellationToken)
    {
        var cells = new List<CellReview>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {imageId} and BlobETag eq {blobETag} and RowKey ge {CellPrefix} and RowKey lt {"cell."}");
        await foreach (var e in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            cells.Add(new CellReview(imageId, e.GetString("BlobETag"), e.GetInt32("Index") ?? 0, e.GetString("OriginalClass"), e.GetString("ReviewedClass"),
                e.GetString("Reviewer"), e.GetDateTimeOffset("At") ?? DateTimeOffset.MinValue));
        }

        return cells.OrderBy(c => c.Index).ToList();
    }

    public async Task<IReadOnlyList<ReviewEntry>> GetHistoryAsync(string subjectId, CancellationToken cancellationToken)
    {
        var entries = new List<ReviewEntry>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {subjectId} and RowKey ge {HistoryPrefix} and RowKey lt {"history."}");
        await foreach (var e in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            entries.Add(new ReviewEntry(subjectId, e.GetString("Action"), e.GetInt32("Cell"), e.GetString("OriginalClass"), e.GetString("FromClass"),
                e.GetString("ToClass"), e.GetString("Reviewer"), e.GetDateTimeOffset("At") ?? DateTimeOffset.MinValue));
        }

        return entries;
    }

    /// <summary>A cell's review row: <c>cell-</c> and the cell's key in the <c>cells</c> table (upload version and index).</summary>
    public static string CellKey(string blobETag, int index) => CellPrefix + TableResultStore.CellKey(blobETag, index);

    private static ReviewState StateFrom(TableEntity e) =>
        new(e.PartitionKey, e.RowKey, e.GetString("BatchId"), e.GetString("BlobETag"), e.GetInt32("Revision") ?? 0, e.GetInt32("Reclassified") ?? 0,
            JsonSerializer.Deserialize<Dictionary<string, int>>(e.GetString("ReviewedCounts") ?? "{}")!, e.GetString("SignedOffBy"),
            e.GetDateTimeOffset("SignedOffAt"), e.GetDateTimeOffset("Updated") ?? DateTimeOffset.MinValue)
        {
            ETag = e.ETag.ToString(),
        };
}
