using System.IO.Compression;
using System.IO.Hashing;
using Leuko.Core.Imaging;

namespace Leuko.Pipeline.Archives;

/// <summary>What is done with one archive entry.</summary>
public enum ArchiveEntryKind
{
    /// <summary>An image to analyse.</summary>
    Image,

    /// <summary>Not analysed and not an error: a non-image file, a nested archive, operating-system metadata.</summary>
    Skipped,

    /// <summary>Refused for safety (unsafe name, too large, suspicious compression): reported as a failed input.</summary>
    Refused,
}

/// <summary>One file entry of an archive and the verdict on it, decided from the central directory before anything is inflated.</summary>
/// <param name="Name">The entry's name as stored (for unsafe names, exactly as stored, so the report shows what was refused).</param>
/// <param name="Reason">Why it is skipped or refused; null for images.</param>
public sealed record ArchiveEntry(int Index, string Name, long Length, long CompressedLength, ArchiveEntryKind Kind, string? Reason);

/// <summary>The whole archive is refused (not a zip, too many entries, too large): nothing in it is analysed.</summary>
public sealed class ArchiveRejectedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One entry could not be read safely (inflates past its declared size, corrupt, encrypted).</summary>
public sealed class ArchiveEntryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A zip archive of smear photographs, read safely: limits on entry count, total and per-entry size and compression
/// ratio; names that would escape a folder (<c>../</c>, absolute paths, drive letters) refused; nested archives and
/// non-images skipped. Entries are inflated one at a time into memory, never past their declared size (.NET's zip
/// reader stops there; a test holds it to that), so a header that lies about sizes cannot get past the limits: the
/// entry comes out truncated and fails its CRC-32 check, as does any entry whose bytes are not the ones stored. Not thread-safe: read entries from one thread.
/// </summary>
public sealed class ImageArchive : IDisposable
{
    private static readonly HashSet<string> ArchiveExtensions = new(StringComparer.OrdinalIgnoreCase)
        { ".zip", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".jar" };

    private readonly ZipArchive _zip;
    private readonly Stream? _owned;
    private readonly ArchiveLimits _limits;
    private long _inflated;

    private ImageArchive(ZipArchive zip, IReadOnlyList<ArchiveEntry> entries, ArchiveLimits limits, Stream? owned)
    {
        _zip = zip;
        _owned = owned;
        Entries = entries;
        _limits = limits;
    }

    /// <summary>The first bytes a zip archive begins with: a local file header, or the end record of an empty archive.</summary>
    public const int MagicLength = 4;

    /// <summary>
    /// Whether <paramref name="head"/> (a file's first <see cref="MagicLength"/> bytes or more) begins a zip archive:
    /// archive or image is decided by content, whatever the name says, as the image formats are.
    /// </summary>
    public static bool IsZip(ReadOnlySpan<byte> head) =>
        head.Length >= MagicLength && head[0] == 'P' && head[1] == 'K' && ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6));

    /// <summary>The kind of archive of another format (gzip, 7-Zip, RAR, tar...) that a seekable stream begins with, or null.</summary>
    private static string? OtherArchive(Stream stream)
    {
        if (!stream.CanSeek)
        {
            return null;
        }

        try
        {
            stream.Position = 0;
            var head = new byte[262];
            int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            return ImageHeader.OtherArchive(head.AsSpan(0, read));
        }
        catch (Exception e) when (e is IOException or NotSupportedException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>The end-of-central-directory record without a comment: the smallest zip, an empty one, is this long.</summary>
    internal const int EndRecordLength = 22;

    /// <summary>Every file entry (folders left out) in stored order, with its verdict.</summary>
    public IReadOnlyList<ArchiveEntry> Entries { get; }

    /// <summary>
    /// Opens a zip and judges every entry from its central directory. The stream should be seekable (a file, a blob read
    /// stream). A zip with bytes before it (a self-extracting archive) is read as unzip reads it (<see cref="PrependedZip"/>).
    /// Unless <paramref name="leaveOpen"/>, the stream is the archive's, and disposed with it or when it is refused.
    /// </summary>
    /// <exception cref="ArchiveRejectedException">Not a zip archive, over the entry-count or total-size limit, or holding no
    /// image to analyse (empty, only folders, only skipped files).</exception>
    public static ImageArchive Open(Stream stream, ArchiveLimits? limits = null, bool leaveOpen = false)
    {
        limits ??= ArchiveLimits.Default;
        var owned = leaveOpen ? null : stream;
        try
        {
            try
            {
                return Read(stream, limits, owned);
            }
            catch (ArchiveRejectedException e) when (e.InnerException is InvalidDataException && PrependedZip.Shift(stream) is > 0 and var shift)
            {
                return Read(new StreamTail(stream, shift, leaveOpen: true), limits, owned);
            }
        }
        catch when (owned is not null)
        {
            owned.Dispose();
            throw;
        }
    }

    private static ImageArchive Read(Stream stream, ArchiveLimits limits, Stream? owned)
    {
        if (stream.CanSeek && stream.Length < EndRecordLength)
        {
            // Shorter than the record every zip ends with; ZipArchive would seek before the start to find it, which a
            // file refuses as corrupt data and a blob read stream as a bad argument.
            throw new ArchiveRejectedException($"not a readable zip archive: {stream.Length} bytes, shorter than a zip's end record ({EndRecordLength})");
        }

        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new ArchiveRejectedException(
                OtherArchive(stream) is { } kind ? $"not a zip archive but {kind}: only zip archives are expanded; make a zip of the images" : $"not a readable zip archive: {e.Message}",
                e);
        }

        try
        {
            if (zip.Entries.Count > limits.MaxEntries)
            {
                throw new ArchiveRejectedException($"archive has {zip.Entries.Count:N0} entries, more than the limit of {limits.MaxEntries:N0}");
            }

            long declared = zip.Entries.Sum(e => e.Length);
            if (declared > limits.MaxTotalBytes)
            {
                throw new ArchiveRejectedException(
                    $"archive declares {declared:N0} uncompressed bytes, more than the limit of {limits.MaxTotalBytes:N0}");
            }

            var entries = new List<ArchiveEntry>();
            for (int i = 0; i < zip.Entries.Count; i++)
            {
                var e = zip.Entries[i];
                if (e.FullName.EndsWith('/') || e.FullName.EndsWith('\\'))
                {
                    continue; // a folder
                }

                var (kind, reason) = Judge(e.FullName, e.Length, e.CompressedLength, limits);
                entries.Add(new ArchiveEntry(i, e.FullName, e.Length, e.CompressedLength, kind, reason));
            }

            // An archive with nothing to analyse is an error the user must hear of, not an empty success: it is refused,
            // so the CLI lists it as failed and its batch fails with this reason. Refused entries count: they are
            // reported one by one.
            if (!entries.Any(e => e.Kind != ArchiveEntryKind.Skipped))
            {
                throw new ArchiveRejectedException(entries.Count == 0
                    ? "archive holds no images: it has no files"
                    : $"archive holds no images: none of its {entries.Count:N0} files is a {ImageFormats.Names} image " +
                      $"({string.Join(", ", entries.Take(3).Select(e => $"{e.Name}: {e.Reason}"))}{(entries.Count > 3 ? ", ..." : "")})");
            }

            return new ImageArchive(zip, entries, limits, owned);
        }
        catch (InvalidDataException e)
        {
            // The central directory is read here, at the first look at the entries, not when the archive is opened.
            zip.Dispose();
            throw new ArchiveRejectedException($"not a readable zip archive: {e.Message}", e);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>The verdict on one entry, from its name and declared sizes.</summary>
    public static (ArchiveEntryKind Kind, string? Reason) Judge(string name, long length, long compressedLength, ArchiveLimits limits)
    {
        if (UnsafeName(name) is { } unsafeName)
        {
            return (ArchiveEntryKind.Refused, $"unsafe name in archive ({unsafeName}): not read");
        }

        var normalised = name.Replace('\\', '/');
        var fileName = normalised[(normalised.LastIndexOf('/') + 1)..];
        if (normalised.StartsWith("__MACOSX/", StringComparison.Ordinal) || IsOperatingSystemMetadata(fileName))
        {
            return (ArchiveEntryKind.Skipped, "operating-system metadata");
        }

        var extension = Path.GetExtension(fileName);
        if (ArchiveExtensions.Contains(extension))
        {
            return (ArchiveEntryKind.Skipped, "nested archive: not expanded");
        }

        if (!ImageFormats.Extensions.Contains(extension))
        {
            return (ArchiveEntryKind.Skipped, $"not an image ({(extension.Length > 0 ? extension : "no extension")}); images are {ImageFormats.Names}");
        }

        if (length > limits.MaxEntryBytes)
        {
            return (ArchiveEntryKind.Refused, $"entry is {length:N0} bytes uncompressed, more than the limit of {limits.MaxEntryBytes:N0}");
        }

        if (length >= limits.RatioCheckedFrom && length > limits.MaxCompressionRatio * Math.Max(compressedLength, 1))
        {
            return (ArchiveEntryKind.Refused,
                $"compression ratio {length / (double)Math.Max(compressedLength, 1):N0}:1 is above the limit of {limits.MaxCompressionRatio:N0}:1 (a zip bomb?)");
        }

        return (ArchiveEntryKind.Image, null);
    }

    /// <summary>A file an operating system leaves beside a user's files (macOS <c>._*</c> and <c>.DS_Store</c>, Windows <c>Thumbs.db</c> and <c>desktop.ini</c>).</summary>
    public static bool IsOperatingSystemMetadata(string fileName) =>
        fileName.StartsWith("._", StringComparison.Ordinal) || fileName is ".DS_Store" or "Thumbs.db" or "desktop.ini";

    /// <summary>
    /// A name is safe when, as a relative path, it cannot leave the folder it would be extracted to: no root, no drive,
    /// no '..' segment, no control characters.
    /// </summary>
    public static bool IsSafeName(string name) => UnsafeName(name) is null;

    /// <summary>What makes <paramref name="name"/> unsafe (see <see cref="IsSafeName"/>), or null when it is safe.</summary>
    private static string? UnsafeName(string name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "an empty name";
        }

        if (name.Any(char.IsControl))
        {
            return "a control character such as a line break in the name";
        }

        var normalised = name.Replace('\\', '/');
        if (normalised.StartsWith('/') || normalised.Contains(':'))
        {
            return "an absolute path or a drive";
        }

        return normalised.Split('/').Any(segment => segment == "..") ? "a '..' segment" : null;
    }

    /// <summary>Inflates one image entry into memory, enforcing the limits on the bytes actually produced.</summary>
    /// <exception cref="ArchiveEntryException">The entry is corrupt (its CRC-32 disagrees with the bytes), encrypted, shorter than declared, or over the archive's total limit.</exception>
    public byte[] Read(ArchiveEntry entry)
    {
        if (entry.Kind != ArchiveEntryKind.Image)
        {
            throw new InvalidOperationException($"entry '{entry.Name}' is {entry.Kind}, not an image to read");
        }

        var zipEntry = _zip.Entries[entry.Index];
        if (zipEntry.IsEncrypted)
        {
            // Its bytes are ciphertext: inflating them fails as if the entry were corrupt, which it is not.
            throw new ArchiveEntryException("entry is encrypted (password-protected): archives are read without a password; zip the images again without one");
        }

        long allowed = Math.Min(entry.Length, _limits.MaxEntryBytes);
        Stream input;
        try
        {
            input = zipEntry.Open();
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or IOException)
        {
            // Before any byte is inflated: a compression method the reader lacks (BZip2, LZMA, Zstandard), encryption,
            // or a local header that does not match the central directory. Not a corrupt entry's bytes.
            throw new ArchiveEntryException($"entry cannot be read: {e.Message}", e);
        }

        try
        {
            using var _ = input;
            var buffer = new byte[checked((int)allowed)];
            int read = 0;
            while (read < buffer.Length)
            {
                int n = input.Read(buffer, read, buffer.Length - read);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            if (read < buffer.Length)
            {
                throw new ArchiveEntryException($"entry is truncated: {read:N0} of {entry.Length:N0} bytes");
            }

            // .NET's reader does not check an entry's CRC-32 (measured with .NET 10): a flipped bit in a stored or
            // deflated entry would be analysed as if sound. The checksum of the bytes read must be the one stored.
            uint crc = Crc32.HashToUInt32(buffer);
            if (crc != zipEntry.Crc32)
            {
                throw new ArchiveEntryException($"corrupt entry: the CRC-32 of its {read:N0} bytes is {crc:x8}, the archive records {zipEntry.Crc32:x8}");
            }

            _inflated += read;
            if (_inflated > _limits.MaxTotalBytes)
            {
                throw new ArchiveEntryException($"archive inflates past the limit of {_limits.MaxTotalBytes:N0} bytes");
            }

            return buffer;
        }
        catch (InvalidDataException e)
        {
            throw new ArchiveEntryException($"corrupt entry: {e.Message}", e);
        }
        catch (Exception e) when (e is NotSupportedException or IOException)
        {
            throw new ArchiveEntryException($"entry cannot be read: {e.Message}", e);
        }
    }

    public void Dispose()
    {
        _zip.Dispose();
        _owned?.Dispose();
    }
}
