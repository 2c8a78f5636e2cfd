using System.Globalization;

namespace Leuko.Core.Imaging;

/// <summary>
/// Reads an image file whole, as every command reads one, and refuses before reading what cannot be an image: an
/// empty file, or one that is not a regular file (a named pipe or a device reports no length: reading one would wait
/// for a writer or never end), and a file larger than any image the decoder accepts.
/// </summary>
public static class ImageFile
{
    /// <summary>
    /// Largest image file read, and largest archive entry: 256 MB. The largest image decoded (<see
    /// cref="ImageDecoder.MaxPixels"/>) is 150 MB as a BMP; compressed formats are smaller.
    /// </summary>
    public const long MaxBytes = 256L * 1024 * 1024;

    /// <summary>Why an empty input is not read.</summary>
    public const string Empty = "the file is empty (0 bytes; a named pipe or a device is not read)";

    /// <summary>The file's bytes.</summary>
    /// <exception cref="FileNotFoundException">It does not exist (or is a link to nothing).</exception>
    /// <exception cref="InvalidImageException">It is empty, not a regular file, or too large.</exception>
    public static byte[] ReadAll(string path)
    {
        var info = Target(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"no such file: '{path}'", path);
        }

        Check(info.Length);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        var data = new byte[info.Length];
        int read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        return read == data.Length ? data : data[..read]; // shortened since: read as it is now
    }

    /// <summary>
    /// The file <paramref name="path"/> names, through any symbolic links: its length and kind are the target's (a
    /// link's own length is that of the path it holds, and a link may lead to a pipe). A link to nothing gives a file
    /// that does not exist.
    /// </summary>
    /// <exception cref="IOException">The links loop.</exception>
    public static FileInfo Target(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is null ? info : info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
    }

    /// <summary>Refuses a length no image file has: 0, or over <see cref="MaxBytes"/>.</summary>
    /// <exception cref="InvalidImageException">The reason.</exception>
    public static void Check(long length)
    {
        if (length <= 0)
        {
            throw new InvalidImageException(Empty);
        }

        if (length > MaxBytes)
        {
            throw new InvalidImageException(
                $"file too large ({length.ToString("N0", CultureInfo.InvariantCulture)} bytes): an image file is at most {MaxBytes / (1024 * 1024)} MB " +
                $"(the largest image accepted, {ImageDecoder.MaxPixels / 1_000_000} megapixels, is 150 MB as a BMP)");
        }
    }
}
