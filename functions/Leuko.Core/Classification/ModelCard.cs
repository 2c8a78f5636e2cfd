using System.Text.Json;
using System.Text.Json.Serialization;

namespace Leuko.Core.Classification;

/// <summary>
/// The JSON written beside each ONNX model by models/training/train.py: everything inference needs to feed the model
/// and read its answer. Preprocessing is read from here, never repeated as constants.
/// </summary>
/// <param name="LogitOffsets">
/// A prior correction added to each class's logit (in <see cref="Classes"/> order) before the softmax: ln(share
/// expected in a smear / share in training) for the other kinds, which training over-represents (they are selected
/// cells of a dataset, rare in a smear), 0 for the five. Null: none.
/// </param>
/// <param name="FieldStainDomain">
/// The training microscopes' field colours (<see cref="Segmentation.FieldColours.Fingerprint"/>: the background's and the red
/// cells' CIELAB), in the form of <see cref="StainDomain"/>: a cell of a field unlike every training source's is flagged
/// as of an unfamiliar stain, whatever its crop looks like. Null: no field check.
/// </param>
public sealed record ModelCard(
    string Name,
    string Version,
    string OnnxFile,
    string? OnnxSha256,
    IReadOnlyList<string> Classes,
    ModelInput Input,
    ModelOutput Output,
    double ReviewThreshold,
    string? TestTimeAugmentation = null,
    IReadOnlyList<string>? DifferentialClasses = null,
    IReadOnlyList<string>? OtherClasses = null,
    double? MinEvidence = null,
    double? MaxDistance = null,
    long? FlopsPerView = null,
    StainDomain? StainDomain = null,
    double? SureConfidence = null,
    IReadOnlyList<double>? LogitOffsets = null,
    StainDomain? FieldStainDomain = null)
{
    /// <summary>Whether the model has a second output, each cell's feature-space distance to the training cells.</summary>
    public bool HasDistance => Output.Distance is { Length: > 0 };

    /// <summary>
    /// The classes counted in the differential (the five-part differential of a laboratory). A card that names none
    /// counts every class (the four-class models before the other-cell kinds).
    /// </summary>
    public IReadOnlyList<string> Differential => DifferentialClasses ?? Classes;

    /// <summary>Cells the laboratory reports apart from the differential ("other cells seen"): never accepted without review.</summary>
    public IReadOnlyList<string> Others => OtherClasses ?? [];

    /// <summary>The card's value of <see cref="TestTimeAugmentation"/> for averaging over the 8 symmetries of the square.</summary>
    public const string Dihedral8 = "dihedral8";

    /// <summary>Whether the model's logits are averaged over the 8 rotations and reflections of each crop.</summary>
    public bool UsesDihedralAveraging => string.Equals(TestTimeAugmentation, Dihedral8, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Inferences per cell classified at most: 8 with dihedral averaging, else 1. With <see cref="SureConfidence"/> a
    /// cell the single view is sure of takes one (<see cref="LeukocyteClassifier.ViewsRun"/> counts them).
    /// </summary>
    public int ViewsPerCell => UsesDihedralAveraging ? 8 : 1;

    public static ModelCard Parse(string json) =>
        JsonSerializer.Deserialize(json, ModelCardJson.Default.ModelCard) ?? throw new JsonException("empty model card");
}

/// <summary>
/// The model's input tensor: NCHW floats, <c>(pixel * Scale - Mean[c]) / Std[c]</c> in <see cref="ColourOrder"/>, where
/// pixel * Scale is the crop after <see cref="ColourNormalisation"/> when the card names one.
/// </summary>
public sealed record ModelInput(
    string Name,
    string Layout,
    int Width,
    int Height,
    string ColourOrder,
    double Scale,
    IReadOnlyList<double> Mean,
    IReadOnlyList<double> Std,
    double? WindowMicrons = null,
    ColourNormalisation? ColourNormalisation = null);

/// <summary>
/// The model's outputs: raw logits (<see cref="Name"/>), turned into probabilities by a softmax at
/// <see cref="SoftmaxTemperature"/>, and, where named, <see cref="Distance"/>: each cell's Mahalanobis distance to the
/// nearest training class in the model's feature space (over the feature count), which the review rule bounds.
/// </summary>
public sealed record ModelOutput(string Name, [property: JsonPropertyName("softmaxTemperature")] double SoftmaxTemperature, string? Distance = null);

/// <summary>
/// The card's JSON contract, generated at build time (System.Text.Json source generation): a card is parsed without
/// reflection or code emitted at run time: a cold <c>ModelCard.Parse</c> of the bundled card took 53-55 ms against
/// 100-108 ms by reflection (a ReadyToRun console harness, two runs each), time every <c>leuko</c> start-up pays.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ModelCard))]
internal sealed partial class ModelCardJson : JsonSerializerContext;
