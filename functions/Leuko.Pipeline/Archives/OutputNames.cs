using System.Security.Cryptography;
using System.Text;

namespace Leuko.Pipeline.Archives;

/// <summary>
/// The names that inputs' outputs take (the CLI's annotated images, the cloud's upload blobs of an archive's entries):
/// the input's own relative name where it can be, made unique and short enough for every file system and blob store.
/// Both paths name outputs with this one class, so an archive comes out the same in both:
/// <list type="bullet">
/// <item>Two inputs of one name (compared ignoring case and the extension, with <c>\</c> read as <c>/</c>: a zip may
/// hold both <c>a.jpg</c> and <c>A.jpg</c>, one name twice, or <c>a.jpg</c> and <c>a.png</c>, whose annotated images
/// would both be <c>a.jpg</c>) are both kept: the second is <c>NAME~2.EXT</c>, the third <c>~3</c>.</item>
/// <item>A folder or file name longer than <see cref="MaxSegmentBytes"/> (UTF-8) is cut and given the first 12 hex
/// digits of its SHA-256 (<c>PREFIX~HASH.EXT</c>); a name longer than <see cref="MaxNameBytes"/> in all keeps only its
/// file name, under a folder named by the hash of the whole. File systems allow 255 bytes a name and 4,096 a path,
/// blob names 1,024 characters: an input is never failed for its name.</item>
/// </list>
/// The results keep each input's original name as its source; only the outputs' names change. Not thread-safe.
/// </summary>
public sealed class OutputNames
{
    /// <summary>Longest folder or file name kept as it is, in UTF-8 bytes (file systems allow 255).</summary>
    public const int MaxSegmentBytes = 120;

    /// <summary>Longest whole name kept with its folders, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 480;

    private const int HashLength = 12;

    private readonly HashSet<string> _used = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The output name for <paramref name="name"/> (a relative path): shortened where too long, unique in this set.</summary>
    public string Add(string name)
    {
        var shortened = Shorten(name);
        var unique = shortened;
        for (int n = 2; !_used.Add(Split(unique).Stem); n++)
        {
            var (stem, extension) = Split(shortened);
            unique = $"{stem}~{n}{extension}";
        }

        return unique;
    }

    /// <summary><paramref name="name"/> with <c>\</c> as <c>/</c>, each segment and the whole within the limits (unchanged when it already is).</summary>
    public static string Shorten(string name)
    {
        var segments = name.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < segments.Length; i++)
        {
            if (Bytes(segments[i]) > MaxSegmentBytes)
            {
                var (stem, extension) = i == segments.Length - 1 ? Split(segments[i]) : (segments[i], "");
                if (Bytes(extension) > 16)
                {
                    (stem, extension) = (segments[i], "");
                }

                segments[i] = $"{Prefix(stem, MaxSegmentBytes - HashLength - 1 - Bytes(extension))}~{Hash(segments[i])}{extension}";
            }
        }

        var joined = string.Join('/', segments);
        return Bytes(joined) <= MaxNameBytes || segments.Length == 1 ? joined : $"{Hash(joined)}/{segments[^1]}";
    }

    private static (string Stem, string Extension) Split(string name)
    {
        var extension = Path.GetExtension(name);
        return (name[..^extension.Length], extension);
    }

    private static int Bytes(string text) => Encoding.UTF8.GetByteCount(text);

    /// <summary>The longest start of <paramref name="text"/> within <paramref name="maxBytes"/> UTF-8 bytes, never splitting a character.</summary>
    private static string Prefix(string text, int maxBytes)
    {
        int length = 0, bytes = 0;
        while (length < text.Length)
        {
            int step = char.IsSurrogatePair(text, length) ? 2 : 1;
            int size = Bytes(text.Substring(length, step));
            if (bytes + size > maxBytes)
            {
                break;
            }

            bytes += size;
            length += step;
        }

        return text[..length];
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..HashLength];
}
