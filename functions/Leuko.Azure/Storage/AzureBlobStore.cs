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

    public async Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken)
    {
        try
        {
            var response = await service.GetBlobContainerClient(container).GetBlobClient(name).DownloadContentAsync(cancellationToken);
            var details = response.Value.Details;
            return new StoredBlob(name, response.Value.Content.ToMemory(), details.ETag.ToString(), new Dictionary<string, string>(details.Metadata, StringComparer.OrdinalIgnoreCase));
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

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
        var client = service.GetBlobContainerClient(container);
        if (!await client.ExistsAsync(cancellationToken))
        {
            yield break;
        }

        await foreach (var blob in client.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken))
        {
            yield return new BlobListing(blob.Name, blob.Properties.ETag?.ToString() ?? "", blob.Properties.ContentLength ?? 0);
        }
    }

    /// <summary>Creates the pipeline's containers (idempotent).</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        foreach (var container in new[] { Containers.Uploads, Containers.Archives, Containers.Crops })
        {
            await service.GetBlobContainerClient(container).CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            _created[container] = true;
        }
    }
}
