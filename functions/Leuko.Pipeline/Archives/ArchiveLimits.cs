using Leuko.Core.Imaging;

namespace Leuko.Pipeline.Archives;

/// <summary>
/// What an uploaded zip may contain before it is refused. The defaults admit a lab's batch of many thousands of smear
/// photographs and stop zip bombs: an archive is read entry by entry into memory, never extracted to disk.
/// </summary>
/// <param name="MaxEntries">Most entries (files and folders) in one archive; more and the whole archive is refused.</param>
/// <param name="MaxTotalBytes">Most uncompressed bytes in one archive, declared or actually inflated.</param>
/// <param name="MaxEntryBytes">Most uncompressed bytes in one entry: as for an image file (<see cref="ImageFile.MaxBytes"/>).</param>
/// <param name="MaxCompressionRatio">Most uncompressed bytes per compressed byte for an entry of at least <paramref name="RatioCheckedFrom"/> bytes.
/// Photographs barely compress (JPEG and PNG about 1:1, BMP rarely beyond 10:1); bombs reach 1000:1.</param>
/// <param name="RatioCheckedFrom">Entries smaller than this are not held to the ratio (tiny files compress well and cannot hurt).</param>
public sealed record ArchiveLimits(
    int MaxEntries = 50_000,
    long MaxTotalBytes = 16L * 1024 * 1024 * 1024,
    long MaxEntryBytes = ImageFile.MaxBytes,
    double MaxCompressionRatio = 100,
    long RatioCheckedFrom = 1024 * 1024)
{
    public static ArchiveLimits Default { get; } = new();
}
