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
    public void Each_sample_cell_is_classified_as_its_folder_says(string expected, string file)
    {
        using var image = ImageDecoder.DecodeFile(Path.Combine("samples", "cells", expected, file));
        using var result = new LeukocyteSegmenter(SegmentationOptions.LabelledFrame).Segment(image);
        Assert.NotEmpty(result.Leukocytes);

        var cell = Classifier.Value.Classify(result.Leukocytes[0].Crop);

        Assert.Equal(expected, cell.Label);
    }
}
