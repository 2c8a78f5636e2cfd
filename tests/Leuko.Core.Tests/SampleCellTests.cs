using Leuko.Core.Classification;
using Leuko.Core.Imaging;
using Leuko.Core.Segmentation;

namespace Leuko.Core.Tests;

/// <summary>The bundled model on the committed labelled cells (none of them from its training split).</summary>
public sealed class SampleCellTests
{
    public static TheoryData<string, string> Cells()
    {
        var data = new TheoryData<string, string>();
        foreach (var folder in Directory.GetDirectories(Path.Combine("samples", "cells")).Order(StringComparer.Ordinal))
        {
            foreach (var file in Directory.GetFiles(folder).Where(f => !f.EndsWith(".md", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            {
                data.Add(Path.GetFileName(folder), Path.GetFileName(file));
            }
        }

        return data;
    }

    private static readonly Lazy<LeukocyteClassifier> Classifier = new(() => LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath));

    [Theory]
    [MemberData(nameof(Cells))]
    public void Each_sample_cell_is_classified_as_its_folder_says_or_flagged_for_review(string expected, string file)
    {
        var cell = Classify(expected, file);

        // The review flag's promise: a cell the model gets wrong is never accepted unseen.
        Assert.True(cell.Label == expected || cell.NeedsReview, $"{expected}/{file}: accepted as {cell.Label} ({cell.Confidence:0.00})");
        if (Classifier.Value.Card.Others.Contains(expected))
        {
            // A cell that is none of the five is never accepted unseen: reported as its kind, or as one of the five that
            // the model without its prior correction would have called an other kind.
            Assert.True(cell.NeedsReview);
            Assert.Contains(cell.ReviewReason, new[] { ReviewReasons.OtherCell, ReviewReasons.PossibleOtherCell });
        }
    }

    [Fact]
    public void Nine_in_ten_sample_cells_are_classified_as_their_folder_says()
    {
        var cells = Cells().Select(row => (Expected: (string)row[0], File: (string)row[1])).ToList();
        int right = cells.Count(c => Classify(c.Expected, c.File).Label == c.Expected);
        Assert.True(right >= 0.9 * cells.Count, $"{right} of {cells.Count} right");
    }

    private static CellClassification Classify(string expected, string file)
    {
        using var image = ImageDecoder.DecodeFile(Path.Combine("samples", "cells", expected, file));
        using var result = new LeukocyteSegmenter().Segment(image);
        Assert.NotEmpty(result.Leukocytes);
        return Classifier.Value.Classify(result.Leukocytes[0].Crop);
    }

    [Fact]
    public void The_samples_cover_the_five_part_differential_and_the_other_kinds()
    {
        var folders = Directory.GetDirectories(Path.Combine("samples", "cells")).Select(f => Path.GetFileName(f)).ToHashSet();
        Assert.Superset(Classifier.Value.Card.Classes.ToHashSet(), folders); // every class has sample cells
    }
}
