namespace Leuko.Core.Classification;

/// <summary>The classifier's answer for one cell.</summary>
/// <param name="Label">The most probable class.</param>
/// <param name="Probabilities">Calibrated probabilities in the model card's class order.</param>
/// <param name="ReviewReason">Why a person should look at this cell (one of <see cref="ReviewReasons"/>), or null when the answer can be accepted.</param>
public sealed record CellClassification(string Label, IReadOnlyList<float> Probabilities, string? ReviewReason)
{
    public float Confidence => Probabilities.Max();

    /// <summary>A person should look at this cell before it is counted.</summary>
    public bool NeedsReview => ReviewReason is not null;
}
