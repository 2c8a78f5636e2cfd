using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;
using OpenCvSharp;

namespace Leuko.Core.Tests;

public sealed class LeukocyteSegmenterTests
{
    private readonly LeukocyteSegmenter _segmenter = new();

    private static SyntheticSmear TypicalField(double scale) =>
        new SyntheticSmear(scale)
            .RedCellAt(90, 90).RedCellAt(200, 80).RedCellAt(520, 380).RedCellAt(80, 390)
            .RoundCellAt(330, 250)
            .PlateletAt(560, 90);

    [Fact]
    public void The_three_masks_separate_background_red_cells_and_the_leukocyte()
    {
        using var field = TypicalField(1);
        using var result = _segmenter.Segment(field.Image, masks: true);

        Assert.Equal(255, result.BackgroundMask!.At<byte>(20, 400));     // plasma
        Assert.Equal(0, result.BackgroundMask.At<byte>(90, 110));        // red cell rim (row, col)
        Assert.Equal(255, result.ErythrocyteMask!.At<byte>(90, 110));
        Assert.Equal(0, result.ErythrocyteMask.At<byte>(250, 330));      // the leukocyte is not a red cell
        Assert.Equal(255, result.LeukocyteMask.At<byte>(250, 330));      // nucleus centre
        Assert.Equal(255, result.LeukocyteMask.At<byte>(250, 330 + 52)); // cytoplasm rim
        Assert.Equal(0, result.LeukocyteMask.At<byte>(90, 560));         // platelet
        Assert.Equal(0, result.LeukocyteMask.At<byte>(90, 110));
    }

    [Fact]
    public void A_field_finer_than_the_finest_working_scale_gives_the_cells_found_at_its_own_pixels_in_its_own_pixels()
    {
        // 0.039 µm/px (a 48-megapixel camera behind a 100x objective): segmented on a copy at 0.05, mapped back.
        using var field = TypicalField(2);
        using var resampled = _segmenter.Segment(field.Image, masks: true);
        using var native = new LeukocyteSegmenter(SegmentationOptions.Default with { FinestMicronsPerPixel = 0.001 }).Segment(field.Image, masks: true);

        Assert.Equal(native.Scale, resampled.Scale); // the image's own scale, as estimated
        Assert.True(resampled.Scale.MicronsPerPixel < SegmentationOptions.Default.FinestMicronsPerPixel, $"{resampled.Scale.MicronsPerPixel}");
        Assert.Equal(field.Image.Size(), resampled.LeukocyteMask.Size());
        Assert.Equal(field.Image.Size(), resampled.BackgroundMask!.Size());
        Assert.Equal(field.Image.Size(), resampled.ErythrocyteMask!.Size());
        var cell = Assert.Single(resampled.Leukocytes);
        var expected = Assert.Single(native.Leukocytes);
        static double Area(Rect r) => (double)r.Width * r.Height;
        double overlap = Area(cell.Box & expected.Box) / Area(cell.Box | expected.Box);
        Assert.True(overlap > 0.95, $"box {cell.Box} against {expected.Box}");
        Assert.InRange(cell.Area, expected.Area * 0.97, expected.Area * 1.03);
        Assert.InRange(cell.Centroid.X, expected.Centroid.X - 2, expected.Centroid.X + 2);
        Assert.All(cell.Contour, p => Assert.True(p.X >= cell.Box.X - 1 && p.X <= cell.Box.Right && p.Y >= cell.Box.Y - 1 && p.Y <= cell.Box.Bottom, $"{p} outside {cell.Box}"));
        Assert.Equal(255, resampled.LeukocyteMask.At<byte>(500, 660)); // the nucleus centre, in the image's pixels

        // The crop: the same 18 µm at the working scale (fewer pixels), the same picture at the classifier's size.
        Assert.InRange(cell.Crop.Width, 18 / 0.0505, 18 / 0.0495); // 18 µm at 0.05 µm/px, to the rounding of the resampled size
        Assert.True(cell.Crop.Width < expected.Crop.Width);
        using var a = Crops.Resize(cell.Crop, 64);
        using var b = Crops.Resize(expected.Crop, 64);
        using var diff = new Mat();
        Cv2.Absdiff(a, b, diff);
        Assert.True(Cv2.Mean(diff).Val0 < 3, $"crops differ by {Cv2.Mean(diff).Val0:0.0} grey levels on average");
    }

    [Fact]
    public void Without_the_masks_the_cells_are_the_same_and_the_masks_are_not_made()
    {
        using var field = TypicalField(1);
        using var with = _segmenter.Segment(field.Image, masks: true);
        using var without = _segmenter.Segment(field.Image);

        Assert.Null(without.BackgroundMask);
        Assert.Null(without.ErythrocyteMask);
        Assert.NotEmpty(with.Leukocytes);
        Assert.Equal(with.Leukocytes.Count, without.Leukocytes.Count);
        for (int i = 0; i < with.Leukocytes.Count; i++)
        {
            Assert.Equal(with.Leukocytes[i].Box, without.Leukocytes[i].Box);
            Assert.Equal(with.Leukocytes[i].Contour, without.Leukocytes[i].Contour);
            using var difference = new Mat();
            Cv2.Absdiff(with.Leukocytes[i].Crop, without.Leukocytes[i].Crop, difference);
            Assert.Equal(0, Cv2.CountNonZero(difference.Reshape(1)));
        }

        using var maskDifference = new Mat();
        Cv2.BitwiseXor(with.LeukocyteMask, without.LeukocyteMask, maskDifference);
        Assert.Equal(0, Cv2.CountNonZero(maskDifference));
    }

    [Fact]
    public void The_field_colours_are_the_glass_and_the_red_cells_at_any_magnification_and_however_obtained()
    {
        foreach (double scale in new[] { 0.5, 1, 2 })
        {
            using var field = TypicalField(scale);
            using var result = _segmenter.Segment(field.Image);
            var colours = result.Field;
            // the glass is the plasma's colour, the red cells' median inside their rim colour (the pale centre is bluer and lighter)
            Assert.Equal(new[] { SyntheticSmear.Plasma.Val0, SyntheticSmear.Plasma.Val1, SyntheticSmear.Plasma.Val2 }, colours.WhiteBgr);
            Assert.Equal(new[] { SyntheticSmear.RedCell.Val0, SyntheticSmear.RedCell.Val1, SyntheticSmear.RedCell.Val2 }, colours.RedBgr);
            Assert.NotNull(colours.Fingerprint());
            // measured alone, from the scale estimate, or handed to the segmenter: the same figures
            var alone = FieldColours.Of(field.Image);
            var (estimated, measured) = new Scale.RedCellScaleEstimator().EstimateWithField(field.Image);
            Assert.Equal(alone.WhiteBgr, colours.WhiteBgr);
            Assert.Equal(alone.RedBgr, colours.RedBgr);
            Assert.Equal((alone.WhitePixels, alone.RedPixels), (colours.WhitePixels, colours.RedPixels));
            Assert.Equal(alone.RedBgr, measured.RedBgr);
            using var given = _segmenter.Segment(field.Image, estimated, measured);
            Assert.Same(measured, given.Field);
            Assert.Equal(result.Leukocytes.Count, given.Leukocytes.Count);
        }

        // a field without red cells is not measured: no fingerprint, and the classifier's field check does not apply
        using var bare = new SyntheticSmear(1).RoundCellAt(330, 250);
        using var none = _segmenter.Segment(bare.Image);
        Assert.True(none.Field.RedPixels < FieldColours.MinPixels);
        Assert.Null(none.Field.Fingerprint());
    }

    [Fact]
    public void Finds_the_leukocyte_with_its_cytoplasm_and_ignores_the_platelet()
    {
        using var field = TypicalField(1);
        using var result = _segmenter.Segment(field.Image);

        var cell = Assert.Single(result.Leukocytes);
        Assert.InRange(cell.Centroid.X, 326, 334);
        Assert.InRange(cell.Centroid.Y, 246, 254);
        // The nucleus is 90 px across; the box must reach into the cytoplasm around it but not far beyond the cell (120 px).
        Assert.InRange(cell.Box.Width, 96, 130);
        Assert.InRange(cell.Box.Height, 96, 130);
        Assert.InRange(cell.NucleusArea, 5500, 7000);
        Assert.True(cell.Area > cell.NucleusArea);
        Assert.NotEmpty(cell.Contour);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(2.0)]
    public void Parameters_follow_the_image_size(double scale)
    {
        using var reference = TypicalField(1);
        using var scaled = TypicalField(scale);
        using var expected = _segmenter.Segment(reference.Image);
        using var actual = _segmenter.Segment(scaled.Image);

        var a = Assert.Single(expected.Leukocytes).Box;
        var b = Assert.Single(actual.Leukocytes).Box;
        Assert.InRange(b.Width / scale, a.Width - 4, a.Width + 4);
        Assert.InRange(b.X / scale, a.X - 4, a.X + 4);
    }

    [Fact]
    public void The_lobes_of_one_nucleus_make_one_cell()
    {
        using var field = new SyntheticSmear(1).RedCellAt(90, 90).LobedCellAt(320, 240);
        using var result = _segmenter.Segment(field.Image);

        var cell = Assert.Single(result.Leukocytes);
        Assert.InRange(cell.Box.Width, 136, 200); // spans all three lobes
    }

    [Fact]
    public void A_nucleus_in_two_pieces_makes_one_cell()
    {
        using var field = new SyntheticSmear(1).RedCellAt(90, 90).RedCellAt(560, 400).BrokenNucleusCellAt(320, 240);
        using var split = new LeukocyteSegmenter(new SegmentationOptions { LobeMergeOverlap = 1 }).Segment(field.Image);
        using var result = _segmenter.Segment(field.Image);

        Assert.Equal(2, split.Leukocytes.Count); // the two pieces are two components of the nucleus mask
        var cell = Assert.Single(result.Leukocytes);
        Assert.InRange(cell.Centroid.X, 300, 330);
        Assert.InRange(cell.Centroid.Y, 230, 250);
        Assert.Equal(split.Leukocytes.Sum(c => c.NucleusArea), cell.NucleusArea);
    }

    [Fact]
    public void Two_leukocytes_side_by_side_stay_two()
    {
        // Nuclei 20 px apart (beyond the lobe closing), their grown regions meeting in a thin lens.
        using var field = new SyntheticSmear(1).RedCellAt(90, 90).RedCellAt(560, 400).RoundCellAt(265, 240).RoundCellAt(375, 240);
        using var result = _segmenter.Segment(field.Image);

        Assert.Equal(2, result.Leukocytes.Count);
        Assert.All(result.Leukocytes, c => Assert.InRange(c.Box.Width, 96, 130));
    }

    [Fact]
    public void A_field_of_red_cells_and_platelets_has_no_leukocyte()
    {
        using var field = new SyntheticSmear(1).RedCellAt(90, 90).RedCellAt(300, 300).PlateletAt(500, 100).PlateletAt(520, 130);
        using var result = _segmenter.Segment(field.Image);

        Assert.Empty(result.Leukocytes);
        Assert.Equal(0, Cv2.CountNonZero(result.LeukocyteMask));
    }

    [Fact]
    public void Cells_are_reported_largest_first()
    {
        using var field = new SyntheticSmear(1).RedCellAt(80, 400).RedCellAt(220, 420).RedCellAt(560, 80).RedCellAt(400, 90)
            .RoundCellAt(150, 150, nucleusRadius: 40).RoundCellAt(470, 320, nucleusRadius: 60);
        using var result = _segmenter.Segment(field.Image);

        Assert.Equal(2, result.Leukocytes.Count);
        Assert.True(result.Leukocytes[0].Area > result.Leukocytes[1].Area);
        Assert.InRange(result.Leukocytes[0].Centroid.X, 465, 475);
    }

    [Fact]
    public void Crops_are_a_fixed_physical_window_padded_where_the_cell_meets_the_border()
    {
        using var field = new SyntheticSmear(1).RoundCellAt(70, 240, nucleusRadius: 60);
        using var result = _segmenter.Segment(field.Image);

        var cell = Assert.Single(result.Leukocytes);
        Assert.Equal(cell.Crop.Width, cell.Crop.Height);
        Assert.Equal(MatType.CV_8UC3, cell.Crop.Type());
        // Not stretched: the crop is CropWindow µm at the image's scale, centred on the cell.
        Assert.Equal((int)Math.Round(SegmentationOptions.Default.CropWindow / result.Scale.MicronsPerPixel), cell.Crop.Width);
        // The window reaches past the left border: that part is the field's background colour (plasma).
        var corner = cell.Crop.At<Vec3b>(cell.Crop.Height / 2, 0);
        Assert.InRange(corner.Item0, SyntheticSmear.Plasma.Val0 - 6, SyntheticSmear.Plasma.Val0 + 6);
    }

    /// <summary>A field with enough isolated red cells to measure, and one lymphocyte-like cell, at any magnification.</summary>
    private static SyntheticSmear RedCellField(double scale) =>
        new SyntheticSmear(scale)
            .RedCellAt(80, 80).RedCellAt(220, 70).RedCellAt(380, 80).RedCellAt(540, 90)
            .RedCellAt(80, 400).RedCellAt(230, 400).RedCellAt(560, 390)
            .RoundCellAt(380, 260);

    [Fact]
    public void One_smear_at_three_magnifications_gives_the_same_scale_and_the_same_physical_crop()
    {
        var scales = new[] { 0.5, 1.0, 2.0 };
        var estimates = new List<double>();
        var crops = new List<Mat>();
        try
        {
            foreach (double s in scales)
            {
                using var field = RedCellField(s);
                using var result = _segmenter.Segment(field.Image);
                Assert.Equal(Leuko.Core.Scale.ScaleSource.Estimated, result.Scale.Source);
                estimates.Add(result.Scale.MicronsPerPixel * s); // µm per reference pixel: the same smear
                crops.Add(Crops.Resize(Assert.Single(result.Leukocytes).Crop, 64));
            }

            // The synthetic red cell is 96 reference px across: 7.5 µm over 96 px.
            foreach (double e in estimates)
            {
                Assert.InRange(e, estimates[1] * 0.95, estimates[1] * 1.05);
                Assert.InRange(e, 7.5 / 96 * 0.9, 7.5 / 96 * 1.1);
            }

            foreach (var crop in crops)
            {
                using var diff = new Mat();
                Cv2.Absdiff(crop, crops[1], diff);
                Assert.True(Cv2.Mean(diff).Val0 < 8, $"crop differs from the 640x480 one by {Cv2.Mean(diff).Val0:0.0} grey levels on average");
            }
        }
        finally
        {
            crops.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void A_given_scale_overrides_the_estimate()
    {
        using var field = RedCellField(1);
        using var result = _segmenter.Segment(field.Image, Leuko.Core.Scale.ImageScale.Given(0.07));

        Assert.Equal(Leuko.Core.Scale.ScaleSource.Given, result.Scale.Source);
        Assert.Equal(0.07, result.Scale.MicronsPerPixel);
        Assert.Equal((int)Math.Round(SegmentationOptions.Default.CropWindow / 0.07), Assert.Single(result.Leukocytes).Crop.Width);
    }

    [Theory]
    [InlineData(120)]
    [InlineData(360)]
    public void A_single_cell_image_without_red_cells_gives_one_cell(int side)
    {
        // An analyser's export: one 12.5 µm lobed cell in the middle of a 36 µm frame, no red cell to measure.
        double micronsPerPixel = 36.0 / side;
        double scale = 7.5 / 96 / micronsPerPixel; // the synthetic smear's red cell is 96 reference px = 7.5 µm
        using var smear = new SyntheticSmear(scale);
        smear.LobedCellAt(230, 230);
        int origin = (int)Math.Round(230 * scale) - (side / 2);
        using var frame = new Mat(smear.Image, new Rect(origin, origin, side, side));
        using var result = _segmenter.Segment(frame.Clone());

        Assert.Equal(Leuko.Core.Scale.ScaleSource.Default, result.Scale.Source);
        var cell = Assert.Single(result.Leukocytes);
        Assert.InRange(cell.Centroid.X, side * 0.4, side * 0.6);
    }

    [Fact]
    public void A_cell_mostly_outside_the_field_is_not_reported()
    {
        using var field = new SyntheticSmear(1).RoundCellAt(-30, 240, nucleusRadius: 50).RoundCellAt(400, 240);
        using var result = _segmenter.Segment(field.Image);

        var cell = Assert.Single(result.Leukocytes);
        Assert.InRange(cell.Centroid.X, 390, 410);
    }

    [Fact]
    public void Rejects_an_image_that_is_not_8_bit_BGR()
    {
        using var gray = new Mat(100, 100, MatType.CV_8UC1, Scalar.All(128));
        Assert.Throws<ArgumentException>(() => _segmenter.Segment(gray));
    }

    [Fact]
    public void Finds_the_lymphocyte_but_not_the_platelets_of_a_real_field()
    {
        // BloodImage_00037: one small lymphocyte (annotated box 421,302-541,420) and two annotated platelets.
        using var image = ImageDecoder.DecodeFile(Path.Combine("samples", "bccd", "JPEGImages", "BloodImage_00037.jpg"));
        using var result = _segmenter.Segment(image);

        var cell = Assert.Single(result.Leukocytes);
        var truth = Leuko.Core.Evaluation.VocDataset.Load(Path.Combine("samples", "bccd"))
            .Single(i => i.ImagePath.EndsWith("BloodImage_00037.jpg", StringComparison.Ordinal)).Leukocytes.Single();
        Assert.True(Leuko.Core.Evaluation.DetectionEvaluator.IoU(truth, cell.Box) >= 0.5);
    }
}
