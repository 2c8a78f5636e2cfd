namespace Leuko.Core.Classification;

/// <summary>Why a cell needs review, as results and the API report it.</summary>
public static class ReviewReasons
{
    /// <summary>Not one of the five leukocytes of the differential (an immature granulocyte, an erythroblast, a platelet): always looked at.</summary>
    public const string OtherCell = "other-cell";

    /// <summary>
    /// Given one of the five, but the model without its prior correction (the card's <c>logitOffsets</c>: the other kinds
    /// are rare in a smear) would call it an other kind: a person decides which it is.
    /// </summary>
    public const string PossibleOtherCell = "possible-other-cell";

    /// <summary>
    /// The crop's stain and camera are unlike every microscope the model was trained on (its colour fingerprint lies outside
    /// each training source's, <see cref="StainDomain"/>, or its field's glass and red cells do, <see cref="ModelCard.FieldStainDomain"/>):
    /// the model's confidence means nothing there.
    /// </summary>
    public const string UnfamiliarStain = "unfamiliar-stain";

    /// <summary>
    /// The image is coarser than the model's input: the cell's crop (the segmenter's fixed physical window) has fewer
    /// pixels than the model takes, so it was enlarged, and the chromatin and granules that tell the classes apart were
    /// never captured (a low magnification, a small camera or a small export). Measured: PBC's validation cells at a
    /// third of their size, 0.31 µm per pixel against the model's 0.28, had 97.0% of their accepted cells right.
    /// </summary>
    public const string LowResolution = "low-resolution";

    /// <summary>The calibrated confidence is under the model card's review threshold.</summary>
    public const string LowConfidence = "low-confidence";

    /// <summary>The cell is unlike the training data: less evidence than the card's minimum.</summary>
    public const string Atypical = "atypical";
}
