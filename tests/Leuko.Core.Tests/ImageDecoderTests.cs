using Leuko.Core.Imaging;
using Leuko.Tests;
using OpenCvSharp;

namespace Leuko.Core.Tests;

public sealed class ImageDecoderTests
{
    private static byte[] Encode(Mat image, string extension)
    {
        // WebP lossless (quality above 100), so that pixels can be compared exactly, as with PNG.
        Cv2.ImEncode(extension, image, out byte[] data, extension == ".webp" ? [(int)ImwriteFlags.WebPQuality, 101] : []);
        return data;
    }

    /// <summary>A lossy WebP, as most WebP files are.</summary>
    private static byte[] LossyWebP(Mat image)
    {
        Cv2.ImEncode(".webp", image, out byte[] data, [(int)ImwriteFlags.WebPQuality, 80]);
        return data;
    }

    private static Mat Colour(int width = 64, int height = 48) => new(height, width, MatType.CV_8UC3, new Scalar(200, 100, 50));

    private static string ReasonFor(byte[] data) => Assert.Throws<InvalidImageException>(() => ImageDecoder.Decode(data)).Message;

    [Theory]
    [InlineData(".jpg")]
    [InlineData(".png")]
    [InlineData(".bmp")]
    [InlineData(".tiff")]
    [InlineData(".webp")]
    public void Decodes_each_supported_format_to_8_bit_BGR(string extension)
    {
        using var source = Colour();
        using var decoded = ImageDecoder.Decode(Encode(source, extension));

        Assert.Equal(MatType.CV_8UC3, decoded.Type());
        Assert.Equal(new Size(64, 48), decoded.Size());
        var pixel = decoded.At<Vec3b>(10, 10);
        Assert.InRange(pixel.Item0, 195, 205);
        Assert.InRange(pixel.Item2, 45, 55);
    }

    /// <summary>Where the picture's pixel (x, y), as viewers show it, is stored, for each EXIF orientation (TIFF 6.0 / Exif 2.3).</summary>
    private static (int X, int Y) Stored(int orientation, int x, int y, int width, int height) => orientation switch
    {
        1 => (x, y),
        2 => (width - 1 - x, y),
        3 => (width - 1 - x, height - 1 - y),
        4 => (x, height - 1 - y),
        5 => (y, x),
        6 => (y, height - 1 - x),
        7 => (width - 1 - y, height - 1 - x),
        8 => (width - 1 - y, x),
        _ => throw new ArgumentOutOfRangeException(nameof(orientation)),
    };

    [Theory]
    [InlineData(".jpg", 1)]
    [InlineData(".jpg", 2)]
    [InlineData(".jpg", 3)]
    [InlineData(".jpg", 4)]
    [InlineData(".jpg", 5)]
    [InlineData(".jpg", 6)]
    [InlineData(".jpg", 7)]
    [InlineData(".jpg", 8)]
    [InlineData(".png", 3)]
    [InlineData(".png", 6)]
    [InlineData(".png", 7)]
    [InlineData(".png", 8)]
    [InlineData(".webp", 3)]
    [InlineData(".webp", 6)]
    [InlineData(".webp", 8)]
    public void Applies_the_EXIF_orientation(string extension, int orientation)
    {
        // Every pixel different, so that any wrong turn or mirror shows.
        using var source = new Mat(48, 64, MatType.CV_8UC3);
        for (int y = 0; y < 48; y++)
        {
            for (int x = 0; x < 64; x++)
            {
                source.Set(y, x, new Vec3b((byte)(x * 4), (byte)(y * 5), (byte)((x + y) % 7 * 30)));
            }
        }

        var plain = Encode(source, extension);
        using var stored = ImageDecoder.Decode(plain, out int none);
        var tagged = extension switch { ".jpg" => Exif.Jpeg(plain, orientation), ".png" => Exif.Png(plain, orientation), _ => Exif.WebP(plain, orientation) };

        Assert.Equal(orientation, ImageHeader.Read(tagged).Orientation);
        using var shown = ImageDecoder.Decode(tagged, out int applied);

        Assert.Equal(1, none);
        Assert.Equal(orientation, applied);
        var size = shown.Size();
        Assert.Equal(orientation >= 5 ? new Size(48, 64) : new Size(64, 48), size);
        for (int y = 0; y < size.Height; y++)
        {
            for (int x = 0; x < size.Width; x++)
            {
                var (sx, sy) = Stored(orientation, x, y, 64, 48);
                Assert.Equal(stored.At<Vec3b>(sy, sx), shown.At<Vec3b>(y, x));
            }
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(9)]
    public void An_orientation_out_of_range_is_ignored(int orientation)
    {
        using var source = Colour();
        using var shown = ImageDecoder.Decode(Exif.Jpeg(Encode(source, ".jpg"), orientation), out int applied);
        Assert.Equal(1, applied);
        Assert.Equal(new Size(64, 48), shown.Size());
    }

    [Fact]
    public void Refuses_an_empty_file() => Assert.Contains("empty", ReasonFor([]));

    [Fact]
    public void Refuses_a_text_file() => Assert.Contains("unsupported format", ReasonFor("hello, this is not an image\n"u8.ToArray()));

    [Theory]
    [InlineData("000000186674797068656963000000006D69663168656963", "HEIC/HEIF")] // an iPhone's photograph
    [InlineData("0000001C667479706176696600000000617669666D696631", "AVIF")]
    [InlineData("0000000C4A584C200D0A870A", "JPEG XL")]
    [InlineData("FF0AFA7F", "JPEG XL")]
    [InlineData("0000000C6A5020200D0A870A", "JPEG 2000")]
    [InlineData("FF4FFF51002F", "JPEG 2000")]
    [InlineData("38425053000100000000", "Photoshop")]
    public void Names_the_formats_a_laboratory_may_have_and_how_to_convert_them(string headHex, string named)
    {
        var data = new byte[256];
        Convert.FromHexString(headHex).CopyTo(data, 0);
        var reason = ReasonFor(data);
        Assert.StartsWith($"unsupported format ({named}", reason);
        Assert.Matches("(save|export)[^;]* as (JPEG|TIFF)", reason); // and the way out
    }

    [Theory]
    [InlineData("1F8B0800", 0, "a gzip file")]
    [InlineData("377ABCAF271C0004", 0, "a 7-Zip archive")]
    [InlineData("526172211A0700", 0, "a RAR archive")]
    [InlineData("526172211A070100", 0, "a RAR archive")]
    [InlineData("FD377A585A00", 0, "an xz file")]
    [InlineData("425A6839314159", 0, "a bzip2 file")]
    [InlineData("28B52FFD", 0, "a Zstandard file")]
    [InlineData("7573746172003030", 257, "a tar archive")] // "ustar\000" in a tar header's magic field
    public void Names_archives_of_other_kinds_and_asks_for_a_zip(string hex, int at, string named)
    {
        var data = new byte[512];
        data[0] = (byte)'f'; // a tar's first bytes are an entry's name
        Convert.FromHexString(hex).CopyTo(data, at);
        var reason = ReasonFor(data);
        Assert.StartsWith($"unsupported format ({named}", reason);
        Assert.Contains("only zip archives are expanded; make a zip of the images", reason);
    }

    [Fact]
    public void Names_DICOM_by_its_marker_after_the_preamble()
    {
        var data = new byte[256];
        "DICM"u8.CopyTo(data.AsSpan(128));
        Assert.StartsWith("unsupported format (DICOM", ReasonFor(data));
    }

    [Fact]
    public void Names_a_known_unsupported_format() =>
        Assert.Contains("GIF", ReasonFor("GIF89a\u0001\u0000\u0001\u0000\u0000\u0000\u0000;"u8.ToArray()));

    [Theory]
    [InlineData(".jpg", "truncated JPEG")]
    [InlineData(".png", "truncated PNG")]
    [InlineData(".bmp", "truncated BMP")]
    public void Refuses_a_truncated_file(string extension, string reason)
    {
        using var source = Colour(200, 150);
        var data = Encode(source, extension);
        Assert.Contains(reason, ReasonFor(data[..(data.Length / 2)]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Accepts_a_JPEG_with_data_after_its_end_of_image_marker(bool progressive)
    {
        // Cameras and editors append data after EOI (a second picture, maker notes); 4 KB of it is far beyond any
        // look at the last bytes, and it holds marker-like bytes (0xFF 0xD9, 0xFF 0xC0) that must not be read.
        using var source = Colour(200, 150);
        var jpeg = Jpeg(source, progressive);
        var trailer = new byte[4096];
        new Random(15).NextBytes(trailer);
        trailer[100] = 0xFF;
        trailer[101] = 0xC0;
        trailer[^2] = 0xFF;
        trailer[^1] = 0xD9;

        using var decoded = ImageDecoder.Decode([.. jpeg, .. trailer]);
        Assert.Equal(new Size(200, 150), decoded.Size());
        Assert.Equal(new ImageHeader(ImageFormat.Jpeg, 200, 150), ImageHeader.Read([.. jpeg, .. new byte[100_000]]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Refuses_a_JPEG_cut_short_anywhere_after_its_frame_header(bool progressive)
    {
        using var source = Colour(200, 150);
        var jpeg = Jpeg(source, progressive);
        for (int cut = jpeg.Length - 1; cut > jpeg.Length / 4; cut -= 97)
        {
            Assert.Contains("truncated JPEG", ReasonFor(jpeg[..cut]));
        }

        // Cut short and padded with zeros to a plausible length (a preallocated download): no end-of-image marker,
        // and the zeros are not JPEG segments either.
        Assert.Matches("^(truncated|corrupt) JPEG", ReasonFor([.. jpeg[..(jpeg.Length / 2)], .. new byte[jpeg.Length]]));
    }

    [Fact]
    public void Accepts_a_PNG_with_data_after_its_IEND_chunk_and_refuses_one_cut_short()
    {
        using var source = Colour(200, 150);
        var png = Encode(source, ".png");
        var trailer = new byte[4096];
        new Random(15).NextBytes(trailer);

        using var decoded = ImageDecoder.Decode([.. png, .. trailer]);
        Assert.Equal(new Size(200, 150), decoded.Size());
        for (int cut = png.Length - 1; cut > 33; cut -= 37)
        {
            Assert.Contains("truncated PNG", ReasonFor(png[..cut]));
        }
    }

    private static byte[] Jpeg(Mat image, bool progressive)
    {
        Cv2.ImEncode(".jpg", image, out byte[] data, new ImageEncodingParam(ImwriteFlags.JpegProgressive, progressive ? 1 : 0));
        return data;
    }

    [Fact]
    public void Refuses_a_multi_page_TIFF_rather_than_reading_its_first_field()
    {
        using var first = Colour();
        using var second = Colour();
        var path = Path.Combine(Path.GetTempPath(), $"leuko-{Guid.NewGuid():N}.tiff");
        try
        {
            Assert.True(Cv2.ImWrite(path, new[] { first, second }));
            var reason = ReasonFor(File.ReadAllBytes(path));
            Assert.Contains("multi-page TIFF (2 full-resolution pages)", reason);
            Assert.Contains("save each field as its own image", reason);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A little-endian TIFF of directories, each (width, height, NewSubfileType), chained in order; no pixel data.</summary>
    private static byte[] TiffDirectories(params (uint Width, uint Height, uint SubfileType)[] pages)
    {
        var data = new byte[8 + (pages.Length * (2 + (3 * 12) + 4))];
        "II*\0"u8.CopyTo(data);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(4), 8);
        for (int p = 0; p < pages.Length; p++)
        {
            int at = 8 + (p * (2 + (3 * 12) + 4));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(at), 3);
            (ushort Tag, uint Value)[] entries = [(254, pages[p].SubfileType), (256, pages[p].Width), (257, pages[p].Height)];
            for (int e = 0; e < entries.Length; e++)
            {
                var entry = data.AsSpan(at + 2 + (e * 12));
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(entry, entries[e].Tag);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(entry[2..], 4); // LONG
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], 1);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], entries[e].Value);
            }

            uint next = p + 1 < pages.Length ? (uint)(at + 2 + (3 * 12) + 4) : 0;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(at + 2 + (3 * 12)), next);
        }

        return data;
    }

    [Fact]
    public void A_TIFF_with_a_reduced_resolution_preview_is_one_field()
    {
        var header = ImageHeader.Read(TiffDirectories((640, 480, 0), (160, 120, 1)));
        Assert.Equal((ImageFormat.Tiff, 640, 480), (header.Format, header.Width, header.Height));
        Assert.Throws<InvalidImageException>(() => ImageHeader.Read(TiffDirectories((640, 480, 0), (160, 120, 1), (640, 480, 0))));
    }

    [Fact]
    public void A_TIFF_whose_directories_form_a_loop_is_read_once_round_it()
    {
        var data = TiffDirectories((640, 480, 0), (640, 480, 1));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(data.Length - 4), 8); // the last points back at the first
        Assert.Equal(640, ImageHeader.Read(data).Width);
    }

    [Fact]
    public void A_TIFF_whose_next_directory_is_cut_short_is_read_by_its_first()
    {
        var data = TiffDirectories((640, 480, 0), (640, 480, 0))[..^20]; // the second directory's last entry and its link gone
        Assert.Equal(640, ImageHeader.Read(data).Width);
    }

    [Fact]
    public void Refuses_a_1x1_image()
    {
        using var tiny = Colour(1, 1);
        Assert.Contains("too small", ReasonFor(Encode(tiny, ".png")));
    }

    [Fact]
    public void Refuses_an_enormous_image_from_its_header_without_decoding_it()
    {
        // A valid PNG header claiming 100000 x 100000 pixels (10 gigapixels) and nothing behind it but IEND.
        using var small = Colour(40, 40);
        var data = Encode(small, ".png");
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(16), 100_000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(20), 100_000);
        Assert.Contains("too large", ReasonFor(data));
    }

    [Fact]
    public void Refuses_grayscale_with_the_reason()
    {
        using var gray = new Mat(64, 64, MatType.CV_8UC1, Scalar.All(120));
        Assert.Contains("grayscale", ReasonFor(Encode(gray, ".png")));
    }

    /// <summary>A gradient of grays, 0 to 255 across, each pixel's channels offset by (0, <paramref name="tint"/>, 0) from it.</summary>
    private static Mat GrayGradient(int tint)
    {
        var image = new Mat(200, 256, MatType.CV_8UC3);
        for (int y = 0; y < 200; y++)
        {
            for (int x = 0; x < 256; x++)
            {
                image.Set(y, x, new Vec3b((byte)x, (byte)Math.Min(255, x + tint), (byte)x));
            }
        }

        return image;
    }

    [Theory]
    [InlineData(".jpg")]
    [InlineData(".png")]
    [InlineData(".tiff")]
    public void Refuses_a_gray_picture_stored_with_colour_channels(string extension)
    {
        using var gray = GrayGradient(0);
        Assert.Contains("no colour: every pixel is a shade of gray", ReasonFor(Encode(gray, extension)));
    }

    [Fact]
    public void Refuses_gray_with_alpha_which_decodes_as_four_channels()
    {
        using var gray = GrayGradient(0);
        using var bgra = new Mat();
        Cv2.CvtColor(gray, bgra, ColorConversionCodes.BGR2BGRA);
        Assert.Contains("no colour", ReasonFor(Encode(bgra, ".png")));
    }

    [Fact]
    public void Accepts_an_image_whose_colour_is_faint_or_in_a_single_strip()
    {
        using var faint = GrayGradient(ImageDecoder.MaxGraySpread + 4);
        using var decoded = ImageDecoder.Decode(Encode(faint, ".png"));
        Assert.Equal(new Size(256, 200), decoded.Size());

        using var gray = GrayGradient(0);
        using (var lastRow = gray.Row(199)) // colour only in the last strip the check reads
        {
            lastRow.SetTo(new Scalar(40, 40, 200));
        }

        using var last = ImageDecoder.Decode(Encode(gray, ".png"));
        Assert.Equal(new Size(256, 200), last.Size());
    }

    [Fact]
    public void Refuses_corrupt_pixel_data_behind_a_valid_header()
    {
        using var source = Colour(200, 150);
        var data = Encode(source, ".png");
        // Keep the signature, IHDR and IEND; scramble the compressed pixels in between.
        for (int i = 40; i < data.Length - 20; i++)
        {
            data[i] = (byte)(i * 31);
        }

        Assert.Contains("corrupt PNG", ReasonFor(data));
    }

    [Fact]
    public void Converts_16_bit_images_to_8_bit()
    {
        using var deep = new Mat(64, 64, MatType.CV_16UC3, new Scalar(65535, 32896, 0));
        using var decoded = ImageDecoder.Decode(Encode(deep, ".png"));

        Assert.Equal(MatType.CV_8UC3, decoded.Type());
        var pixel = decoded.At<Vec3b>(5, 5);
        Assert.Equal(255, pixel.Item0);
        Assert.Equal(128, pixel.Item1);
        Assert.Equal(0, pixel.Item2);
    }

    [Fact]
    public void Composites_transparent_pixels_onto_white()
    {
        using var bgra = new Mat(64, 64, MatType.CV_8UC4, new Scalar(0, 0, 255, 0)); // fully transparent red
        bgra.Rectangle(new Rect(0, 0, 32, 64), new Scalar(255, 0, 0, 255), -1);     // opaque blue half
        using var decoded = ImageDecoder.Decode(Encode(bgra, ".png"));

        Assert.Equal(MatType.CV_8UC3, decoded.Type());
        Assert.Equal(new Vec3b(255, 0, 0), decoded.At<Vec3b>(10, 10));
        Assert.Equal(new Vec3b(255, 255, 255), decoded.At<Vec3b>(10, 50));
    }

    [Fact]
    public void Reads_a_lossy_WebP_and_its_size_from_its_header()
    {
        using var source = Colour(100, 60);
        var data = LossyWebP(source);

        var header = ImageHeader.Read(data);
        using var decoded = ImageDecoder.Decode(data);

        Assert.Equal((ImageFormat.WebP, 100, 60), (header.Format, header.Width, header.Height));
        Assert.Equal(new Size(100, 60), decoded.Size());
        Assert.InRange(decoded.At<Vec3b>(30, 50).Item0, 190, 210);
    }

    [Fact]
    public void Reads_the_orientation_of_a_WebP_whose_EXIF_keeps_the_JPEG_prefix()
    {
        using var source = Colour(64, 48);
        var tagged = Exif.WebP(Encode(source, ".webp"), 6, exifPrefix: true);

        using var shown = ImageDecoder.Decode(tagged, out int applied);

        Assert.Equal(6, applied);
        Assert.Equal(new Size(48, 64), shown.Size());
    }

    [Fact]
    public void Refuses_an_animated_WebP_rather_than_report_its_first_frame()
    {
        using var source = Colour();
        var reason = ReasonFor(Exif.AnimatedWebP(Encode(source, ".webp"), 2));

        Assert.Contains("animated WebP (2 frames): only one field is read from a file", reason);
    }

    [Fact]
    public void Refuses_a_WebP_cut_short_and_reads_one_with_bytes_after_its_end()
    {
        using var source = Colour();
        var data = LossyWebP(source);

        Assert.Contains("truncated WebP: its header declares", ReasonFor(data[..(data.Length / 2)]));
        using var decoded = ImageDecoder.Decode([.. data, .. "trailing bytes"u8.ToArray()]);
        Assert.Equal(new Size(64, 48), decoded.Size());
    }

    [Fact]
    public void Refuses_a_WebP_too_large_before_decoding_it()
    {
        // A lossless WebP header claiming 16384 x 16384 (268 megapixels): refused from the header alone.
        using var source = Colour();
        var data = Encode(source, ".webp");
        uint bits = BitConverter.ToUInt32(data, 21) & ~0x0FFFFFFFu | 0x3FFFu | (0x3FFFu << 14);
        BitConverter.GetBytes(bits).CopyTo(data, 21);

        Assert.Contains("image too large: 16384x16384", ReasonFor(data));
    }
}
