using Azure.Data.Tables;
using Leuko.Azure.Storage;
using Leuko.Pipeline.Reviews;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>The Table Storage review store against a real Azurite: one change is one conditional transaction.</summary>
[Collection("Azurite")]
public class TableReviewStoreTests
{
    [Fact]
    public async Task AChangeIsWrittenOnlyOverTheStateItWasReadAtAndWhollyOrNotAtAll()
    {
        await Azurite.RequireAsync();
        var store = new TableReviewStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var image = Azurite.Unique("img");
        var at = DateTimeOffset.UtcNow;
        var counts = new Dictionary<string, int> { ["MONOCYTE"] = 1 };
        var first = new ReviewState(image, ReviewState.Image, "batch-x", "\"v1\"", 1, 1, counts, null, null, at);
        var cell = new CellReview(image, "\"v1\"", 3, "NEUTROPHIL", "MONOCYTE", "ana", at);

        Assert.True(await store.TryWriteAsync(first, cell, new ReviewEntry(image, ReviewEntry.Reclassify, 3, "NEUTROPHIL", "NEUTROPHIL", "MONOCYTE", "ana", at), default));
        var read = (await store.GetStateAsync(image, ReviewState.Image, default))!;
        Assert.Equal((1, "\"v1\"", "batch-x", 1), (read.Revision, read.BlobETag, read.BatchId, read.ReviewedCounts["MONOCYTE"]));

        // A second insert, and a write over a version since replaced, are refused: nothing of them is stored.
        Assert.False(await store.TryWriteAsync(first, cell with { ReviewedClass = "BASOPHIL" },
            new ReviewEntry(image, ReviewEntry.Reclassify, 3, "NEUTROPHIL", "MONOCYTE", "BASOPHIL", "ben", at), default));
        var signed = read with { Revision = 2, SignedOffBy = "ben", SignedOffAt = at };
        Assert.True(await store.TryWriteAsync(signed, null, new ReviewEntry(image, ReviewEntry.SignOff, null, null, null, null, "ben", at), default));
        Assert.False(await store.TryWriteAsync(read with { Revision = 2 }, cell with { ReviewedClass = "LYMPHOCYTE", Reviewer = "cy" },
            new ReviewEntry(image, ReviewEntry.Reclassify, 3, "NEUTROPHIL", "MONOCYTE", "LYMPHOCYTE", "cy", at), default));

        var reviewed = Assert.Single(await store.GetCellReviewsAsync(image, "\"v1\"", default));
        Assert.Equal(("NEUTROPHIL", "MONOCYTE", "ana", 3), (reviewed.OriginalClass, reviewed.ReviewedClass, reviewed.Reviewer, reviewed.Index));
        Assert.Empty(await store.GetCellReviewsAsync(image, "\"v2\"", default));
        Assert.Equal([(ReviewEntry.Reclassify, "ana"), (ReviewEntry.SignOff, "ben")], (await store.GetHistoryAsync(image, default)).Select(h => (h.Action, h.Reviewer)));
        Assert.Equal("ben", (await store.GetStateAsync(image, ReviewState.Image, default))!.SignedOffBy);
        Assert.Contains(await store.ListBatchStatesAsync("batch-x", default), s => s.SubjectId == image);
        Assert.Contains(await store.ListStatesAsync(ReviewState.Image, default), s => s.SubjectId == image);

        // The rows as stored: the cell's row is keyed as the cells table keys the cell.
        var row = (await Azurite.Tables.GetTableClient(TableReviewStore.ReviewsTable).GetEntityAsync<TableEntity>(image, TableReviewStore.CellKey("\"v1\"", 3))).Value;
        Assert.Equal("cell-" + TableResultStore.CellKey("\"v1\"", 3), row.RowKey);
    }
}
