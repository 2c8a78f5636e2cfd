namespace Leuko.Core.Segmentation;

/// <summary>
/// The segmenter's parameters. Lengths are in pixels of the reference field (a 640x480 BCCD smear field,
/// where a red cell of 7.5 µm is about 100 px across, so 1 px is about 0.075 µm) and are scaled
/// to each image by <see cref="LeukocyteSegmenter.ScaleOf"/>, so that a 320x240 frame of the same smear
/// gets half the lengths.
/// </summary>
public sealed record SegmentationOptions
{
    /// <summary>Defaults, designed on the stain physics described on each property.</summary>
    public static SegmentationOptions Default { get; } = new();

    /// <summary>
    /// For a frame known to show one labelled cell (a classification dataset): a cell cut by the border is kept
    /// down to the size of any nucleus, since the frame's label is about it even when little of it is in view.
    /// </summary>
    public static SegmentationOptions LabelledFrame { get; } = new() { MinBorderNucleusArea = Default.MinNucleusArea };

    /// <summary>
    /// Gaussian smoothing before thresholding, in reference pixels: removes JPEG block noise and the
    /// granularity of chromatin so that a nucleus thresholds as one body.
    /// </summary>
    public double SmoothingSigma { get; init; } = 1.5;

    /// <summary>
    /// How much bluer than the field's median colour (in CIELAB b*, 8-bit units) a pixel must be to count as
    /// leukocyte nucleus. Azure/methylene-blue binds DNA, so nuclei stain blue-purple (b* 70-100 on BCCD),
    /// while erythrocytes, plasma background and eosinophil granules sit near the median (b* 125-135).
    /// Relative to the median so that a lighter or darker stain shifts the threshold with it.
    /// </summary>
    public double NucleusBlueShift { get; init; } = 20;

    /// <summary>
    /// Opening radius for nucleus noise (reference px): stain speckles and debris edges are thinner than this.
    /// </summary>
    public double NoiseRadius { get; init; } = 2;

    /// <summary>
    /// Closing radius that joins the lobes of one neutrophil nucleus (reference px): lobes are linked by
    /// chromatin strands and lie within about twice this of one another, while two leukocytes rarely touch.
    /// </summary>
    public double LobeJoinRadius { get; init; } = 8;

    /// <summary>
    /// Smallest nucleus area (reference px²) that counts as a leukocyte. Platelets are purple too: a single one is
    /// 2-3 µm (30-40 px, up to ~1,300 px²) and a large platelet or a clump, as thresholded, reaches ~2,100 px²,
    /// while the smallest lymphocyte nucleus (~6 µm) is ~5,000 px². The limit sits between the two populations.
    /// </summary>
    public double MinNucleusArea { get; init; } = 3000;

    /// <summary>
    /// Smallest visible nucleus area (reference px²) of a cell cut by the image border. A fragment smaller than the
    /// smallest whole nucleus cannot be recognised (annotators, like a person counting, skip it), so it is not reported.
    /// </summary>
    public double MinBorderNucleusArea { get; init; } = 5500;

    /// <summary>
    /// The cytoplasm around the nucleus, as a fraction of the nucleus's equivalent radius: the cell region is the
    /// nucleus hull grown by this much. The hull of a lobed or kidney-shaped nucleus already spans much of the cytoplasm,
    /// so the rim left is thin; in a sweep on BCCD a quarter gave the best box overlap with the annotations (mean IoU
    /// 0.826 at 0.2-0.25, 0.791 at 0.35, 0.709 at 0.5).
    /// </summary>
    public double CytoplasmMargin { get; init; } = 0.25;

    /// <summary>Radius of a red cell (reference px; 7.5 µm across): a hole in the erythrocyte mask smaller than half its disc is central pallor.</summary>
    public double RedCellRadius { get; init; } = 50;

    /// <summary>Extra context around a cell in its square crop, as a fraction of the cell's longer side on each side.</summary>
    public double CropPadding { get; init; } = 0.1;
}
