using System.IO.Compression;

namespace Leuko.Tests;

/// <summary>Crafted zip archives, built in memory, for the archive safety tests (shared by the test projects).</summary>
public static class Zips
{
    public static byte[] Build(params (string Name, byte[] Data)[] entries) => Build(CompressionLevel.Optimal, entries);

    public static byte[] Build(CompressionLevel level, params (string Name, byte[] Data)[] entries)
    {
        using var memory = new MemoryStream();
        using (var zip = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data) in entries)
            {
                var entry = zip.CreateEntry(name, level);
                using var stream = entry.Open();
                stream.Write(data);
            }
        }

        return memory.ToArray();
    }

    /// <summary>
    /// Rewrites the uncompressed size recorded for every entry (local headers and central directory) to
    /// <paramref name="declared"/>: an archive whose headers lie about how much its entries inflate to.
    /// </summary>
    public static byte[] WithDeclaredSize(byte[] zip, uint declared)
    {
        var bytes = (byte[])zip.Clone();
        for (int i = 0; i + 4 <= bytes.Length; i++)
        {
            uint signature = BitConverter.ToUInt32(bytes, i);
            if (signature == 0x04034b50 && i + 26 <= bytes.Length)
            {
                BitConverter.GetBytes(declared).CopyTo(bytes, i + 22); // local file header: uncompressed size
            }
            else if (signature == 0x02014b50 && i + 28 <= bytes.Length)
            {
                BitConverter.GetBytes(declared).CopyTo(bytes, i + 24); // central directory header: uncompressed size
            }
        }

        return bytes;
    }

    /// <summary>
    /// Flips one byte in the middle of the first entry's data (build it with <see cref="CompressionLevel.NoCompression"/>,
    /// so the data is stored as is): the archive still opens, and the entry's bytes no longer match its CRC-32.
    /// </summary>
    public static byte[] WithCorruptFirstEntry(byte[] zip)
    {
        var bytes = (byte[])zip.Clone();
        int nameLength = BitConverter.ToUInt16(bytes, 26), extraLength = BitConverter.ToUInt16(bytes, 28);
        int compressed = BitConverter.ToInt32(bytes, 18);
        bytes[30 + nameLength + extraLength + (compressed / 2)] ^= 0x5A;
        return bytes;
    }

    /// <summary>Rewrites the CRC-32 recorded for the first entry (its local header and its central directory header).</summary>
    public static byte[] WithFirstEntryCrc(byte[] zip, uint crc) => WithFirstEntryField(zip, 14, 16, BitConverter.GetBytes(crc));

    /// <summary>
    /// Rewrites the compression method recorded for the first entry (local header and central directory header), as
    /// an archiver using BZip2 (12), LZMA (14) or Zstandard (93) would write it.
    /// </summary>
    public static byte[] WithFirstEntryMethod(byte[] zip, ushort method) => WithFirstEntryField(zip, 8, 10, BitConverter.GetBytes(method));

    /// <summary>
    /// Sets the first entry's "encrypted" flag (bit 0 of the general purpose flags, local header and central directory), as
    /// <c>zip -P</c> (ZipCrypto) writes it; its bytes stay as they were, so only the flag can tell a reader.
    /// </summary>
    public static byte[] WithFirstEntryEncrypted(byte[] zip)
    {
        ushort flags = BitConverter.ToUInt16(zip, 6);
        return WithFirstEntryField(zip, 6, 8, BitConverter.GetBytes((ushort)(flags | 1)));
    }

    /// <summary>Writes <paramref name="value"/> at one field of the first local file header (at 0) and of the first central directory header.</summary>
    private static byte[] WithFirstEntryField(byte[] zip, int localOffset, int centralOffset, byte[] value)
    {
        var bytes = (byte[])zip.Clone();
        value.CopyTo(bytes, localOffset);
        for (int i = 0; i + centralOffset + value.Length <= bytes.Length; i++)
        {
            if (BitConverter.ToUInt32(bytes, i) == 0x02014b50)
            {
                value.CopyTo(bytes, i + centralOffset);
                break;
            }
        }

        return bytes;
    }

    public static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "samples", "bccd", "JPEGImages", name);

    public static byte[] SampleBytes(string name = "BloodImage_00000.jpg") => File.ReadAllBytes(Sample(name));

    /// <summary>Spoils the signature of the first central directory header: the end record points at something that is not a directory.</summary>
    public static byte[] WithBrokenCentralDirectory(byte[] zip)
    {
        var bytes = (byte[])zip.Clone();
        int directory = Enumerable.Range(0, bytes.Length - 4).First(i => BitConverter.ToUInt32(bytes, i) == 0x02014b50);
        bytes[directory] ^= 0xFF;
        return bytes;
    }

    /// <summary>The archive with <paramref name="comment"/> as its comment (after the end record, whose last field is its length).</summary>
    public static byte[] WithComment(byte[] zip, string comment)
    {
        var text = System.Text.Encoding.ASCII.GetBytes(comment);
        var bytes = (byte[])zip.Clone();
        int end = bytes.Length - 22; // an end record without a comment
        BitConverter.GetBytes((ushort)text.Length).CopyTo(bytes, end + 20);
        return [.. bytes, .. text];
    }

    /// <summary>Rewrites where the end record says the central directory starts: an archive whose directory lies elsewhere.</summary>
    public static byte[] WithCentralDirectoryOffset(byte[] zip, uint offset)
    {
        var bytes = (byte[])zip.Clone();
        int end = bytes.Length - 22; // an end record without a comment
        if (BitConverter.ToUInt32(bytes, end) != 0x06054b50)
        {
            throw new ArgumentException("no end record where one without a comment would be", nameof(zip));
        }

        BitConverter.GetBytes(offset).CopyTo(bytes, end + 16);
        return bytes;
    }
}
