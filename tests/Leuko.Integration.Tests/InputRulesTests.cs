using Leuko.Pipeline;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Tests;

namespace Leuko.Integration.Tests;

/// <summary>
/// The input rules of the cloud path on a real Azurite, as <c>leuko analyze</c> applies them: a JPEG ends at its
/// end-of-image marker, archive or image is known by content, and an archive with no image fails with its reason.
/// </summary>
[Collection("Azurite")]
public class InputRulesTests
{
    [Fact]
    public async Task AJpegWithDataAfterItsEndIsAnalysedAndOneCutShortFails()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("trailer");
        var jpeg = Samples.All()[0].Data;
        var names = new[] { $"{run}/plain.jpg", $"{run}/trailer.jpg", $"{run}/cut.jpg" };
        await PipelineHarness.UploadAsync(Containers.Uploads, names[0], jpeg);
        await PipelineHarness.UploadAsync(Containers.Uploads, names[1], [.. jpeg, .. Enumerable.Range(0, 10_000).Select(i => (byte)(i % 5 == 0 ? 0xFF : i))]);
        await PipelineHarness.UploadAsync(Containers.Uploads, names[2], jpeg[..(jpeg.Length - 300)]);

        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, names, TimeSpan.FromMinutes(2));

        Assert.Equal(rows[0].Status, rows[1].Status);
        Assert.NotEqual(ImageStatus.Failed, rows[1].Status);
        Assert.Equal(rows[0].Counts, rows[1].Counts);
        Assert.Equal(ImageStatus.Failed, rows[2].Status);
        Assert.Contains("truncated JPEG: the file ends before its end-of-image marker", rows[2].Error);
    }

    [Fact]
    public async Task AnArchivesScaleMetadataIsTheScaleOfEachOfItsImages()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("archive-scale");
        var field = Samples.All()[0].Data;
        var archiveName = $"{run}/calibrated.zip";
        await PipelineHarness.UploadAsync(Containers.Archives, archiveName, Zips.Build(("a.jpg", field), ("b.jpg", field)),
            metadata: new Dictionary<string, string> { ["micronsperpixel"] = "0.085" });

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(archiveName));
        Assert.Equal("completed", batch.Status);
        Assert.Equal(2, batch.Images.Count);
        foreach (var member in batch.Images)
        {
            var row = (await pipeline.Results.GetImageAsync(member.Id, CancellationToken.None))!;
            Assert.Equal(new Leuko.Pipeline.ScaleRecord(0.085, "given", 0), row.Scale);
        }
    }

    [Fact]
    public async Task AnImageUploadedAsAnArchiveIsABatchOfOneAndAZipUploadedAsAnImageFailsSayingWhere()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("content");
        var jpeg = Samples.All()[0].Data;
        var archiveName = $"{run}/photo.zip";
        await PipelineHarness.UploadAsync(Containers.Archives, archiveName, jpeg);
        var zipName = $"{run}/batch.jpg";
        await PipelineHarness.UploadAsync(Containers.Uploads, zipName, Zips.Build(("field.jpg", jpeg)));

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(archiveName));
        Assert.Equal("completed", batch.Status);
        Assert.Null(batch.Error);
        Assert.Equal($"{Containers.Archives}/{archiveName} is a JPEG image, not a zip archive: analysed as a batch of one image", batch.Note);
        var member = Assert.Single(batch.Images);
        Assert.Equal($"{Containers.Archives}/{archiveName}", member.Source);
        Assert.Equal(1, batch.Completed);
        Assert.True(batch.Differential.Values.Sum(d => d.Count) > 0);

        var zip = Assert.Single(await PipelineHarness.WaitForImagesAsync(pipeline.Results, [zipName], TimeSpan.FromMinutes(1)));
        Assert.Equal(ImageStatus.Failed, zip.Status);
        Assert.Contains($"a zip archive, not an image: upload archives to {Containers.Archives}/", zip.Error);
    }

    [Fact]
    public async Task AnArchiveWithNoImagesFailsWithItsReason()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("noimages");
        var archives = new (string Name, byte[] Zip)[]
        {
            ($"{run}/empty.zip", Zips.Build()),
            ($"{run}/folders.zip", Zips.Build(("day1/", []), ("day1/morning/", []))),
            ($"{run}/notes.zip", Zips.Build(("readme.txt", "no pictures here"u8.ToArray()))),
        };
        foreach (var (name, zip) in archives)
        {
            await PipelineHarness.UploadAsync(Containers.Archives, name, zip);
        }

        foreach (var (name, _) in archives)
        {
            var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(name));
            Assert.Equal("failed", batch.Status);
            Assert.Contains("archive holds no images", batch.Error);
            Assert.Equal(0, batch.Total);
        }
    }

    [Fact]
    public async Task AZipWithBytesBeforeItAndAnEncryptedEntryAreAnsweredAsLeukoAnalyzeAnswersThem()
    {
        // Read from the blob's stream: a self-extracting archive's entries (offsets shifted by the program before the zip),
        // and an encrypted entry failed as encrypted while the others complete.
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("sfx");
        var image = Samples.All()[0].Data;
        var program = new byte[200_000];
        new Random(7).NextBytes(program);
        var archiveName = $"{run}/setup.zip";
        var zip = Zips.Build(("a.jpg", image), ("b.jpg", image));
        await PipelineHarness.UploadAsync(Containers.Archives, archiveName, [.. program, .. Zips.WithFirstEntryEncrypted(zip)]);

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(archiveName));

        Assert.Equal("completed", batch.Status);
        Assert.Equal(2, batch.Total);
        var source = $"{Containers.Archives}/{archiveName}!";
        var encrypted = Assert.Single(batch.Images, i => i.Source == source + "a.jpg");
        Assert.Equal(ImageStatus.Failed, encrypted.Status);
        Assert.StartsWith("entry is encrypted (password-protected)", encrypted.Error);
        Assert.Equal(ImageStatus.Completed, Assert.Single(batch.Images, i => i.Source == source + "b.jpg").Status);
    }

    [Fact]
    public async Task CorruptEntriesFailAndDuplicateOrLongNamesAreAnalysedUnderTheirOwnSources()
    {
        // As leuko analyze does: a corrupt entry fails, both entries of one name are analysed, and a name too long for a
        // blob name (1,024 characters) or blob metadata (8 KiB) is analysed under a shortened upload name, keeping its source.
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("names");
        var image = Samples.All()[0].Data;
        var other = Samples.All()[1].Data;
        var longName = string.Join('/', Enumerable.Range(0, 12).Select(i => $"{new string('d', 90)}{i}")) + "/" + new string('é', 1500) + ".jpg";
        var archiveName = $"{run}/batch.zip";
        await PipelineHarness.UploadAsync(Containers.Archives, archiveName, Zips.WithCorruptFirstEntry(Zips.Build(System.IO.Compression.CompressionLevel.NoCompression,
            ("bad.jpg", image), ("dup.jpg", image), ("dup.jpg", other), (longName, other))));

        var batch = await WaitForBatchAsync(pipeline, PipelineIds.Batch(archiveName));

        Assert.Equal("completed", batch.Status);
        var source = $"{Containers.Archives}/{archiveName}!";
        Assert.Equal(new[] { "bad.jpg", "dup.jpg", "dup.jpg", longName }.Select(e => source + e).Order(), batch.Images.Select(i => i.Source).Order());
        var bad = Assert.Single(batch.Images, i => i.Source == source + "bad.jpg");
        Assert.Equal(ImageStatus.Failed, bad.Status);
        Assert.StartsWith("corrupt entry: the CRC-32", bad.Error);
        Assert.Equal(3, batch.Completed);
        Assert.Equal(4, batch.Images.Select(i => i.Id).Distinct().Count());

        var rows = new List<ImageRow>();
        foreach (var member in batch.Images.Where(i => i.Status == ImageStatus.Completed))
        {
            rows.Add((await pipeline.Results.GetImageAsync(member.Id, CancellationToken.None))!);
        }

        Assert.Equal(3, rows.Select(r => r.Upload).Distinct().Count());
        Assert.All(rows, r => Assert.True(r.Upload.Length <= 1024, r.Upload));
        var dups = rows.Where(r => r.Source == source + "dup.jpg").OrderBy(r => r.Upload).ToList();
        Assert.Equal([$"{batch.Id}/dup.jpg", $"{batch.Id}/dup~2.jpg"], dups.Select(r => r.Upload));
        var longRow = Assert.Single(rows, r => r.Source == source + longName);
        async Task<string> Boxes(ImageRow row) =>
            string.Join(' ', (await pipeline.Results.GetCellsAsync(row.ImageId, row.BlobETag!, CancellationToken.None)).Select(c => c.Box));
        Assert.NotEqual(await Boxes(dups[0]), await Boxes(dups[1])); // the second dup.jpg is the other field...
        Assert.Equal(await Boxes(longRow), await Boxes(dups[1])); // ...as is the long-named entry
    }

    [Fact]
    public async Task TheExifOrientationIsAppliedAndRecorded()
    {
        await using var pipeline = await PipelineHarness.StartAsync();
        var run = Azurite.Unique("exif");
        var jpeg = Samples.All()[0].Data;
        var names = new[] { $"{run}/plain.jpg", $"{run}/sideways.jpg" };
        await PipelineHarness.UploadAsync(Containers.Uploads, names[0], jpeg);
        await PipelineHarness.UploadAsync(Containers.Uploads, names[1], Exif.Jpeg(jpeg, 8)); // turn 90° counter-clockwise

        var rows = await PipelineHarness.WaitForImagesAsync(pipeline.Results, names, TimeSpan.FromMinutes(2));

        Assert.Equal((640, 480, 1), (rows[0].Width, rows[0].Height, rows[0].Orientation));
        Assert.Equal((480, 640, 8), (rows[1].Width, rows[1].Height, rows[1].Orientation));
        Assert.Equal(rows[0].Counts, rows[1].Counts);
        var view = (await pipeline.Queries.GetImageAsync(rows[1].ImageId, CancellationToken.None))!;
        Assert.Equal(8, view.Orientation);
        Assert.All(view.Cells, c => Assert.True(c.Box.X + c.Box.Width <= 480 && c.Box.Y + c.Box.Height <= 640, $"{c.Box}"));
        var png = (await pipeline.Queries.GetAnnotatedPngAsync(rows[1].ImageId, CancellationToken.None))!;
        using var drawn = OpenCvSharp.Cv2.ImDecode(png, OpenCvSharp.ImreadModes.Color);
        Assert.Equal(new OpenCvSharp.Size(480, 640), drawn.Size());
    }

    private static async Task<BatchView> WaitForBatchAsync(PipelineHarness pipeline, string batchId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            var batch = await pipeline.Queries.GetBatchAsync(batchId, CancellationToken.None);
            if (batch is { Status: "completed" or "failed" })
            {
                return batch;
            }

            Assert.True(DateTime.UtcNow < deadline, $"batch {batchId} is {batch?.Status ?? "unknown"} after 2 minutes");
            await Task.Delay(250);
        }
    }
}
