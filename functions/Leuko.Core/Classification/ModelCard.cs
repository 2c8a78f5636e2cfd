using System.Text.Json;
using System.Text.Json.Serialization;

namespace Leuko.Core.Classification;

/// <summary>
/// The JSON written beside each ONNX model by models/training/train.py: everything inference needs to feed the model
/// and read its answer. Preprocessing is read from here, never repeated as constants.
/// </summary>
public sealed record ModelCard(
    string Name,
    string Version,
    string OnnxFile,
    string? OnnxSha256,
    IReadOnlyList<string> Classes,
    ModelInput Input,
    ModelOutput Output,
    double ReviewThreshold,
    string? TestTimeAugmentation = null)
{
    /// <summary>The card's value of <see cref="TestTimeAugmentation"/> for averaging over the 8 symmetries of the square.</summary>
    public const string Dihedral8 = "dihedral8";

    /// <summary>Whether the model's logits are averaged over the 8 rotations and reflections of each crop.</summary>
    public bool UsesDihedralAveraging => string.Equals(TestTimeAugmentation, Dihedral8, StringComparison.OrdinalIgnoreCase);

    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);

    public static ModelCard Parse(string json) =>
        JsonSerializer.Deserialize<ModelCard>(json, Options) ?? throw new JsonException("empty model card");
}

/// <summary>The model's input tensor: NCHW floats, <c>(pixel * Scale - Mean[c]) / Std[c]</c> in <see cref="ColourOrder"/>.</summary>
public sealed record ModelInput(
    string Name,
    string Layout,
    int Width,
    int Height,
    string ColourOrder,
    double Scale,
    IReadOnlyList<double> Mean,
    IReadOnlyList<double> Std);

/// <summary>The model's output: raw logits, turned into probabilities by a softmax at <see cref="SoftmaxTemperature"/>.</summary>
public sealed record ModelOutput(string Name, [property: JsonPropertyName("softmaxTemperature")] double SoftmaxTemperature);
