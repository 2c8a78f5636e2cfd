using Leuko.Azure.Storage;
using Leuko.Pipeline;
using Leuko.Pipeline.Storage;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>The Table Storage results store against a real Azurite.</summary>
[Collection("Azurite")]
public class TableResultStoreTests
{
    [Fact]
    public async Task PendingMembersAreFoundWithoutReadingTheBatch()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var batch = Azurite.Unique("b");
        var counts = new Dictionary<string, int>();
        Assert.False(await store.HasPendingMembersAsync(batch, CancellationToken.None));

        await store.UpsertBatchMemberAsync(new BatchMemberRow(batch, "i1", "a.zip!1.jpg", ImageStatus.Completed, null, counts), CancellationToken.None);
        await store.UpsertBatchMemberAsync(new BatchMemberRow(batch, "i2", "a.zip!2.jpg", BatchMemberRow.Pending, null, counts), CancellationToken.None);
        await store.UpsertBatchMemberAsync(new BatchMemberRow(Azurite.Unique("other"), "i9", "b.zip!9.jpg", BatchMemberRow.Pending, null, counts), CancellationToken.None);
        Assert.True(await store.HasPendingMembersAsync(batch, CancellationToken.None));

        await store.UpsertBatchMemberAsync(new BatchMemberRow(batch, "i2", "a.zip!2.jpg", ImageStatus.Failed, "corrupt", counts), CancellationToken.None);
        Assert.False(await store.HasPendingMembersAsync(batch, CancellationToken.None));
        Assert.Equal(2, (await store.GetBatchMembersAsync(batch, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task ARowIsWrittenOnlyOverTheVersionItWasReadAt()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var row = new ImageRow(Azurite.Unique("img"), "uploads/a.jpg", "a.jpg", null, ImageRow.Classifying, null, 640, 480, 1, 0,
            new Dictionary<string, int>(), null, null, null, null, "\"v1\"", DateTimeOffset.UtcNow);

        Assert.True(await store.TryWriteImageAsync(row, CancellationToken.None));
        Assert.False(await store.TryWriteImageAsync(row with { Status = ImageStatus.Failed }, CancellationToken.None)); // a new row where one exists
        var read = (await store.GetImageAsync(row.ImageId, CancellationToken.None))!;
        Assert.True(await store.TryWriteImageAsync(read with { Status = ImageStatus.Completed }, CancellationToken.None));
        Assert.False(await store.TryWriteImageAsync(read with { Status = ImageRow.Classifying }, CancellationToken.None)); // read before that write
        Assert.Equal(ImageStatus.Completed, (await store.GetImageAsync(row.ImageId, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task AWriteGivesTheRowsNewETagWhichTheNextWriterWritesOverWithoutReading()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var row = new ImageRow(Azurite.Unique("img"), "uploads/a.jpg", "a.jpg", null, ImageRow.Classifying, null, 640, 480, 1, 0,
            new Dictionary<string, int>(), null, null, null, null, "\"v1\"", DateTimeOffset.UtcNow);

        var written = await store.WriteImageAsync(row, CancellationToken.None);
        Assert.NotNull(written);
        Assert.Equal((await store.GetImageAsync(row.ImageId, CancellationToken.None))!.ETag, written);
        Assert.Null(await store.WriteImageAsync(row, CancellationToken.None)); // a new row where one exists

        var completed = await store.WriteImageAsync(row with { Status = ImageStatus.Completed, ETag = written }, CancellationToken.None);
        Assert.NotNull(completed);
        Assert.NotEqual(written, completed);
        Assert.Null(await store.WriteImageAsync(row with { Status = ImageStatus.Failed, ETag = written }, CancellationToken.None)); // a version ago
        Assert.Equal(ImageStatus.Completed, (await store.GetImageAsync(row.ImageId, CancellationToken.None))!.Status);
    }

    [Fact]
    public async Task ReceiptsWrittenTogetherAreListedInOneQueryAndFailedAttemptsAreNot()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var container = Azurite.Unique("container"); // the receipts' partition: a container of this test's own
        var blobs = Enumerable.Range(0, 250).Select(i => new BlobVersion($"run/{i:D3}.jpg", $"0x{i:X}")).ToList(); // three transactions

        // A name twice (a blob replaced before its receipts were written): the later version is the one recorded.
        await store.AddReceiptsAsync(container, [.. blobs, new BlobVersion("run/000.jpg", "0xNEW")], CancellationToken.None);
        Assert.Equal(1, await store.AddFailedAttemptAsync(container, "run/failing.jpg", "0x1", "the store answered 500", CancellationToken.None));

        var listed = await store.ListReceiptsAsync(container, CancellationToken.None);
        Assert.Equal(
            [new BlobVersion("run/000.jpg", "0xNEW"), .. blobs.Skip(1)],
            listed.OrderBy(b => b.Name, StringComparer.Ordinal));
        Assert.True(await store.HasReceiptAsync(container, "run/000.jpg", "0xNEW", CancellationToken.None));
        Assert.False(await store.HasReceiptAsync(container, "run/000.jpg", "0x0", CancellationToken.None));
        Assert.False(await store.HasReceiptAsync(container, "run/failing.jpg", "0x1", CancellationToken.None));
        Assert.Empty(await store.ListReceiptsAsync(Azurite.Unique("container"), CancellationToken.None));

        // A receipt after failed attempts: handled, and listed.
        await store.AddReceiptsAsync(container, [new BlobVersion("run/failing.jpg", "0x1")], CancellationToken.None);
        Assert.Contains(new BlobVersion("run/failing.jpg", "0x1"), await store.ListReceiptsAsync(container, CancellationToken.None));
    }

    [Fact]
    public async Task TextLongerThanAPropertyHoldsIsCutSayingSoAndTheRowIsWritten()
    {
        await Azurite.RequireAsync();
        var store = new TableResultStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);
        var error = new string('e', 200_000); // 400 KB as UTF-16: past the 64 KiB a string property holds
        var batch = new BatchRow(Azurite.Unique("long"), "archives/" + new string('n', 40_000) + ".zip", BatchRow.Failed, error, 0, 0, 20_000, DateTimeOffset.UtcNow);

        Assert.True(await store.TryWriteBatchAsync(batch, CancellationToken.None));
        var read = (await store.GetBatchAsync(batch.BatchId, CancellationToken.None))!;
        Assert.InRange(read.Error!.Length, TableResultStore.MaxTextChars - 100, TableResultStore.MaxTextChars);
        Assert.EndsWith("characters cut)", read.Error);
        Assert.StartsWith("archives/nnnn", read.Archive);
        Assert.Equal(20_000, read.Skipped);
    }
}
