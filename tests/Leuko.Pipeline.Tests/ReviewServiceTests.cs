using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Tests;

/// <summary>The review stage over the in-memory stores: reclassification, the reviewed differential, sign-off, races.</summary>
public class ReviewServiceTests
{
    private static readonly CellClasses Classes = new(
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"],
        ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"],
        ["IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"]);

    private readonly InMemoryResultStore _results = new();
    private readonly InMemoryReviewStore _reviews = new();
    private readonly RecordingReviewEvents _events = new();

    private ReviewService Service(IReviewStore? reviews = null) => new(_results, reviews ?? _reviews, new InMemoryBlobStore(), Classes, events: _events);

    [Fact]
    public async Task AReclassifiedCellChangesTheReviewedDifferentialNotTheAutomaticOne()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL", "NEUTROPHIL", "LYMPHOCYTE", "PLATELET"]);
        var service = Service();

        var moved = await service.ReclassifyAsync(id, 0, "MONOCYTE", "ana", default);
        var notACell = await service.ReclassifyAsync(id, 3, ReviewClasses.NotACell, "ben", default);

        Assert.Null(moved.Problem);
        Assert.Equal(("NEUTROPHIL", "MONOCYTE", "ana"), (moved.Value!.Cell.Class, moved.Value.Cell.ReviewedClass, moved.Value.Cell.ReviewedBy));
        var totals = notACell.Value!.Image;
        Assert.Equal(ClassCount.Of(2, 3), totals.Differential["NEUTROPHIL"]);
        Assert.Equal(ClassCount.Of(1, 3), totals.ReviewedDifferential["NEUTROPHIL"]);
        Assert.Equal(ClassCount.Of(1, 3), totals.ReviewedDifferential["MONOCYTE"]);
        Assert.Equal((1, 0), (totals.OtherCells["PLATELET"], totals.ReviewedOtherCells["PLATELET"])); // not a cell: in neither count
        Assert.Equal((4, 2, 1, 3, 3), (totals.Cells, totals.Reclassified, totals.NotCells, totals.Counted, totals.ReviewedCounted));

        // The history keeps every step, with who and from which class.
        var history = await _reviews.GetHistoryAsync(id, default);
        Assert.Equal([(0, "NEUTROPHIL", "MONOCYTE", "ana"), (3, "PLATELET", ReviewClasses.NotACell, "ben")],
            history.Select(h => (h.Cell!.Value, h.FromClass!, h.ToClass!, h.Reviewer)));

        // Moved back, the cell counts as its automatic class again; the history has the third step.
        var back = await service.ReclassifyAsync(id, 0, "NEUTROPHIL", "ana", default);
        Assert.Equal(1, back.Value!.Image.Reclassified);
        Assert.Equal(ClassCount.Of(2, 3), back.Value.Image.ReviewedDifferential["NEUTROPHIL"]);
        Assert.Equal(3, (await _reviews.GetHistoryAsync(id, default)).Count);
    }

    [Fact]
    public async Task UnknownImagesCellsAndClassesAreRefusedWithTheReason()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL"]);
        var service = Service();

        Assert.Equal(404, (await service.ReclassifyAsync("nope", 0, "MONOCYTE", "ana", default)).Problem!.Status);
        var cell = (await service.ReclassifyAsync(id, 7, "MONOCYTE", "ana", default)).Problem!;
        Assert.Equal((404, $"no cell 7 in image '{id}' (it has 1: 0 to 0)"), (cell.Status, cell.Detail));
        var unknown = (await service.ReclassifyAsync(id, 0, "MACROPHAGE", "ana", default)).Problem!;
        Assert.Equal(400, unknown.Status);
        Assert.Contains("unknown class 'MACROPHAGE': give one of BASOPHIL, EOSINOPHIL, LYMPHOCYTE, MONOCYTE, NEUTROPHIL, IMMATURE_GRANULOCYTE, ERYTHROBLAST, PLATELET, NOT_A_CELL", unknown.Detail);
        Assert.Empty(await _reviews.GetHistoryAsync(id, default));
    }

    [Fact]
    public async Task ASignedOffImageAcceptsNoMoreChangesAndIsAnnouncedOnce()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL", "LYMPHOCYTE"]);
        var service = Service();
        await service.ReclassifyAsync(id, 1, "MONOCYTE", "ana", default);

        var signed = await service.SignOffImageAsync(id, "ben", default);

        Assert.Equal("ben", signed.Value!.SignedOffBy);
        var review = Assert.Single(_events.SignedOff);
        Assert.Equal((ReviewState.Image, id), (review.Kind, review.Id));
        Assert.Equal(1, review.Totals.ReviewedDifferential["MONOCYTE"].Count);
        var late = (await service.ReclassifyAsync(id, 0, "BASOPHIL", "ana", default)).Problem!;
        Assert.Equal(409, late.Status);
        Assert.StartsWith($"image '{id}' was signed off by ben at ", late.Detail);
        Assert.Equal(409, (await service.SignOffImageAsync(id, "ana", default)).Problem!.Status);
        Assert.Single(_events.SignedOff);
    }

    [Fact]
    public async Task AChangeThatLosesARaceWithASignOffIsRefusedNotWrittenOverIt()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL", "LYMPHOCYTE"]);
        var racing = new RacingReviewStore(_reviews);
        racing.Before = () => Service().SignOffImageAsync(id, "ben", default); // another reviewer signs off between the read and the write

        var change = await Service(racing).ReclassifyAsync(id, 0, "MONOCYTE", "ana", default);

        Assert.Equal(409, change.Problem!.Status);
        Assert.Contains("signed off by ben", change.Problem.Detail);
        Assert.Empty(await _reviews.GetCellReviewsAsync(id, "\"v1\"", default));
        var state = (await _reviews.GetStateAsync(id, ReviewState.Image, default))!;
        Assert.Equal(("ben", 0), (state.SignedOffBy, state.Reclassified));
    }

    [Fact]
    public async Task TwoReviewersMovingCellsAtOnceKeepBothChanges()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL", "LYMPHOCYTE"]);
        var racing = new RacingReviewStore(_reviews);
        racing.Before = () => Service().ReclassifyAsync(id, 1, "BASOPHIL", "ben", default);

        var change = await Service(racing).ReclassifyAsync(id, 0, "MONOCYTE", "ana", default);

        Assert.Null(change.Problem);
        Assert.Equal(2, change.Value!.Image.Reclassified);
        Assert.Equal([("MONOCYTE", "ana"), ("BASOPHIL", "ben")], (await _reviews.GetCellReviewsAsync(id, "\"v1\"", default)).Select(c => (c.ReviewedClass, c.Reviewer)));
    }

    [Fact]
    public async Task ABatchSignOffSignsItsImagesAndAnnouncesTheBatchsReviewedDifferential()
    {
        var first = await SeedAsync("b/1.jpg", ["NEUTROPHIL", "LYMPHOCYTE"], batchId: "batch1");
        var second = await SeedAsync("b/2.jpg", ["EOSINOPHIL"], batchId: "batch1");
        await _results.TryWriteBatchAsync(new BatchRow("batch1", "archives/b.zip", BatchRow.Completed, null, 2, 0, 0, DateTimeOffset.UtcNow), default);
        var service = Service();
        var moved = await service.ReclassifyAsync(first, 0, "LYMPHOCYTE", "ana", default);
        Assert.Equal(ClassCount.Of(2, 3), moved.Value!.Batch!.ReviewedDifferential["LYMPHOCYTE"]);
        Assert.Null((await service.SignOffImageAsync(second, "ana", default)).Problem);

        var signed = await service.SignOffBatchAsync("batch1", "ben", default);

        Assert.Equal("ben", signed.Value!.SignedOffBy);
        Assert.Equal((ClassCount.Of(2, 3), ClassCount.Of(0, 3)), (signed.Value.ReviewedDifferential["LYMPHOCYTE"], signed.Value.ReviewedDifferential["NEUTROPHIL"]));
        Assert.Equal((ReviewState.Batch, "batch1"), (_events.SignedOff[^1].Kind, _events.SignedOff[^1].Id));
        Assert.Equal("ben", (await _reviews.GetStateAsync(first, ReviewState.Image, default))!.SignedOffBy);
        Assert.Equal("ana", (await _reviews.GetStateAsync(second, ReviewState.Image, default))!.SignedOffBy); // signed before: kept as it was
        Assert.Equal(409, (await service.ReclassifyAsync(first, 1, "BASOPHIL", "ana", default)).Problem!.Status);
        Assert.Equal(409, (await service.SignOffBatchAsync("batch1", "ana", default)).Problem!.Status);

        var list = await service.ListAsync(default);
        var batch = Assert.Single(list.Batches);
        Assert.Equal((2, 3, 1, "ben"), (batch.Images, batch.Cells, batch.Reclassified, batch.SignedOffBy));
    }

    [Fact]
    public async Task ABatchStillProcessingCannotBeSignedOff()
    {
        await SeedAsync("c/1.jpg", ["NEUTROPHIL"], batchId: "batch2");
        await _results.UpsertBatchMemberAsync(new BatchMemberRow("batch2", "pending-image", "c.zip!2.jpg", BatchMemberRow.Pending, null, new Dictionary<string, int>()), default);
        await _results.TryWriteBatchAsync(new BatchRow("batch2", "archives/c.zip", BatchRow.Expanded, null, 2, 0, 0, DateTimeOffset.UtcNow), default);

        var refused = (await Service().SignOffBatchAsync("batch2", "ben", default)).Problem!;

        Assert.Equal((409, "batch 'batch2' is processing: only a completed batch is signed off"), (refused.Status, refused.Detail));
        Assert.Empty(_events.SignedOff);
    }

    [Fact]
    public async Task ANewUploadOfTheImageStartsAFreshReview()
    {
        var id = await SeedAsync("a.jpg", ["NEUTROPHIL"]);
        var service = Service();
        await service.ReclassifyAsync(id, 0, "MONOCYTE", "ana", default);
        await service.SignOffImageAsync(id, "ana", default);

        await SeedAsync("a.jpg", ["LYMPHOCYTE"], version: "\"v2\"");
        var sheet = (await service.GetImageSheetAsync(id, default)).Value!;

        Assert.Equal(("LYMPHOCYTE", null), (sheet.Cells.Single().ReviewedClass, sheet.Totals.SignedOffBy));
        Assert.Null((await service.ReclassifyAsync(id, 0, "BASOPHIL", "ben", default)).Problem);
    }

    /// <summary>An analysed image (of a batch, when given) with one cell per class given, found in upload version <paramref name="version"/>.</summary>
    private async Task<string> SeedAsync(string upload, string[] classes, string? batchId = null, string version = "\"v1\"")
    {
        var id = Stages.PipelineIds.Image(upload);
        var cells = classes.Select((c, i) => new CellRow(id, i, c, 0.9, new Dictionary<string, double> { [c] = 0.9 }, false, new Box(0, 0, 10, 10), 80, "", $"crops/{id}/{i}.png", BlobETag: version)).ToList();
        await _results.UpsertCellsAsync(id, cells, default);
        var existing = await _results.GetImageAsync(id, default);
        var counts = Classes.All.ToDictionary(c => c, c => classes.Count(x => x == c));
        Assert.True(await _results.TryWriteImageAsync(
            new ImageRow(id, $"uploads/{upload}", upload, batchId, ImageStatus.Completed, null, 100, 100, cells.Count, 0, counts, "m", 1, 1, null, version, DateTimeOffset.UtcNow)
            {
                ETag = existing?.ETag,
            }, default));
        if (batchId is not null)
        {
            await _results.UpsertBatchMemberAsync(new BatchMemberRow(batchId, id, $"uploads/{upload}", ImageStatus.Completed, null, counts), default);
        }

        return id;
    }

    private sealed class RecordingReviewEvents : IReviewEvents
    {
        public List<ReviewSignedOff> SignedOff { get; } = [];

        public Task SignedOffAsync(ReviewSignedOff review, CancellationToken cancellationToken)
        {
            SignedOff.Add(review);
            return Task.CompletedTask;
        }
    }

    /// <summary>The real store, except that another writer's change (<see cref="Before"/>) lands just before the first write.</summary>
    private sealed class RacingReviewStore(IReviewStore inner) : IReviewStore
    {
        private int _writes;

        public Func<Task>? Before { get; set; }

        public Task<ReviewState?> GetStateAsync(string subjectId, string kind, CancellationToken cancellationToken) => inner.GetStateAsync(subjectId, kind, cancellationToken);

        public Task<IReadOnlyList<ReviewState>> ListStatesAsync(string kind, CancellationToken cancellationToken) => inner.ListStatesAsync(kind, cancellationToken);

        public Task<IReadOnlyList<ReviewState>> ListBatchStatesAsync(string batchId, CancellationToken cancellationToken) => inner.ListBatchStatesAsync(batchId, cancellationToken);

        public async Task<bool> TryWriteAsync(ReviewState state, CellReview? cell, ReviewEntry entry, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _writes) == 1 && Before is not null)
            {
                await Before();
            }

            return await inner.TryWriteAsync(state, cell, entry, cancellationToken);
        }

        public Task<IReadOnlyList<CellReview>> GetCellReviewsAsync(string imageId, string blobETag, CancellationToken cancellationToken) =>
            inner.GetCellReviewsAsync(imageId, blobETag, cancellationToken);

        public Task<IReadOnlyList<ReviewEntry>> GetHistoryAsync(string subjectId, CancellationToken cancellationToken) => inner.GetHistoryAsync(subjectId, cancellationToken);
    }
}
