using Leuko.Pipeline.Archives;
using Leuko.Tests;

namespace Leuko.Pipeline.Tests;

public class ImageArchiveTests
{
    private static ImageArchive Open(byte[] zip, ArchiveLimits? limits = null) => ImageArchive.Open(new MemoryStream(zip), limits);

    [Theory]
    [InlineData("field.jpg", true)]
    [InlineData("day 1/field.png", true)]
    [InlineData("a/b/c.tif", true)]
    [InlineData("..field.jpg", true)]
    [InlineData("../field.jpg", false)]
    [InlineData("a/../../field.jpg", false)]
    [InlineData("a\\..\\..\\field.jpg", false)]
    [InlineData("/etc/field.jpg", false)]
    [InlineData("\\server\\field.jpg", false)]
    [InlineData("C:/field.jpg", false)]
    [InlineData("field\u0000.jpg", false)]
    [InlineData("", false)]
    public void NamesThatCouldLeaveTheFolderAreUnsafe(string name, bool safe) => Assert.Equal(safe, ImageArchive.IsSafeName(name));

    [Theory]
    [InlineData("../field.jpg", "a '..' segment")]
    [InlineData("/etc/field.jpg", "an absolute path or a drive")]
    [InlineData("C:/field.jpg", "an absolute path or a drive")]
    [InlineData("day 1\nfield.jpg", "a control character")]
    public void AnUnsafeNameIsRefusedWithWhatMakesItUnsafe(string name, string reason)
    {
        var (kind, why) = ImageArchive.Judge(name, 100, 100, ArchiveLimits.Default);
        Assert.Equal(ArchiveEntryKind.Refused, kind);
        Assert.StartsWith("unsafe name in archive (", why);
        Assert.Contains(reason, why);
    }

    [Theory]
    [InlineData((ushort)12)] // BZip2
    [InlineData((ushort)14)] // LZMA
    [InlineData((ushort)93)] // Zstandard
    public void AnEntryCompressedWithAMethodTheReaderLacksCannotBeReadAndIsNotCalledCorrupt(ushort method)
    {
        var image = Zips.SampleBytes();
        using var archive = Open(Zips.WithFirstEntryMethod(Zips.Build(System.IO.Compression.CompressionLevel.NoCompression, ("a.jpg", image), ("b.jpg", image)), method));
        var e = Assert.Throws<ArchiveEntryException>(() => archive.Read(archive.Entries[0]));
        Assert.StartsWith("entry cannot be read: ", e.Message);
        Assert.DoesNotContain("corrupt", e.Message);
        Assert.Equal(image, archive.Read(archive.Entries[1]));
    }

    [Fact]
    public void EntriesAreJudgedFromTheCentralDirectory()
    {
        var image = Zips.SampleBytes();
        var zip = Zips.Build(
            ("fields/a.jpg", image),
            ("../escape.jpg", image),
            ("notes.txt", "hello"u8.ToArray()),
            ("inner.zip", Zips.Build(("b.jpg", image))),
            ("__MACOSX/fields/._a.jpg", [0, 5, 22, 7]),
            ("fields/", []),
            ("fields/c.WebP", image));
        using var archive = Open(zip);

        Assert.Equal(["fields/a.jpg", "../escape.jpg", "notes.txt", "inner.zip", "__MACOSX/fields/._a.jpg", "fields/c.WebP"], archive.Entries.Select(e => e.Name));
        Assert.Equal(
            [ArchiveEntryKind.Image, ArchiveEntryKind.Refused, ArchiveEntryKind.Skipped, ArchiveEntryKind.Skipped, ArchiveEntryKind.Skipped, ArchiveEntryKind.Image],
            archive.Entries.Select(e => e.Kind));
        Assert.Contains("unsafe name", archive.Entries[1].Reason);
        Assert.Contains("not an image (.txt)", archive.Entries[2].Reason);
        Assert.Contains("nested archive", archive.Entries[3].Reason);
        Assert.Equal(image, archive.Read(archive.Entries[0]));
        Assert.Throws<InvalidOperationException>(() => archive.Read(archive.Entries[1]));
    }

    [Fact]
    public void AnArchiveWithNothingToAnalyseIsRefused()
    {
        Assert.Contains("archive holds no images: it has no files", Assert.Throws<ArchiveRejectedException>(() => Open(Zips.Build())).Message);
        Assert.Contains("it has no files", Assert.Throws<ArchiveRejectedException>(() => Open(Zips.Build(("a/", []), ("a/b/", [])))).Message);
        var skipped = Assert.Throws<ArchiveRejectedException>(() => Open(Zips.Build(("notes.txt", "hi"u8.ToArray()), ("__MACOSX/._a.jpg", [1])))).Message;
        Assert.Contains("none of its 2 files is a JPEG, PNG, BMP, TIFF or WebP image (notes.txt: not an image (.txt)", skipped);

        // An entry refused for safety is reported on its own, so its archive is not refused as empty.
        using var refused = Open(Zips.Build(("../escape.jpg", Zips.SampleBytes())));
        Assert.Equal(ArchiveEntryKind.Refused, Assert.Single(refused.Entries).Kind);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'P', (byte)'K', 3, 4 }, true)]
    [InlineData(new byte[] { (byte)'P', (byte)'K', 5, 6, 0 }, true)]
    [InlineData(new byte[] { 0xFF, 0xD8, 0xFF, 0xE0 }, false)]
    [InlineData(new byte[] { (byte)'P', (byte)'K', (byte)' ', (byte)'b' }, false)]
    [InlineData(new byte[] { (byte)'P', (byte)'K' }, false)]
    public void AZipIsKnownByItsFirstBytes(byte[] head, bool zip) => Assert.Equal(zip, ImageArchive.IsZip(head));

    [Fact]
    public void TooManyEntriesRefusesTheWholeArchive()
    {
        var zip = Zips.Build(Enumerable.Range(0, 5).Select(i => ($"f{i}.jpg", new byte[] { 1 })).ToArray());
        var e = Assert.Throws<ArchiveRejectedException>(() => Open(zip, new ArchiveLimits(MaxEntries: 4)));
        Assert.Contains("5 entries, more than the limit of 4", e.Message);
        using var fine = Open(zip, new ArchiveLimits(MaxEntries: 5));
        Assert.Equal(5, fine.Entries.Count);
    }

    [Fact]
    public void TooLargeInTotalRefusesTheWholeArchive()
    {
        var zip = Zips.Build(("a.jpg", new byte[600]), ("b.jpg", new byte[600]));
        var e = Assert.Throws<ArchiveRejectedException>(() => Open(zip, new ArchiveLimits(MaxTotalBytes: 1000)));
        Assert.Contains("1,200 uncompressed bytes", e.Message);
    }

    [Fact]
    public void ZipBombEntriesAreRefusedBeforeInflating()
    {
        // 20 MB of zeros deflates to ~20 KB: a ratio near 1000:1, which no photograph has.
        var zip = Zips.Build(("bomb.bmp", new byte[20_000_000]), ("field.jpg", Zips.SampleBytes()));
        using var archive = Open(zip);
        var bomb = archive.Entries[0];
        Assert.Equal(ArchiveEntryKind.Refused, bomb.Kind);
        Assert.Matches(@"compression ratio [\d,]+:1 is above the limit of 100:1", bomb.Reason);
        Assert.Equal(ArchiveEntryKind.Image, archive.Entries[1].Kind);
    }

    [Fact]
    public void OversizedEntriesAreRefused()
    {
        var zip = Zips.Build(System.IO.Compression.CompressionLevel.NoCompression, ("big.png", new byte[5000]));
        using var archive = Open(zip, new ArchiveLimits(MaxEntryBytes: 4000));
        Assert.Equal(ArchiveEntryKind.Refused, archive.Entries[0].Kind);
        Assert.Contains("5,000 bytes uncompressed, more than the limit of 4,000", archive.Entries[0].Reason);
    }

    [Fact]
    public void AnEntryNeverInflatesPastItsDeclaredSize()
    {
        // The headers say 1,000 bytes; the data inflates to 200,000 (a header lying to get past the limits).
        var zip = Zips.WithDeclaredSize(Zips.Build(("field.bmp", Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray())), 1000);
        using var archive = Open(zip);
        var entry = Assert.Single(archive.Entries);
        Assert.Equal(1000, entry.Length);
        Assert.Equal(ArchiveEntryKind.Image, entry.Kind);
        var e = Assert.Throws<ArchiveEntryException>(() => archive.Read(entry));
        Assert.Contains("corrupt entry: the CRC-32 of its 1,000 bytes", e.Message); // read to its declared size, no further
    }

    [Theory]
    [InlineData(System.IO.Compression.CompressionLevel.NoCompression)]
    [InlineData(System.IO.Compression.CompressionLevel.Optimal)]
    public void AnEntryWhoseBytesDoNotMatchItsCrcIsCorrupt(System.IO.Compression.CompressionLevel level)
    {
        // A stored entry with a flipped byte inflates to the right length with the wrong bytes; a deflated one with a
        // flipped stored CRC likewise: .NET's reader reports neither, so the archive checks the CRC-32 itself.
        var image = Zips.SampleBytes();
        var sound = Zips.Build(level, ("a.jpg", image), ("b.jpg", image));
        var zip = level == System.IO.Compression.CompressionLevel.NoCompression ? Zips.WithCorruptFirstEntry(sound) : Zips.WithFirstEntryCrc(sound, 0x12345678);
        using var archive = Open(zip);
        var e = Assert.Throws<ArchiveEntryException>(() => archive.Read(archive.Entries[0]));
        Assert.StartsWith("corrupt entry: the CRC-32 of its", e.Message);
        Assert.Equal(image, archive.Read(archive.Entries[1]));
    }

    [Fact]
    public void AnEntryNameLongerThanTableStorageHoldsIsKeptAsItsStartLengthAndHash()
    {
        Assert.Equal("archives/a.zip!day 1/f.jpg", Stages.ArchiveStage.SourceOf("archives/a.zip", "day 1/f.jpg"));
        var name = new string('n', 40_000) + ".jpg"; // a zip name may be 64 KiB; a Table Storage string 32K characters
        var full = $"archives/a.zip!{name}";
        var kept = Stages.ArchiveStage.SourceOf("archives/a.zip", name);
        Assert.True(kept.Length <= Stages.ArchiveStage.MaxSourceLength, $"{kept.Length}");
        Assert.StartsWith(full[..15_000], kept);
        Assert.EndsWith($"({full.Length:N0} characters, SHA-256 {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(full)))})", kept);
    }

    [Fact]
    public void OutputNamesKeepBothOfTwoEntriesOfOneName()
    {
        var names = new OutputNames();
        Assert.Equal(["a/f.jpg", "a/f~2.jpg", "A/F~3.JPG", "a/f~2~2.jpg", "g.png", "g~2.webp", "h"],
            new[] { "a/f.jpg", "a\\f.jpg", "A/F.JPG", "a/f~2.jpg", "g.png", "g.webp", "h" }.Select(names.Add));
    }

    [Fact]
    public void OutputNamesAreShortEnoughForAnyFileSystemAndKeepTheirExtension()
    {
        var longFile = new string('x', 300) + ".jpg";
        var shortened = OutputNames.Shorten($"day 1/{longFile}");
        Assert.StartsWith("day 1/xxx", shortened);
        Assert.EndsWith(".jpg", shortened);
        Assert.Matches("~[0-9a-f]{12}\\.jpg$", shortened);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(shortened.Split('/')[1]) <= OutputNames.MaxSegmentBytes);
        Assert.NotEqual(shortened, OutputNames.Shorten($"day 1/{new string('x', 299)}y.jpg")); // the hash tells them apart

        // Multi-byte characters count in bytes and are never split.
        var greek = OutputNames.Shorten(new string('λ', 200) + ".png");
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(greek) <= OutputNames.MaxSegmentBytes);
        Assert.EndsWith(".png", greek);

        // Many folders: the file name is kept under a folder named by the hash of the whole.
        var deep = string.Join('/', Enumerable.Range(0, 60).Select(i => $"folder{i:D3}")) + "/field.jpg";
        Assert.Matches("^[0-9a-f]{12}/field\\.jpg$", OutputNames.Shorten(deep));
        Assert.Equal("day 1/field.jpg", OutputNames.Shorten("day 1\\field.jpg"));
    }

    [Fact]
    public void TotalInflatedBytesAreCounted()
    {
        var image = Zips.SampleBytes();
        var zip = Zips.Build(System.IO.Compression.CompressionLevel.NoCompression, ("a.jpg", image), ("b.jpg", image));
        using var archive = Open(zip, new ArchiveLimits(MaxTotalBytes: image.Length * 2L));
        archive.Read(archive.Entries[0]);
        archive.Read(archive.Entries[1]);
        Assert.Throws<ArchiveRejectedException>(() => Open(zip, new ArchiveLimits(MaxTotalBytes: image.Length * 2L - 1)));
    }

    [Fact]
    public void NotAZipIsRejectedWithItsReason()
    {
        var e = Assert.Throws<ArchiveRejectedException>(() => Open("this is not a zip archive at all"u8.ToArray()));
        Assert.StartsWith("not a readable zip archive", e.Message);
        Assert.Contains("shorter than a zip's end record", Assert.Throws<ArchiveRejectedException>(() => Open("not a zip"u8.ToArray())).Message);
        Assert.Contains("shorter than a zip's end record", Assert.Throws<ArchiveRejectedException>(() => Open([])).Message);
    }

    [Fact]
    public void AnArchiveOfAnotherKindIsNamedWithTheWayOut()
    {
        // A .tar.gz (or a gzip renamed .zip): gzip's magic, then deflated bytes. Not "End of Central Directory ...".
        using var memory = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(memory, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(Zips.SampleBytes());
        }

        var e = Assert.Throws<ArchiveRejectedException>(() => Open(memory.ToArray()));
        Assert.Equal("not a zip archive but a gzip file, such as a .tar.gz: only zip archives are expanded; make a zip of the images", e.Message);
    }

    [Fact]
    public void AnEncryptedEntryIsSaidToBeEncryptedNotCorruptAndTheOthersAreRead()
    {
        var image = Zips.SampleBytes();
        using var archive = Open(Zips.WithFirstEntryEncrypted(Zips.Build(("a.jpg", image), ("b.jpg", image))));
        var e = Assert.Throws<ArchiveEntryException>(() => archive.Read(archive.Entries[0]));
        Assert.StartsWith("entry is encrypted (password-protected)", e.Message);
        Assert.DoesNotContain("corrupt", e.Message);
        Assert.Equal(image, archive.Read(archive.Entries[1]));
    }

    [Theory]
    [InlineData(5000, "")]
    [InlineData(1, "")]
    [InlineData(70_000, "made by an archiver, with a comment")]
    public void AZipWithBytesBeforeItIsReadAsUnzipReadsIt(int prefix, string comment)
    {
        // As a self-extracting archive made by prepending a program: the end record is found, the directory it points to
        // is not there (its offsets count from the zip's first byte). unzip, 7-Zip and Python's zipfile read it.
        var image = Zips.SampleBytes();
        var zip = Zips.WithComment(Zips.Build(("fields/a.jpg", image), ("notes.txt", "hi"u8.ToArray()), ("b.jpg", image)), comment);
        var program = new byte[prefix];
        new Random(prefix).NextBytes(program);
        using var archive = Open([.. program, .. zip]);
        Assert.Equal(["fields/a.jpg", "notes.txt", "b.jpg"], archive.Entries.Select(e => e.Name));
        Assert.Equal(image, archive.Read(archive.Entries[0]));
        Assert.Equal(image, archive.Read(archive.Entries[2]));
    }

    [Fact]
    public void BytesBeforeSomethingThatIsNotAZipStillRefuseIt()
    {
        // An end record whose directory is not where the shift would put it: refused as before, not read from a guess.
        var broken = Zips.WithBrokenCentralDirectory(Zips.Build(("a.jpg", Zips.SampleBytes())));
        var e = Assert.Throws<ArchiveRejectedException>(() => Open([.. new byte[300], .. broken]));
        Assert.StartsWith("not a readable zip archive", e.Message);
    }

    [Fact]
    public void AStreamGivenToTheArchiveIsDisposedWhenTheArchiveIsRefused()
    {
        var stream = new MemoryStream("this is not a zip archive at all"u8.ToArray());
        Assert.Throws<ArchiveRejectedException>(() => ImageArchive.Open(stream));
        Assert.False(stream.CanRead);

        var kept = new MemoryStream("this is not a zip archive at all"u8.ToArray());
        Assert.Throws<ArchiveRejectedException>(() => ImageArchive.Open(kept, leaveOpen: true));
        Assert.True(kept.CanRead);
    }
}
