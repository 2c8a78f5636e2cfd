namespace Leuko.Core.Classification;

/// <summary>The classifier's answer for one cell.</summary>
/// <param name="Label">The most probable class.</param>
/// <param name="Probabilities">Calibrated probabilities in the model card's class order.</param>
/// <param name="NeedsReview">The top probability is under the model's review threshold: a person should look at this cell.</param>
public sealed record CellClassification(string Label, IReadOnlyList<float> Probabilities, bool NeedsReview)
{
    public float Confidence => Probabilities.Max();
}
