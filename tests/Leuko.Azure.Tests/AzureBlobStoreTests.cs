using Leuko.Azure.Storage;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>The blob store against a real Azurite.</summary>
[Collection("Azurite")]
public class AzureBlobStoreTests
{
    [Fact]
    public async Task AContainerThatDoesNotExistListsAsEmptyAndOneThatDoesListsItsBlobsUnderThePrefix()
    {
        await Azurite.RequireAsync();
        var store = new AzureBlobStore(Azurite.Blobs);
        var container = Azurite.Unique("list").ToLowerInvariant();

        Assert.Empty(await store.ListAsync(container, null, CancellationToken.None).ToListAsync());

        await Azurite.Blobs.GetBlobContainerClient(container).CreateAsync();
        await store.PutAsync(container, "a/1.png", new byte[] { 1, 2, 3 }, "image/png", null, CancellationToken.None);
        await store.PutAsync(container, "a/2.png", new byte[] { 4 }, "image/png", null, CancellationToken.None);
        await store.PutAsync(container, "b/3.png", new byte[] { 5 }, "image/png", null, CancellationToken.None);

        var listed = await store.ListAsync(container, "a/", CancellationToken.None).ToListAsync();
        Assert.Equal(["a/1.png", "a/2.png"], listed.Select(b => b.Name));
        Assert.Equal([3L, 1L], listed.Select(b => b.Length));
        Assert.All(listed, b => Assert.DoesNotContain('"', b.ETag)); // the bare form every method gives
        Assert.Equal(3, (await store.ListAsync(container, null, CancellationToken.None).ToListAsync()).Count);
        await Azurite.Blobs.GetBlobContainerClient(container).DeleteAsync();
    }
}
