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
}
