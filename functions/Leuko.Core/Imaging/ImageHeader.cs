using System.Buffers.Binary;

namespace Leuko.Core.Imaging;

/// <summary>The container formats the pipeline accepts.</summary>
public enum ImageFormat
{
    Jpeg,
    Png,
    Bmp,
    Tiff,
    WebP,
}

/// <summary>What the pipeline reads, said one way everywhere.</summary>
public static class ImageFormats
{
    /// <summary>The formats accepted, for messages: "images are ...".</summary>
    public const string Names = "JPEG, PNG, BMP, TIFF or WebP";

    /// <summary>The file extensions taken for images in a folder or an archive (a file named on its own is read by its content).</summary>
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp" };

    /// <summary>As messages name a format: JPEG, PNG, BMP, TIFF, WebP.</summary>
    public static string Name(ImageFormat format) => format == ImageFormat.WebP ? "WebP" : format.ToString().ToUpperInvariant();
}

/// <summary>
/// Format and dimensions read from an encoded image's header, before anything is decoded,
/// so that an oversized or truncated file is refused without allocating its pixels.
/// </summary>
/// <param name="Width">As stored, before <see cref="Orientation"/> is applied.</param>
public readonly record struct ImageHeader(ImageFormat Format, int Width, int Height)
{
    /// <summary>
    /// The EXIF orientation (1-8) of a JPEG's APP1 Exif segment, a PNG's eXIf chunk or a WebP's EXIF chunk: how the stored pixels must be
    /// turned to show the picture as cameras mean it and viewers show it. 1 (as stored) without one, or when it is unreadable.
    /// </summary>
    public int Orientation { get; init; } = 1;

    /// <summary>Reads the header; throws <see cref="InvalidImageException"/> with the reason when it cannot.</summary>
    public static ImageHeader Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new InvalidImageException("the file is empty");
        }

        return Sniff(data) switch
        {
            ImageFormat.Jpeg => ReadJpeg(data),
            ImageFormat.Png => ReadPng(data),
            ImageFormat.Bmp => ReadBmp(data),
            ImageFormat.Tiff => ReadTiff(data),
            ImageFormat.WebP => ReadWebP(data),
            _ => throw new InvalidImageException($"unsupported format ({Describe(data)}); expected {ImageFormats.Names}"),
        };
    }

    /// <summary>
    /// The format an encoded image's first bytes announce (at least 8 for PNG), or null: how the pipeline tells an
    /// image from anything else by its content rather than its name.
    /// </summary>
    public static ImageFormat? Sniff(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        {
            return ImageFormat.Jpeg;
        }

        if (data.Length >= 8 && data[..8].SequenceEqual(PngSignature))
        {
            return ImageFormat.Png;
        }

        if (data.Length >= 2 && data[0] == (byte)'B' && data[1] == (byte)'M')
        {
            return ImageFormat.Bmp;
        }

        if (data.Length >= 4 && ((data[0] == (byte)'I' && data[1] == (byte)'I' && data[2] == 42 && data[3] == 0)
                              || (data[0] == (byte)'M' && data[1] == (byte)'M' && data[2] == 0 && data[3] == 42)))
        {
            return ImageFormat.Tiff;
        }

        if (data.Length >= 12 && data[..4].SequenceEqual("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8))
        {
            return ImageFormat.WebP;
        }

        return null;
    }

    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static ImageHeader ReadPng(ReadOnlySpan<byte> data)
    {
        // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4).
        if (data.Length < 24 || !data.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            throw new InvalidImageException("truncated PNG: no IHDR chunk");
        }

        // A PNG ends at its IEND chunk, not at the end of the file: the chunks are walked to it (as the JPEG's segments
        // are to its end marker), so data appended after it is ignored, as decoders ignore it, and a file cut short,
        // which ends inside a chunk, is refused.
        int pos = PngSignature.Length;
        int orientation = 1;
        while (true)
        {
            if (pos + 12 > data.Length)
            {
                throw new InvalidImageException("truncated PNG: the file ends before its IEND chunk");
            }

            // Length (4, of the data only), type (4), data, CRC (4).
            long end = pos + 12L + BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            if (end > data.Length)
            {
                throw new InvalidImageException("truncated PNG: the file ends before its IEND chunk");
            }

            if (data.Slice(pos + 4, 4).SequenceEqual("IEND"u8))
            {
                break;
            }

            if (data.Slice(pos + 4, 4).SequenceEqual("eXIf"u8))
            {
                orientation = ExifOrientation(data[(pos + 8)..(int)(end - 4)]);
            }

            pos = (int)end;
        }

        return Checked(ImageFormat.Png, BinaryPrimitives.ReadUInt32BigEndian(data[16..]), BinaryPrimitives.ReadUInt32BigEndian(data[20..])) with { Orientation = orientation };
    }

    /// <summary>
    /// Walks the JPEG's segments and scans to its end-of-image marker (EOI). A JPEG ends at its EOI, not at the end of
    /// the file: cameras and editors append data after it (a second picture, maker notes, padding) that decoders
    /// ignore, so trailing bytes are accepted whatever they hold. A file cut short has no EOI: it ends inside a
    /// segment or inside the entropy-coded data of a scan.
    /// </summary>
    private static ImageHeader ReadJpeg(ReadOnlySpan<byte> data)
    {
        ImageHeader? frame = null;
        int orientation = 1;
        int pos = 2; // after SOI
        while (true)
        {
            if (pos >= data.Length)
            {
                throw TruncatedJpeg(frame);
            }

            if (data[pos] != 0xFF)
            {
                throw new InvalidImageException("corrupt JPEG: bad marker sequence");
            }

            while (pos < data.Length && data[pos] == 0xFF)
            {
                pos++; // the marker's prefix and any fill bytes before it
            }

            if (pos >= data.Length)
            {
                throw TruncatedJpeg(frame);
            }

            byte marker = data[pos++];
            if (marker == 0xD9)
            {
                return frame is { } found
                    ? found with { Orientation = orientation }
                    : throw new InvalidImageException("corrupt JPEG: end-of-image marker before any frame header");
            }

            if (marker is 0x01 or 0xD8 or (>= 0xD0 and <= 0xD7))
            {
                continue; // markers without a length
            }

            if (marker == 0x00 || pos + 2 > data.Length)
            {
                throw marker == 0x00 ? new InvalidImageException("corrupt JPEG: bad marker sequence") : TruncatedJpeg(frame);
            }

            int length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]); // counts its own two bytes
            if (length < 2)
            {
                throw new InvalidImageException($"corrupt JPEG: segment length {length}");
            }

            if (pos + length > data.Length)
            {
                throw TruncatedJpeg(frame);
            }

            if (marker == 0xE1 && orientation == 1 && length >= 8 && data.Slice(pos + 2, 6).SequenceEqual("Exif\0\0"u8))
            {
                orientation = ExifOrientation(data[(pos + 8)..(pos + length)]); // APP1: "Exif\0\0", then a TIFF structure
            }

            bool startOfFrame = marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC;
            if (startOfFrame && frame is null)
            {
                if (length < 7)
                {
                    throw new InvalidImageException("corrupt JPEG: frame header too short");
                }

                // Length (2), sample precision (1), height (2), width (2).
                uint height = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 3)..]);
                uint width = BinaryPrimitives.ReadUInt16BigEndian(data[(pos + 5)..]);
                frame = Checked(ImageFormat.Jpeg, width, height);
            }

            pos += length;
            if (marker == 0xDA)
            {
                pos = EndOfScan(data, pos);
            }
        }
    }

    /// <summary>
    /// The Orientation tag (0x0112) of the first image directory of an Exif TIFF structure, or 1 where there is none or
    /// it is malformed: a damaged tag never fails an image.
    /// </summary>
    private static int ExifOrientation(ReadOnlySpan<byte> tiff)
    {
        if (tiff.Length < 8 || !((tiff[0] == 'I' && tiff[1] == 'I') || (tiff[0] == 'M' && tiff[1] == 'M')))
        {
            return 1;
        }

        bool little = tiff[0] == 'I';
        long ifd = U32(tiff, 4, little);
        if (ifd + 2 > tiff.Length)
        {
            return 1;
        }

        int entries = U16(tiff, (int)ifd, little);
        for (int i = 0; i < entries; i++)
        {
            long entry = ifd + 2 + (i * 12L);
            if (entry + 12 > tiff.Length)
            {
                return 1;
            }

            if (U16(tiff, (int)entry, little) == 0x0112 && U16(tiff, (int)entry + 2, little) == 3)
            {
                int value = U16(tiff, (int)entry + 8, little);
                return value is >= 1 and <= 8 ? value : 1;
            }
        }

        return 1;
    }

    private static InvalidImageException TruncatedJpeg(ImageHeader? frame) =>
        new(frame is null
            ? "truncated JPEG: no frame header"
            : "truncated JPEG: the file ends before its end-of-image marker");

    /// <summary>
    /// Where the entropy-coded data after a start-of-scan header ends: at the next marker other than a restart marker
    /// (0xFF 0x00 is a stuffed data byte), or at the end of the data when the file was cut inside the scan.
    /// </summary>
    private static int EndOfScan(ReadOnlySpan<byte> data, int pos)
    {
        while (true)
        {
            int next = data[pos..].IndexOf((byte)0xFF);
            if (next < 0)
            {
                return data.Length;
            }

            pos += next;
            if (pos + 1 >= data.Length)
            {
                return data.Length;
            }

            byte code = data[pos + 1];
            if (code == 0x00 || code is >= 0xD0 and <= 0xD7)
            {
                pos += 2; // a stuffed 0xFF, or a restart marker inside the scan
            }
            else if (code == 0xFF)
            {
                pos++; // a fill byte before a marker
            }
            else
            {
                return pos;
            }
        }
    }

    /// <summary>
    /// A WebP file: a RIFF container of chunks (type, little-endian length, data padded to an even length). Its first
    /// chunk is the picture itself, lossy (<c>VP8 </c>) or lossless (<c>VP8L</c>), each with its size, or the extended
    /// header (<c>VP8X</c>: the canvas size and which chunks follow), after which an <c>EXIF</c> chunk may give the
    /// orientation, as a JPEG's does. The file ends where its RIFF length says (bytes after it are ignored, as decoders
    /// ignore them); one cut short is refused. An animation is refused as a multi-page TIFF is: only one field is read
    /// from a file.
    /// </summary>
    private static ImageHeader ReadWebP(ReadOnlySpan<byte> data)
    {
        long end = 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (end > data.Length)
        {
            throw new InvalidImageException($"truncated WebP: its header declares {end:N0} bytes, the file has {data.Length:N0}");
        }

        data = data[..(int)end];
        if (data.Length < 30)
        {
            throw new InvalidImageException("truncated WebP: no image chunk");
        }

        var first = data.Slice(12, 4);
        var payload = data[20..];
        if (first.SequenceEqual("VP8 "u8))
        {
            // Frame tag (3), start code 9D 01 2A, then width and height: 14 bits each (the top 2 bits are an upscaling hint).
            if (!(payload[3] == 0x9D && payload[4] == 0x01 && payload[5] == 0x2A))
            {
                throw new InvalidImageException("corrupt WebP: its lossy picture has no frame start code");
            }

            return Checked(ImageFormat.WebP, BinaryPrimitives.ReadUInt16LittleEndian(payload[6..]) & 0x3FFFu, BinaryPrimitives.ReadUInt16LittleEndian(payload[8..]) & 0x3FFFu);
        }

        if (first.SequenceEqual("VP8L"u8))
        {
            // Signature 0x2F, then width - 1 and height - 1 in 14 bits each, least significant bit first.
            if (payload[0] != 0x2F)
            {
                throw new InvalidImageException("corrupt WebP: its lossless picture has no signature");
            }

            uint bits = BinaryPrimitives.ReadUInt32LittleEndian(payload[1..]);
            return Checked(ImageFormat.WebP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
        }

        if (!first.SequenceEqual("VP8X"u8))
        {
            throw new InvalidImageException($"corrupt WebP: its first chunk is '{System.Text.Encoding.ASCII.GetString(first)}', not a picture");
        }

        // Flags (1: ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04, animation 0x02), 3 reserved, canvas width - 1 and height - 1 (24 bits each).
        uint width = (payload[4] | ((uint)payload[5] << 8) | ((uint)payload[6] << 16)) + 1;
        uint height = (payload[7] | ((uint)payload[8] << 8) | ((uint)payload[9] << 16)) + 1;
        int orientation = 1, frames = 0;
        for (long pos = 12; pos + 8 <= data.Length;)
        {
            var type = data.Slice((int)pos, 4);
            long next = pos + 8 + BinaryPrimitives.ReadUInt32LittleEndian(data[((int)pos + 4)..]);
            if (next > data.Length)
            {
                throw new InvalidImageException("truncated WebP: the file ends inside a chunk");
            }

            if (type.SequenceEqual("ANMF"u8))
            {
                frames++;
            }
            else if (type.SequenceEqual("EXIF"u8))
            {
                var exif = data[((int)pos + 8)..(int)next];
                orientation = ExifOrientation(exif.StartsWith("Exif\0\0"u8) ? exif[6..] : exif); // some writers keep JPEG's prefix
            }

            pos = next + (next & 1);
        }

        if ((payload[0] & 0x02) != 0 || frames > 0)
        {
            throw new InvalidImageException(
                $"animated WebP ({frames} frames): only one field is read from a file, so it is refused rather than reported on its first frame; save each field as its own image");
        }

        return Checked(ImageFormat.WebP, width, height) with { Orientation = orientation };
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

        var (width, height, _, next) = ReadTiffDirectory(data, ifd, little);

        // The decoder reads the first page only. A file of several fields (a multi-page TIFF) is refused rather than
        // reported on one of them; later pages marked reduced-resolution (a preview or thumbnail) are not fields.
        var seen = new HashSet<long> { ifd };
        int pages = 1;
        while (next != 0 && next + 2 <= data.Length && seen.Add(next) && seen.Count <= MaxTiffDirectories)
        {
            bool reduced;
            try
            {
                (_, _, reduced, next) = ReadTiffDirectory(data, next, little);
            }
            catch (InvalidImageException)
            {
                break; // a later directory cut short: the first page, which the decoder reads, is whole
            }

            pages += reduced ? 0 : 1;
        }

        if (pages > 1)
        {
            throw new InvalidImageException(
                $"multi-page TIFF ({pages}{(seen.Count > MaxTiffDirectories ? " or more" : "")} full-resolution pages): only one field is read from a file, " +
                "so it is refused rather than reported on its first page; save each field as its own image");
        }

        return Checked(ImageFormat.Tiff, width, height);
    }

    /// <summary>Directories of a TIFF followed before it counts as multi-page with no more counting.</summary>
    private const int MaxTiffDirectories = 1_000;

    /// <summary>
    /// One image file directory: its width and height (tags 256, 257), whether it is a reduced-resolution image
    /// (NewSubfileType, tag 254, bit 0; or SubfileType, tag 255, 2), and the next directory's offset (0 at the last).
    /// </summary>
    private static (uint Width, uint Height, bool Reduced, long Next) ReadTiffDirectory(ReadOnlySpan<byte> data, long ifd, bool little)
    {
        int entries = U16(data, (int)ifd, little);
        uint width = 0, height = 0;
        bool reduced = false;
        for (int i = 0; i < entries; i++)
        {
            long entry = ifd + 2 + (i * 12L);
            if (entry + 12 > data.Length)
            {
                throw new InvalidImageException("truncated TIFF directory");
            }

            ushort tag = U16(data, (int)entry, little);
            ushort type = U16(data, (int)entry + 2, little);
            uint value = type == 3 ? U16(data, (int)entry + 8, little) : U32(data, (int)entry + 8, little);
            switch (tag)
            {
                case 254:
                    reduced = (value & 1) != 0;
                    break;
                case 255:
                    reduced = value == 2;
                    break;
                case 256:
                    width = value;
                    break;
                case 257:
                    height = value;
                    break;
            }
        }

        long nextAt = ifd + 2 + (entries * 12L);
        return (width, height, reduced, nextAt + 4 <= data.Length ? U32(data, (int)nextAt, little) : 0);
    }

    private static uint U32(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt32LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt32BigEndian(data[at..]);

    private static ushort U16(ReadOnlySpan<byte> data, int at, bool little) =>
        little ? BinaryPrimitives.ReadUInt16LittleEndian(data[at..]) : BinaryPrimitives.ReadUInt16BigEndian(data[at..]);

    private static ImageHeader Checked(ImageFormat format, uint width, uint height)
    {
        if (width == 0 || height == 0 || width > int.MaxValue || height > int.MaxValue)
        {
            throw new InvalidImageException($"corrupt {ImageFormats.Name(format)} header: dimensions {width}x{height}");
        }

        return new ImageHeader(format, (int)width, (int)height);
    }

    /// <summary>The kind of a non-zip archive or compressed file that <paramref name="data"/> begins, or null.</summary>
    public static string? OtherArchive(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 2 && data[0] == 0x1F && data[1] == 0x8B)
        {
            return "a gzip file, such as a .tar.gz";
        }

        if (data.Length >= 6 && data[..6].SequenceEqual(new byte[] { 0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C }))
        {
            return "a 7-Zip archive";
        }

        if (data.Length >= 6 && data[..6].SequenceEqual("Rar!\u001A\u0007"u8))
        {
            return "a RAR archive";
        }

        if (data.Length >= 6 && data[..6].SequenceEqual(new byte[] { 0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00 }))
        {
            return "an xz file, such as a .tar.xz";
        }

        if (data.Length >= 4 && data[..3].SequenceEqual("BZh"u8) && data[3] is >= (byte)'1' and <= (byte)'9')
        {
            return "a bzip2 file, such as a .tar.bz2";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual(new byte[] { 0x28, 0xB5, 0x2F, 0xFD }))
        {
            return "a Zstandard file, such as a .tar.zst";
        }

        return data.Length >= 262 && data.Slice(257, 5).SequenceEqual("ustar"u8) ? "a tar archive" : null;
    }

    private static string Describe(ReadOnlySpan<byte> data)
    {
        if (data.Length >= 4 && data[..4].SequenceEqual("GIF8"u8))
        {
            return "GIF";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual("%PDF"u8))
        {
            return "PDF";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual("PK\u0003\u0004"u8))
        {
            return "a zip archive";
        }

        // Archives of other kinds: only zip is expanded, so the way out is a zip of the images.
        if (OtherArchive(data) is { } archive)
        {
            return $"{archive}: only zip archives are expanded; make a zip of the images";
        }

        // Formats a laboratory may have from a phone, a slide scanner or an imaging system: named, with the way out.
        if (data.Length >= 12 && data.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            var brand = System.Text.Encoding.ASCII.GetString(data.Slice(8, 4));
            if (brand is "avif" or "avis")
            {
                return "AVIF: save or export the photograph as JPEG, PNG or TIFF";
            }

            if (brand is "heic" or "heix" or "hevc" or "hevx" or "heim" or "heis" or "mif1" or "msf1")
            {
                return "HEIC/HEIF, as phones save photographs: save or export it as JPEG (on an iPhone, Settings > Camera > Formats > Most Compatible)";
            }
        }

        if ((data.Length >= 2 && data[0] == 0xFF && data[1] == 0x0A) || (data.Length >= 8 && data[4..8].SequenceEqual("JXL "u8)))
        {
            return "JPEG XL: export it as JPEG, PNG or TIFF";
        }

        if ((data.Length >= 4 && data[..4].SequenceEqual(new byte[] { 0xFF, 0x4F, 0xFF, 0x51 })) || (data.Length >= 8 && data[4..8].SequenceEqual("jP  "u8)))
        {
            return "JPEG 2000, as slide scanners store fields: export it as TIFF or PNG";
        }

        if (data.Length >= 132 && data[128..132].SequenceEqual("DICM"u8))
        {
            return "DICOM: export the image as TIFF or PNG";
        }

        if (data.Length >= 4 && data[..4].SequenceEqual("8BPS"u8))
        {
            return "Photoshop (PSD): save it as TIFF or PNG";
        }

        var head = data[..Math.Min(16, data.Length)];
        return "first bytes " + Convert.ToHexString(head);
    }
}
