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
        using var result = _segmenter.Segment(field.Image);

        Assert.Equal(255, result.BackgroundMask.At<byte>(20, 400));      // plasma
        Assert.Equal(0, result.BackgroundMask.At<byte>(90, 110));        // red cell rim (row, col)
        Assert.Equal(255, result.ErythrocyteMask.At<byte>(90, 110));
        Assert.Equal(0, result.ErythrocyteMask.At<byte>(250, 330));      // the leukocyte is not a red cell
        Assert.Equal(255, result.LeukocyteMask.At<byte>(250, 330));      // nucleus centre
        Assert.Equal(255, result.LeukocyteMask.At<byte>(250, 330 + 52)); // cytoplasm rim
        Assert.Equal(0, result.LeukocyteMask.At<byte>(90, 560));         // platelet
        Assert.Equal(0, result.LeukocyteMask.At<byte>(90, 110));
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
        using var field = new SyntheticSmear(1).RoundCellAt(150, 150, nucleusRadius: 40).RoundCellAt(470, 320, nucleusRadius: 60);
        using var result = _segmenter.Segment(field.Image);

        Assert.Equal(2, result.Leukocytes.Count);
        Assert.True(result.Leukocytes[0].Area > result.Leukocytes[1].Area);
        Assert.InRange(result.Leukocytes[0].Centroid.X, 465, 475);
    }

    [Fact]
    public void Crops_are_square_and_padded_where_the_cell_meets_the_border()
    {
        using var field = new SyntheticSmear(1).RoundCellAt(70, 240, nucleusRadius: 60);
        using var result = _segmenter.Segment(field.Image);

        var cell = Assert.Single(result.Leukocytes);
        Assert.Equal(cell.Crop.Width, cell.Crop.Height);
        Assert.Equal(MatType.CV_8UC3, cell.Crop.Type());
        // Not stretched: the crop is the cell's longer side plus 10% padding on each side.
        Assert.InRange(cell.Crop.Width, (int)(Math.Max(cell.Box.Width, cell.Box.Height) * 1.2) - 1, (int)(Math.Max(cell.Box.Width, cell.Box.Height) * 1.2) + 2);
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
