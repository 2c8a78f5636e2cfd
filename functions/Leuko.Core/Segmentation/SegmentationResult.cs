using Leuko.Core.Scale;
using OpenCvSharp;

namespace Leuko.Core.Segmentation;

/// <summary>
/// What the segmenter found in one image: the leukocytes, largest first, the scale it worked at, the leukocyte mask,
/// and where asked for (<see cref="LeukocyteSegmenter.Segment"/>'s <c>masks</c>) the background and erythrocyte masks
/// of the method (255 = inside). Owns its images: dispose it.
/// </summary>
public sealed class SegmentationResult(
    IReadOnlyList<Leukocyte> leukocytes, ImageScale scale, Mat? backgroundMask, Mat? erythrocyteMask, Mat leukocyteMask, FieldColours field) : IDisposable
{
    /// <summary>The colours of the field's glass and red cells: the microscope's signature (<see cref="FieldColours"/>).</summary>
    public FieldColours Field { get; } = field;

    public IReadOnlyList<Leukocyte> Leukocytes { get; } = leukocytes;

    /// <summary>The physical scale the image was segmented at, and how it was obtained.</summary>
    public ImageScale Scale { get; } = scale;

    /// <summary>Unstained glass and plasma: bright and unsaturated. Null unless the masks were asked for.</summary>
    public Mat? BackgroundMask { get; } = backgroundMask;

    /// <summary>Red cells: stained pixels that belong to no leukocyte. Null unless the masks were asked for.</summary>
    public Mat? ErythrocyteMask { get; } = erythrocyteMask;

    /// <summary>Leukocyte cell regions (nucleus and cytoplasm) after noise removal.</summary>
    public Mat LeukocyteMask { get; } = leukocyteMask;

    public void Dispose()
    {
        foreach (var cell in Leukocytes)
        {
            cell.Crop.Dispose();
        }

        BackgroundMask?.Dispose();
        ErythrocyteMask?.Dispose();
        LeukocyteMask.Dispose();
    }
}
