namespace Leuko.Pipeline.Storage;

/// <summary>A blob's content, version and metadata.</summary>
public sealed record StoredBlob(string Name, ReadOnlyMemory<byte> Content, string ETag, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The blob's length: that of <see cref="Content"/>, unless the blob was too long to be read (<see cref="IBlobStore.GetAtMostAsync"/>): then Content is empty.</summary>
    public long Length { get; init; } = Content.Length;
}

/// <summary>A blob's version, size and metadata, without its content.</summary>
public sealed record BlobInfo(string ETag, long Length, IReadOnlyDictionary<string, string> Metadata);

/// <summary>A blob as listed: enough to decide whether it is new.</summary>
public sealed record BlobListing(string Name, string ETag, long Length);

/// <summary>
/// Blob containers of the pipeline (<see cref="Containers"/>). Adapters: Azure Blob Storage (Azurite or an account)
/// and in memory.
/// </summary>
public interface IBlobStore
{
    /// <summary>The blob, or null when it does not exist.</summary>
    Task<StoredBlob?> GetAsync(string container, string name, CancellationToken cancellationToken);

    /// <summary>
    /// The blob, or null when it does not exist; one longer than <paramref name="maxBytes"/> is not read (what a
    /// mistaken upload of gigabytes would cost in memory and time): its content is empty and its Length says how long
    /// it is, with its version and metadata.
    /// </summary>
    async Task<StoredBlob?> GetAtMostAsync(string container, string name, long maxBytes, CancellationToken cancellationToken)
    {
        var blob = await GetAsync(container, name, cancellationToken); // in memory already: the limit is only applied
        return blob is not null && blob.Content.Length > maxBytes ? blob with { Content = ReadOnlyMemory<byte>.Empty, Length = blob.Content.Length } : blob;
    }

    /// <summary>The blob's version (ETag), size and metadata, or null when it does not exist.</summary>
    Task<BlobInfo?> GetInfoAsync(string container, string name, CancellationToken cancellationToken);

    /// <summary>A seekable read stream over a (large) blob, or null when it does not exist.</summary>
    Task<Stream?> OpenReadAsync(string container, string name, CancellationToken cancellationToken);

    /// <summary>Creates or overwrites a blob (the container is created when missing).</summary>
    Task PutAsync(string container, string name, ReadOnlyMemory<byte> content, string contentType,
        IReadOnlyDictionary<string, string>? metadata, CancellationToken cancellationToken);

    /// <summary>Deletes the blob if it exists.</summary>
    Task DeleteAsync(string container, string name, CancellationToken cancellationToken);

    /// <summary>Every blob of a container whose name starts with <paramref name="prefix"/>, in name order.</summary>
    IAsyncEnumerable<BlobListing> ListAsync(string container, string? prefix, CancellationToken cancellationToken);
}

/// <summary>The containers, and the metadata keys the stages put on blobs.</summary>
public static class Containers
{
    /// <summary>Images to analyse (users upload here; archives are expanded here under their batch id).</summary>
    public const string Uploads = "uploads";

    /// <summary>Zip archives of images.</summary>
    public const string Archives = "archives";

    /// <summary>Leukocyte crops (lossless PNG), and an image's manifest when it is too large for the classification message, written by segmentation.</summary>
    public const string Crops = "crops";

    /// <summary>What a batch has that is too long for a table row: the list of an archive's skipped entries (<c>BATCHID/skipped.json</c>).</summary>
    public const string Batches = "batches";

    /// <summary>Metadata on an upload that came from an archive: the batch id.</summary>
    public const string BatchIdKey = "leukobatch";

    /// <summary>
    /// Metadata on an upload that came from an archive: the archive version (its ETag) it was expanded from, so that an
    /// expansion resumed after a crash leaves the images it wrote before as they are.
    /// </summary>
    public const string ArchiveVersionKey = "leukoarchive";

    /// <summary>Metadata on an upload that came from an archive: the archive entry it came from.</summary>
    public const string SourceKey = "leukosource";

    /// <summary>
    /// Metadata on an upload (or an archive, for all its entries): the images' physical scale in µm per pixel, where the
    /// uploader knows the microscope's calibration. Without it each image's scale is estimated from its red cells.
    /// </summary>
    public const string MicronsPerPixelKey = "micronsperpixel";
}
