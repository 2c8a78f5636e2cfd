namespace Leuko.Tests;

/// <summary>Adds an EXIF orientation to encoded images, as cameras and phones write it, without touching their pixels.</summary>
public static class Exif
{
    /// <summary>A TIFF structure (big-endian) whose first directory holds one tag, Orientation (0x0112, SHORT).</summary>
    private static byte[] Tiff(int orientation) =>
    [
        (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, // header, first directory at 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0, // Orientation, SHORT, count 1, value
        0, 0, 0, 0, // no next directory
    ];

    /// <summary>The JPEG with an APP1 Exif segment right after its start-of-image marker.</summary>
    public static byte[] Jpeg(byte[] jpeg, int orientation)
    {
        byte[] payload = [.. "Exif\0\0"u8.ToArray(), .. Tiff(orientation)];
        int length = payload.Length + 2;
        return [.. jpeg[..2], 0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload, .. jpeg[2..]];
    }

    /// <summary>The PNG with an eXIf chunk after its IHDR chunk (signature 8 bytes, IHDR 25).</summary>
    public static byte[] Png(byte[] png, int orientation)
    {
        var data = Tiff(orientation);
        byte[] typeAndData = [.. "eXIf"u8.ToArray(), .. data];
        uint crc = Crc32(typeAndData);
        byte[] chunk = [0, 0, 0, (byte)data.Length, .. typeAndData, (byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc];
        return [.. png[..33], .. chunk, .. png[33..]];
    }

    /// <summary>
    /// The WebP (a simple one: RIFF, then its one picture chunk) in the extended layout, as cameras and editors write
    /// metadata into WebP: a VP8X chunk with the EXIF flag, the picture chunk, then an EXIF chunk.
    /// </summary>
    public static byte[] WebP(byte[] webp, int orientation, bool exifPrefix = false)
    {
        var size = WebPSize(webp);
        byte[] exif = exifPrefix ? [.. "Exif\0\0"u8.ToArray(), .. Tiff(orientation)] : Tiff(orientation);
        return WebPExtended(0x08, size, webp[12..], RiffChunk("EXIF", exif));
    }

    /// <summary>An animated WebP of <paramref name="frames"/> frames, each the picture of <paramref name="webp"/> (a simple WebP).</summary>
    public static byte[] AnimatedWebP(byte[] webp, int frames)
    {
        var size = WebPSize(webp);
        byte[] anim = [0, 0, 0, 0, 0, 0]; // background colour, loop count
        byte[] frameHeader = [0, 0, 0, 0, 0, 0, .. U24(size.Width - 1), .. U24(size.Height - 1), 100, 0, 0, 0]; // offset, size, duration, flags
        var body = new List<byte>(RiffChunk("ANIM", anim));
        for (int i = 0; i < frames; i++)
        {
            body.AddRange(RiffChunk("ANMF", [.. frameHeader, .. webp[12..]]));
        }

        return WebPExtended(0x02, size, [.. body]);
    }

    /// <summary>The canvas size of a simple lossless WebP (its VP8L chunk), as OpenCV encodes one.</summary>
    private static (int Width, int Height) WebPSize(byte[] webp)
    {
        if (!(webp.AsSpan(12, 4).SequenceEqual("VP8L"u8)))
        {
            throw new ArgumentException("a lossless WebP is expected (encode with ImwriteFlags.WebPQuality above 100)");
        }

        uint bits = BitConverter.ToUInt32(webp, 21);
        return ((int)(bits & 0x3FFF) + 1, (int)((bits >> 14) & 0x3FFF) + 1);
    }

    private static byte[] WebPExtended(byte flags, (int Width, int Height) size, params byte[][] chunks)
    {
        byte[] vp8x = [flags, 0, 0, 0, .. U24(size.Width - 1), .. U24(size.Height - 1)];
        byte[] body = [.. "WEBP"u8.ToArray(), .. RiffChunk("VP8X", vp8x), .. chunks.SelectMany(c => c)];
        return [.. "RIFF"u8.ToArray(), .. BitConverter.GetBytes((uint)body.Length), .. body];
    }

    private static byte[] RiffChunk(string type, byte[] data) =>
        [.. System.Text.Encoding.ASCII.GetBytes(type), .. BitConverter.GetBytes((uint)data.Length), .. data, .. (data.Length % 2 == 1 ? new byte[] { 0 } : [])];

    private static byte[] U24(int value) => [(byte)value, (byte)(value >> 8), (byte)(value >> 16)];

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }

        return ~crc;
    }
}
