using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Leuko.Pipeline.Storage;

namespace Leuko.Azure.Storage;

/// <summary>The pipeline's containers in Azure Blob Storage (an account, or Azurite).</summary>
public sealed class AzureBlobStore(BlobServiceClient service) : IBlobStore
{
    private readonly ConcurrentDictionary<string, bool> _created = new();

    public Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken) =>
        GetAtMostAsync(container, name, long.MaxValue, cancellationToken);

    /// <summary>Reads the body only after its length is known: a blob over <paramref name="maxBytes"/> is not downloaded (its response is dropped unread).</summary>
    public async Task<StoredBlob?> GetAtMostAsync(string container, string name, long maxBytes, CancellationToken cancellationToken)
    {
        try
        {
            using var response = (await service.GetBlobContainerClient(container).GetBlobClient(name).DownloadStreamingAsync(cancellationToken: cancellationToken)).Value;
            var details = response.Details;
            var metadata = new Dictionary<string, string>(details.Metadata, StringComparer.OrdinalIgnoreCase);
            if (details.ContentLength > maxBytes)
            {
                return new StoredBlob(name, ReadOnlyMemory<byte>.Empty, Version(details.ETag), metadata) { Length = details.ContentLength };
            }

            var content = new byte[details.ContentLength];
            await response.Content.ReadExactlyAsync(content, cancellationToken);
            return new StoredBlob(name, content, Version(details.ETag), metadata);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task<Leuko.Pipeline.Storage.BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken)
    {
        try
        {
            var properties = (await service.GetBlobContainerClient(container).GetBlobClient(name).GetPropertiesAsync(cancellationToken: cancellationToken)).Value;
            return new Leuko.Pipeline.Storage.BlobInfo(Version(properties.ETag), properties.ContentLength, new Dictionary<string, string>(properties.Metadata, StringComparer.OrdinalIgnoreCase));
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task DeleteAsync(string container, string name, CancellationToken cancellationToken) =>
        await service.GetBlobContainerClient(container).GetBlobClient(name).DeleteIfExistsAsync(cancellationToken: cancellationToken);

    public async Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken)
    {
        try
        {
            return await service.GetBlobContainerClient(container).GetBlobClient(name).OpenReadAsync(new BlobOpenReadOptions(allowModifications: false), cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    public async Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType,
        IReadOnlyDictionary<string, string>? metadata, CancellationToken cancellationToken)
    {
        var client = service.GetBlobContainerClient(container);
        if (_created.TryAdd(container, true))
        {
            await client.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        }

        var options = new BlobUploadOptions
        {
            HttpHeaders = new BlobHttpHeaders { ContentType = contentType },
            Metadata = metadata?.ToDictionary(m => m.Key, m => m.Value),
        };
        await client.GetBlobClient(name).UploadAsync(new BinaryData(content), options, cancellationToken);
    }

    public async IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // A container that does not exist lists as empty. Asked of the listing itself, not beforehand: the upload
        // watcher lists four times a second, and an existence check doubled its requests.
        var blobs = service.GetBlobContainerClient(container).GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken);
        await using var listing = blobs.GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await listing.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                yield break;
            }

            var blob = listing.Current;
            yield return new BlobListing(blob.Name, blob.Properties.ETag is { } etag ? Version(etag) : "", blob.Properties.ContentLength ?? 0);
        }
    }

    /// <summary>
    /// A blob's version as every method gives it: the ETag bare, as a listing gives it (a download gives it quoted);
    /// one form, so a version recorded from one compares equal to the same version from the other.
    /// </summary>
    private static string Version(ETag etag) => etag.ToString().Trim('"');

    /// <summary>Creates the pipeline's containers (idempotent).</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        foreach (var container in new[] { Containers.Uploads, Containers.Archives, Containers.Crops, Containers.Batches })
        {
            await service.GetBlobContainerClient(container).CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            _created[container] = true;
        }
    }
}
