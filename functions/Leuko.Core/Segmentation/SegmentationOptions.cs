using Leuko.Core.Scale;

namespace Leuko.Core.Segmentation;

/// <summary>
/// The segmenter's parameters. Lengths are physical (micrometres) and areas in µm²: each image's scale
/// (<see cref="ImageScale"/>, estimated from its red cells or given) turns them into pixels, so that the same cell
/// gets the same treatment at 40x or 100x, in a 320x240 frame or a 2,000-px field. The values were designed on BCCD
/// fields (0.08 µm/px as measured from their red cells) and checked on the Kaggle frames (0.155), PBC (0.10) and
/// DeepBioNet (two magnifications, 0.09 and 0.13).
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

    /// <summary>How an image's scale is estimated from its red cells where none is given.</summary>
    public ScaleOptions Scale { get; init; } = ScaleOptions.Default;

    /// <summary>
    /// The finest scale (µm per pixel) the method works at. An image finer than this (a laboratory camera of 20-50
    /// megapixels behind a 100x objective gives 0.03-0.05) is segmented on a copy resampled to it, and the cells are
    /// mapped back to the image's pixels: the method's lengths are physical, and the optics resolve about 0.2 µm,
    /// so finer pixels add cost (the morphology's kernels grow with the magnification: a 48-megapixel field at 0.032
    /// took 3.5 s and 880 MB) and nothing the method sees. Every source trained on is coarser (PBC 0.10, DeepBioNet
    /// 0.09-0.13, Kaggle 0.155), so it is segmented as it is. The crops of such an image are cut at this scale.
    /// </summary>
    public double FinestMicronsPerPixel { get; init; } = 0.05;

    /// <summary>
    /// Gaussian smoothing before thresholding (µm): removes JPEG block noise and the granularity of chromatin so that
    /// a nucleus thresholds as one body. At most a tenth of the smallest nucleus's radius.
    /// </summary>
    public double SmoothingSigma { get; init; } = 0.12;

    /// <summary>
    /// How much bluer than the field's median colour (in CIELAB b*, 8-bit units) a pixel must be to count as
    /// leukocyte nucleus. Azure/methylene-blue binds DNA, so nuclei stain blue-purple (b* 70-100 on BCCD),
    /// while erythrocytes, plasma background and eosinophil granules sit near the median (b* 125-135).
    /// Relative to the median so that a lighter or darker stain shifts the threshold with it.
    /// </summary>
    public double NucleusBlueShift { get; init; } = 20;

    /// <summary>Opening radius for nucleus noise (µm): stain speckles and debris edges are thinner than this.</summary>
    public double NoiseRadius { get; init; } = 0.16;

    /// <summary>
    /// Closing radius that joins the lobes of one neutrophil nucleus (µm): lobes are linked by chromatin strands
    /// under a micrometre long and lie within about twice this of one another, while two leukocytes rarely touch.
    /// </summary>
    public double LobeJoinRadius { get; init; } = 0.64;

    /// <summary>
    /// Smallest nucleus area (µm²) that counts as a leukocyte. Platelets are purple too: a single one is 2-3 µm across
    /// (up to ~7 µm²) and a large platelet or a clump, as thresholded, reaches ~13 µm², while the smallest lymphocyte
    /// nucleus (~6 µm across) is ~28 µm². The limit sits between the two populations.
    /// </summary>
    public double MinNucleusArea { get; init; } = 19;

    /// <summary>
    /// Smallest visible nucleus area (µm²) of a cell cut by the image border. A fragment smaller than the smallest
    /// whole nucleus cannot be recognised (annotators, like a person counting, skip it), so it is not reported.
    /// </summary>
    public double MinBorderNucleusArea { get; init; } = 35;

    /// <summary>
    /// The cytoplasm around the nucleus, as a fraction of the nucleus's equivalent radius: the cell region is the
    /// nucleus hull grown by this much. The hull of a lobed or kidney-shaped nucleus already spans much of the cytoplasm,
    /// so the rim left is thin; in a sweep on BCCD a quarter gave the best box overlap with the annotations (mean IoU
    /// 0.826 at 0.2-0.25, 0.791 at 0.35, 0.709 at 0.5).
    /// </summary>
    public double CytoplasmMargin { get; init; } = 0.25;

    /// <summary>
    /// Two nuclei whose cell regions overlap by more than this share of the smaller are pieces of one nucleus (lobes
    /// further apart than the closing joins, a nucleus broken up in smearing) and make one cell: two leukocytes side by
    /// side share at most the rim where their cytoplasm margins meet. Measured on BCCD: the three pairs of neighbouring
    /// cells whose regions overlap at all share 0.7-3.3%, the one cell found in two pieces 18.7%.
    /// </summary>
    public double LobeMergeOverlap { get; init; } = 0.1;

    /// <summary>Radius of a red cell (µm; 7.5 µm across): a hole in the erythrocyte mask smaller than half its disc is central pallor.</summary>
    public double RedCellRadius { get; init; } = 3.75;

    /// <summary>
    /// Side of the square crop around each cell (µm), the classifier's view: a fixed physical window, so a cell's size
    /// is part of what the model sees and a cell looks the same at any magnification. Mature leukocytes are 7-20 µm
    /// across and immature granulocytes up to ~20 µm; 18 µm holds all but the largest whole (their centre and nucleus are
    /// always in view) at 0.28 µm per input pixel of a 64-px model, fine enough for granules and chromatin.
    /// </summary>
    public double CropWindow { get; init; } = 18;
}
