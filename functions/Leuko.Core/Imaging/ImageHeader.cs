using System.Buffers.Binary;

namespace Leuko.Core.Imaging;

/// <summary>The container formats the pipeline accepts.</summary>
public enum ImageFormat
{
    Jpeg,
    Png,
    Bmp,
    Tiff,
}

/// <summary>
/// Format and dimensions read from an encoded image's header, before anything is decoded,
/// so that an oversized or truncated file is refused without allocating its pixels.
/// </summary>
public readonly record struct ImageHeader(ImageFormat Format, int Width, int Height)
{
    /// <summary>Reads the header; throws <see cref="InvalidImageException"/> with the reason when it cannot.</summary>
    public static ImageHeader Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new InvalidImageException("the file is empty");
        }

        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        {
            return ReadJpeg(data);
        }

        if (data.Length >= 8 && data[..8].SequenceEqual(PngSignature))
        {
            return ReadPng(data);
        }

        if (data.Length >= 2 && data[0] == (byte)'B' && data[1] == (byte)'M')
        {
            return ReadBmp(data);
        }

        if (data.Length >= 4 && ((data[0] == (byte)'I' && data[1] == (byte)'I' && data[2] == 42 && data[3] == 0)
                              || (data[0] == (byte)'M' && data[1] == (byte)'M' && data[2] == 0 && data[3] == 42)))
        {
            return ReadTiff(data);
        }

        throw new InvalidImageException($"unsupported format ({Describe(data)}); expected JPEG, PNG, BMP or TIFF");
    }

    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static ImageHeader ReadPng(ReadOnlySpan<byte> data)
    {
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
        if (data.Length < 24 || !data.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            throw new InvalidImageException("truncated PNG: no IHDR chunk");
        }

        // A complete PNG ends with the 12-byte IEND chunk; without it the file was cut short.
        if (data.Length < 36 || !data[^8..^4].SequenceEqual("IEND"u8))
        {
            throw new InvalidImageException("truncated PNG: the file ends before its IEND chunk");
        }

        return Checked(ImageFormat.Png, BinaryPrimitives.ReadUInt32BigEndian(data[16..]), BinaryPrimitives.ReadUInt32BigEndian(data[20..]));
    }

    private static ImageHeader ReadJpeg(ReadOnlySpan<byte> data)
    {
        int pos = 2;
        while (pos + 4 <= data.Length)
        {
            if (data[pos] != 0xFF)
            {
                throw new InvalidImageException("corrupt JPEG: bad marker sequence");
            }

            byte marker = data[pos + 1];
            if (marker == 0xFF)
            {
                pos++; // fill byte
                continue;
            }

            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7))
            {
                pos += 2; // markers without a length
                continue;
            }

            int length = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 2)..]);
            bool startOfFrame = marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC;
            if (startOfFrame)
            {
                if (pos + 9 > data.Length)
                {
                    break;
                }

                uint height = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 5)..]);
                uint width = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 7)..]);
                if (!EndsWithEoi(data))
                {
                    throw new InvalidImageException("truncated JPEG: the file ends before its end-of-image marker");
                }

                return Checked(ImageFormat.Jpeg, width, height);
            }

            pos += 2 + length;
        }

        throw new InvalidImageException("truncated JPEG: no frame header");
    }

    // Some writers pad after EOI, so look for it in the last bytes rather than exactly at the end.
    private static bool EndsWithEoi(ReadOnlySpan<byte> data)
    {
        var tail = data[Math.Max(0, data.Length - 64)..];
        for (int i = tail.Length - 2; i >= 0; i--)
        {
            if (tail[i] == 0xFF && tail[i + 1] == 0xD9)
            {
                return true;
            }
        }

        return false;
    }

    private static ImageHeader ReadBmp(ReadOnlySpan<byte> data)
    {
        if (data.Length < 26)
        {
            throw new InvalidImageException("truncated BMP header");
        }

        uint declaredSize = BinaryPrimitives.ReadUInt32LittleEndian(data[2..]);
        if (declaredSize > data.Length)
        {
            throw new InvalidImageException($"truncated BMP: header declares {declaredSize} bytes, file has {data.Length}");
        }

        int width = BinaryPrimitives.ReadInt32LittleEndian(data[18..]);
        int height = BinaryPrimitives.ReadInt32LittleEndian(data[22..]);
        return Checked(ImageFormat.Bmp, (uint)Math.Abs((long)width), (uint)Math.Abs((long)height));
    }

    private static ImageHeader ReadTiff(ReadOnlySpan<byte> data)
    {
        bool little = data[0] == (byte)'I';
        if (data.Length < 8)
        {
            throw new InvalidImageException("truncated TIFF header");
        }

        long ifd = U32(data, 4, little);
        if (ifd + 2 > data.Length)
        {
            throw new InvalidImageException("truncated TIFF: directory beyond the end of the file");
        }

        int entries = U16(data, (int)ifd, little);
        uint width = 0, height = 0;
        for (int i = 0; i < entries; i++)
        {
            int entry = (int)ifd + 2 + (i * 12);
            if (entry + 12 > data.Length)
            {
                throw new InvalidImageException("truncated TIFF directory");
            }

            ushort tag = U16(data, entry, little);
            ushort type = U16(data, entry + 2, little);
            uint value = type == 3 ? U16(data, entry + 8, little) : U32(data, entry + 8, little);
            if (tag == 256)
            {
                width = value;
            }
            else if (tag == 257)
            {
                height = value;
            }
        }

        return Checked(ImageFormat.Tiff, width, height);
    }

    private static uint U32(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt32BigEndian(data[at..]);

    private static ushort U16(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt16BigEndian(data[at..]);

    private static ImageHeader Checked(ImageFormat format, uint width, uint height)
    {
        if (width == 0 || height == 0 || width > int.MaxValue || height > int.MaxValue)
        {
            throw new InvalidImageException($"corrupt {format.ToString().ToUpperInvariant()} header: dimensions {width}x{height}");
        }

        return new ImageHeader(format, (int)width, (int)height);
    }

    private static string Describe(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 4 && data[..4].SequenceEqual("GIF8"u8))
        {
            return "GIF";
        }

        if (data.Length >= 12 && data[..4].SequenceEqual("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8))
        {
            return "WebP";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual("%PDF"u8))
        {
            return "PDF";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual("PK\u0003\u0004"u8))
        {
            return "a zip archive";
        }

        var head = data[..Math.Min(16, data.Length)];
        return "first bytes " + Convert.ToHexString(head);
    }
}
