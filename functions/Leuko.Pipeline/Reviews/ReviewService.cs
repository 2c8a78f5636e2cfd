using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Reviews;

/// <summary>
/// The technologist's review, shared by both hosts' HTTP API: what there is to review, an image's or batch's cells,
/// moving a cell to another class, and signing an image or batch off. Every change is a conditional write of the
/// review state (see <see cref="IReviewStore"/>): the loser of a race between two reviewers reads again, so a change
/// made after a sign-off is refused and none is lost. A sign-off is announced through <see cref="IReviewEvents"/>.
/// </summary>
/// <param name="apiPath">Where the HTTP API is, for the crop and annotated image URLs (<c>/api</c>).</param>
public sealed class ReviewService(
    IResultStore results, IReviewStore reviews, IBlobStore blobs, CellClasses classes, string apiPath = "/api", IReviewEvents? events = null,
    TimeProvider? time = null)
{
    /// <summary>Reads of member images at once while a batch's sheet is put together.</summary>
    private const int ParallelReads = 8;

    private readonly IReviewEvents _events = events ?? NoReviewEvents.Instance;
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public IReadOnlyList<string> Targets => ReviewClasses.Targets(classes);

    public string CropPath(string imageId, int index) => $"{apiPath}/images/{imageId}/cells/{index}/crop";

    public async Task<ReviewList> ListAsync(CancellationToken cancellationToken)
    {
        var images = await results.ListImagesAsync(cancellationToken);
        var imageStates = (await reviews.ListStatesAsync(ReviewState.Image, cancellationToken)).ToDictionary(s => s.SubjectId);
        var batchStates = (await reviews.ListStatesAsync(ReviewState.Batch, cancellationToken)).ToDictionary(s => s.SubjectId);
        var items = images.Select(i =>
        {
            var state = Current(imageStates.GetValueOrDefault(i.ImageId), i);
            return new ReviewImageItem(i.ImageId, i.Source, i.BatchId, i.Status, i.Cells, i.NeedsReview, state?.Reclassified ?? 0, state?.SignedOffBy, state?.SignedOffAt, i.Updated);
        }).OrderByDescending(i => i.Updated).ToList();
        var batches = (await results.ListBatchesAsync(cancellationToken)).Select(b =>
        {
            var members = items.Where(i => i.BatchId == b.BatchId).ToList();
            var state = batchStates.GetValueOrDefault(b.BatchId);
            var status = b.Status is BatchRow.Expanded ? (members.Any(m => m.Status == ImageRow.Classifying) ? "processing" : BatchRow.Completed) : b.Status;
            return new ReviewBatchItem(b.BatchId, b.Archive, status, members.Count, members.Sum(m => m.Cells), members.Sum(m => m.NeedsReview),
                members.Sum(m => m.Reclassified), state?.SignedOffBy, state?.SignedOffAt, b.Updated);
        }).OrderByDescending(b => b.Updated).ToList();
        return new ReviewList(items, batches);
    }

    /// <summary>An image's cells and totals; a problem when there is no such image.</summary>
    public async Task<ReviewOutcome<ReviewSheet>> GetImageSheetAsync(string imageId, CancellationToken cancellationToken)
    {
        if (await results.GetImageAsync(imageId, cancellationToken) is not { } row)
        {
            return ReviewProblem.NotFound($"image '{imageId}'");
        }

        var image = await ReadImageAsync(row, cancellationToken);
        return new ReviewSheet(ReviewState.Image, row.ImageId, row.Source, row.Status, Targets, classes.Differential, image.Totals(classes),
            [image.SheetImage(apiPath)], image.CellViews(this));
    }

    /// <summary>A batch's cells (every image's) and totals; a problem when there is no such batch.</summary>
    public async Task<ReviewOutcome<ReviewSheet>> GetBatchSheetAsync(string batchId, CancellationToken cancellationToken)
    {
        if (await results.GetBatchAsync(batchId, cancellationToken) is not { } batch)
        {
            return ReviewProblem.NotFound($"batch '{batchId}'");
        }

        var members = await results.GetBatchMembersAsync(batchId, cancellationToken);
        var images = new ReviewedImage?[members.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, members.Count), new ParallelOptions { MaxDegreeOfParallelism = ParallelReads, CancellationToken = cancellationToken },
            async (i, ct) => images[i] = await results.GetImageAsync(members[i].ImageId, ct) is { } row ? await ReadImageAsync(row, ct) : null);
        var found = images.OfType<ReviewedImage>().OrderBy(i => i.Row.Source, StringComparer.Ordinal).ToList();
        var state = await reviews.GetStateAsync(batchId, ReviewState.Batch, cancellationToken);
        var totals = Totals(found.Select(i => (i.Row.Counts, i.ReviewedCounts, i.Reclassified)).ToList(), state);
        var status = batch.Status is BatchRow.Expanded ? (members.Any(m => m.Status == BatchMemberRow.Pending) ? "processing" : BatchRow.Completed) : batch.Status;
        return new ReviewSheet(ReviewState.Batch, batchId, batch.Archive, status, Targets, classes.Differential, totals,
            found.Select(i => i.SheetImage(apiPath)).ToList(), found.SelectMany(i => i.CellViews(this)).ToList());
    }

    /// <summary>The crop of one cell of an image's current version (PNG in blob storage), or null.</summary>
    public async Task<StoredBlob?> GetCropAsync(string imageId, int index, CancellationToken cancellationToken)
    {
        if (await results.GetImageAsync(imageId, cancellationToken) is not { BlobETag: { } version } ||
            (await results.GetCellsAsync(imageId, version, cancellationToken)).FirstOrDefault(c => c.Index == index) is not { } cell ||
            cell.CropBlob.Split('/', 2) is not [var container, var name])
        {
            return null;
        }

        return await blobs.GetAsync(container, name, cancellationToken);
    }

    /// <summary>
    /// Gives cell <paramref name="index"/> of the image the class <paramref name="target"/>, as <paramref name="reviewer"/>:
    /// the reviewed differential is recomputed; refused for an unknown image, cell or class, an image not analysed,
    /// and an image signed off (itself or with its batch).
    /// </summary>
    public async Task<ReviewOutcome<ReclassifyView>> ReclassifyAsync(string imageId, int index, string? target, string reviewer, CancellationToken cancellationToken)
    {
        if (await results.GetImageAsync(imageId, cancellationToken) is not { } row)
        {
            return ReviewProblem.NotFound($"image '{imageId}'");
        }

        if (row is not { Status: ImageStatus.Completed, BlobETag: { } version })
        {
            return ReviewProblem.Conflict($"image '{imageId}' is {row.Status}: only an analysed image with cells is reviewed");
        }

        var cells = await results.GetCellsAsync(imageId, version, cancellationToken);
        if (cells.FirstOrDefault(c => c.Index == index) is not { } cell)
        {
            return ReviewProblem.NotFound($"cell {index} in image '{imageId}' (it has {cells.Count}: 0 to {cells.Count - 1})");
        }

        if (target is null || !Targets.Contains(target))
        {
            return ReviewProblem.Invalid($"unknown class '{target}': give one of {string.Join(", ", Targets)}");
        }

        while (true)
        {
            var image = await ReadImageAsync(row, cancellationToken, cells);
            if (image.State is { IsSignedOff: true } signed)
            {
                return ReviewProblem.Conflict($"image '{imageId}' was signed off by {signed.SignedOffBy} at {signed.SignedOffAt:O}: its cells can no longer be changed");
            }

            var from = image.ReviewedClass(cell);
            if (from == target)
            {
                return new ReclassifyView(image.CellView(this, cell), image.Totals(classes), await BatchTotalsAsync(row.BatchId, cancellationToken));
            }

            var now = _time.GetUtcNow();
            var review = new CellReview(imageId, version, index, cell.Class, target, reviewer, now);
            var moved = image.With(review);
            var state = moved.NextState(now);
            if (await reviews.TryWriteAsync(state, review, new ReviewEntry(imageId, ReviewEntry.Reclassify, index, cell.Class, from, target, reviewer, now), cancellationToken))
            {
                moved = moved with { State = state };
                return new ReclassifyView(moved.CellView(this, cell), moved.Totals(classes), await BatchTotalsAsync(row.BatchId, cancellationToken));
            }
        }
    }

    /// <summary>Signs the image off as <paramref name="reviewer"/> and announces <c>image.reviewed</c>; refused when it is signed off already or not analysed.</summary>
    public async Task<ReviewOutcome<ReviewTotals>> SignOffImageAsync(string imageId, string reviewer, CancellationToken cancellationToken)
    {
        if (await results.GetImageAsync(imageId, cancellationToken) is not { } row)
        {
            return ReviewProblem.NotFound($"image '{imageId}'");
        }

        if (row.Status is not (ImageStatus.Completed or ImageStatus.NoLeukocytes))
        {
            return ReviewProblem.Conflict($"image '{imageId}' is {row.Status}: only an analysed image is signed off");
        }

        var (signed, problem) = await SignAsync(row, reviewer, cancellationToken);
        if (signed is null)
        {
            return problem!;
        }

        var totals = signed.Totals(classes);
        await _events.SignedOffAsync(new ReviewSignedOff(ReviewState.Image, imageId, row.Source, row.BatchId, totals), cancellationToken);
        return totals;
    }

    /// <summary>
    /// Signs the batch off as <paramref name="reviewer"/>, and with it every analysed image of it not signed off yet,
    /// and announces <c>batch.reviewed</c>; refused while images are pending, and when it is signed off already.
    /// </summary>
    public async Task<ReviewOutcome<ReviewTotals>> SignOffBatchAsync(string batchId, string reviewer, CancellationToken cancellationToken)
    {
        if (await results.GetBatchAsync(batchId, cancellationToken) is not { } batch)
        {
            return ReviewProblem.NotFound($"batch '{batchId}'");
        }

        var members = await results.GetBatchMembersAsync(batchId, cancellationToken);
        if (batch.Status is BatchRow.Expanding or BatchRow.Failed || members.Any(m => m.Status == BatchMemberRow.Pending))
        {
            return ReviewProblem.Conflict($"batch '{batchId}' is {(batch.Status == BatchRow.Expanded ? "processing" : batch.Status)}: only a completed batch is signed off");
        }

        if (await reviews.GetStateAsync(batchId, ReviewState.Batch, cancellationToken) is { IsSignedOff: true } already)
        {
            return ReviewProblem.Conflict($"batch '{batchId}' was signed off by {already.SignedOffBy} at {already.SignedOffAt:O}");
        }

        foreach (var member in members.Where(m => m.Status is ImageStatus.Completed or ImageStatus.NoLeukocytes))
        {
            if (await results.GetImageAsync(member.ImageId, cancellationToken) is { } row)
            {
                await SignAsync(row, reviewer, cancellationToken); // one signed off already (by anyone) stays as it was
            }
        }

        while (true)
        {
            var current = await reviews.GetStateAsync(batchId, ReviewState.Batch, cancellationToken);
            if (current is { IsSignedOff: true })
            {
                return ReviewProblem.Conflict($"batch '{batchId}' was signed off by {current.SignedOffBy} at {current.SignedOffAt:O}");
            }

            var now = _time.GetUtcNow();
            var state = new ReviewState(batchId, ReviewState.Batch, batchId, null, (current?.Revision ?? 0) + 1, 0, new Dictionary<string, int>(), reviewer, now, now)
            {
                ETag = current?.ETag,
            };
            if (await reviews.TryWriteAsync(state, null, new ReviewEntry(batchId, ReviewEntry.SignOff, null, null, null, null, reviewer, now), cancellationToken))
            {
                var totals = (await BatchTotalsAsync(batchId, cancellationToken))!;
                await _events.SignedOffAsync(new ReviewSignedOff(ReviewState.Batch, batchId, batch.Archive, batchId, totals), cancellationToken);
                return totals;
            }
        }
    }

    // Signs one image off unless it is already; the image as signed, or the problem (signed off before).
    private async Task<(ReviewedImage? Signed, ReviewProblem? Problem)> SignAsync(ImageRow row, string reviewer, CancellationToken cancellationToken)
    {
        while (true)
        {
            var image = await ReadImageAsync(row, cancellationToken);
            if (image.State is { IsSignedOff: true } signed)
            {
                return (null, ReviewProblem.Conflict($"image '{row.ImageId}' was signed off by {signed.SignedOffBy} at {signed.SignedOffAt:O}"));
            }

            var now = _time.GetUtcNow();
            var state = image.NextState(now) with { SignedOffBy = reviewer, SignedOffAt = now };
            if (await reviews.TryWriteAsync(state, null, new ReviewEntry(row.ImageId, ReviewEntry.SignOff, null, null, null, null, reviewer, now), cancellationToken))
            {
                return (image with { State = state }, null);
            }
        }
    }

    private async Task<ReviewTotals?> BatchTotalsAsync(string? batchId, CancellationToken cancellationToken)
    {
        if (batchId is null)
        {
            return null;
        }

        var members = await results.GetBatchMembersAsync(batchId, cancellationToken);
        var states = (await reviews.ListBatchStatesAsync(batchId, cancellationToken)).ToDictionary(s => s.SubjectId);
        var state = await reviews.GetStateAsync(batchId, ReviewState.Batch, cancellationToken);
        return Totals(members.Select(m => states.GetValueOrDefault(m.ImageId) is { } s
            ? (m.Counts, s.ReviewedCounts, s.Reclassified)
            : (m.Counts, m.Counts, 0)).ToList(), state);
    }

    private ReviewTotals Totals(IReadOnlyList<(IReadOnlyDictionary<string, int> Counts, IReadOnlyDictionary<string, int> Reviewed, int Reclassified)> images, ReviewState? state)
    {
        var counts = Sum(images.Select(i => i.Counts));
        var reviewed = Sum(images.Select(i => i.Reviewed));
        return ReviewedImage.TotalsOf(classes, counts, reviewed, images.Sum(i => i.Reclassified), state);
    }

    private static Dictionary<string, int> Sum(IEnumerable<IReadOnlyDictionary<string, int>> counts) =>
        counts.SelectMany(c => c).GroupBy(c => c.Key).ToDictionary(g => g.Key, g => g.Sum(c => c.Value));

    private async Task<ReviewedImage> ReadImageAsync(ImageRow row, CancellationToken cancellationToken, IReadOnlyList<CellRow>? cells = null)
    {
        var state = await reviews.GetStateAsync(row.ImageId, ReviewState.Image, cancellationToken);
        if (row is not { Status: ImageStatus.Completed or ImageStatus.NoLeukocytes, BlobETag: { } version })
        {
            return new ReviewedImage(row, [], new Dictionary<int, CellReview>(), Current(state, row), state?.ETag);
        }

        cells ??= await results.GetCellsAsync(row.ImageId, version, cancellationToken);
        var reviewed = await reviews.GetCellReviewsAsync(row.ImageId, version, cancellationToken);
        return new ReviewedImage(row, cells, reviewed.ToDictionary(r => r.Index), Current(state, row), state?.ETag);
    }

    // A state of another upload version is not this version's review: it counts as none (its ETag is kept for the write that replaces it).
    private static ReviewState? Current(ReviewState? state, ImageRow row) => state is not null && state.BlobETag == row.BlobETag ? state : null;

    /// <summary>One image with its cells and their reviews, as read together.</summary>
    private sealed record ReviewedImage(ImageRow Row, IReadOnlyList<CellRow> Cells, IReadOnlyDictionary<int, CellReview> Reviews, ReviewState? State, string? StoredETag)
    {
        public string ReviewedClass(CellRow cell) => Reviews.TryGetValue(cell.Index, out var r) ? r.ReviewedClass : cell.Class;

        public IReadOnlyDictionary<string, int> ReviewedCounts =>
            Cells.Count == 0 ? Row.Counts : Cells.GroupBy(ReviewedClass).ToDictionary(g => g.Key, g => g.Count());

        public int Reclassified => Cells.Count(c => ReviewedClass(c) != c.Class);

        public ReviewedImage With(CellReview review) => this with { Reviews = new Dictionary<int, CellReview>(Reviews) { [review.Index] = review } };

        public ReviewState NextState(DateTimeOffset now) =>
            new(Row.ImageId, ReviewState.Image, Row.BatchId, Row.BlobETag, (State?.Revision ?? 0) + 1, Reclassified, ReviewedCounts, State?.SignedOffBy, State?.SignedOffAt, now)
            {
                ETag = StoredETag,
            };

        public ReviewTotals Totals(CellClasses classes) => TotalsOf(classes, Row.Counts, ReviewedCounts, Reclassified, State);

        public static ReviewTotals TotalsOf(
            CellClasses classes, IReadOnlyDictionary<string, int> counts, IReadOnlyDictionary<string, int> reviewed, int reclassified, ReviewState? state)
        {
            var (differential, others) = classes.FromCounts(counts.Where(c => c.Key != ReviewClasses.NotACell).ToDictionary(c => c.Key, c => c.Value));
            var (reviewedDifferential, reviewedOthers) = ReviewClasses.Count(classes, reviewed);
            return new ReviewTotals(
                counts.Values.Sum(), reclassified, reviewed.GetValueOrDefault(ReviewClasses.NotACell),
                counts.Where(c => classes.Differential.Contains(c.Key)).Sum(c => c.Value), reviewed.Where(c => classes.Differential.Contains(c.Key)).Sum(c => c.Value),
                differential, others, reviewedDifferential, reviewedOthers, state?.SignedOffBy, state?.SignedOffAt);
        }

        public ReviewSheetImage SheetImage(string apiPath) =>
            new(Row.ImageId, Row.Source, Row.Width, Row.Height, $"{apiPath}/images/{Row.ImageId}/annotated", State?.SignedOffBy);

        public IReadOnlyList<ReviewCellView> CellViews(ReviewService service) => Cells.Select(c => CellView(service, c)).ToList();

        public ReviewCellView CellView(ReviewService service, CellRow cell)
        {
            var review = Reviews.GetValueOrDefault(cell.Index);
            return new ReviewCellView(Row.ImageId, cell.Index, cell.Class, review?.ReviewedClass ?? cell.Class, cell.Confidence, cell.NeedsReview, cell.ReviewReason,
                cell.Box, service.CropPath(Row.ImageId, cell.Index), review?.Reviewer, review?.At);
        }
    }
}
