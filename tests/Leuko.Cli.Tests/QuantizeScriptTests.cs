using System.Diagnostics;
using System.Text.Json;
using Leuko.Core.Classification;
using OpenCvSharp;

namespace Leuko.Cli.Tests;

/// <summary>
/// models/training/quantize.py end to end: the int8 model it writes from real crops must load in ONNX Runtime with its
/// card (file name and SHA-256), compute what its QDQ graph says on the parity inputs, and give the float model's
/// classes. This is what fails when the QDQ graph is malformed, when the script's float evaluator drifts from the ONNX
/// graph (the script then refuses to quantize), or when ONNX Runtime's integer kernels compute something else than the
/// graph says (8-bit weights on a CPU whose u8s8 kernels saturate).
/// </summary>
public sealed class QuantizeScriptTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("leuko-quantize-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [PythonFact("torch", "onnx")]
    public async Task The_int8_model_it_writes_loads_with_its_card_and_gives_the_float_models_classes()
    {
        var training = RepositoryFolder.Find(Path.Combine("models", "training"));
        var models = Path.GetDirectoryName(training)!;
        var parityPath = Path.Combine(models, "leukocyte-cnn.parity.json");
        var source = WriteParityCrops(parityPath, Path.Combine(_temp, "crops"));
        var outDir = Path.Combine(_temp, "int8");

        var (exit, stdout, stderr) = await RunAsync(training, "quantize.py",
            "--card", Path.Combine(models, "leukocyte-cnn.json"), "--parity", parityPath,
            "--source", $"parity={source}", "--crops-per-source", "6", "--out", outDir);
        Assert.True(exit == 0, $"quantize.py failed ({exit}): {stderr}\n{stdout}");

        using var parity = JsonDocument.Parse(File.ReadAllText(parityPath));
        int batch = parity.RootElement.GetProperty("inputShape")[0].GetInt32();
        var inputs = parity.RootElement.GetProperty("inputs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using var original = LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath);
        using var quantized = LeukocyteClassifier.Load(Path.Combine(outDir, "leukocyte-cnn-int8.onnx"));
        Assert.Equal(original.Card.Version + "-int8", quantized.Card.Version);

        // ONNX Runtime's integer kernels against what the graph means (the script's evaluator of QuantizeLinear and
        // DequantizeLinear): within 1e-4 measured here with 7-bit weights; with 8-bit weights (--weight-bits 8) on this
        // AVX2 CPU, by 1.8: the 16-bit saturation of its u8s8 kernels.
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "leukocyte-cnn-int8.parity.json")));
        var expectedLogits = expected.RootElement.GetProperty("logits").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(e => e.GetSingle())).ToArray();
        var expectedDistance = expected.RootElement.GetProperty("distance").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var (int8Logits, int8Distance) = quantized.Run(inputs, batch);
        double maxLogit = expectedLogits.Zip(int8Logits, (e, a) => Math.Abs(e - a)).Max();
        double maxDistance = expectedDistance.Zip(int8Distance!, (e, a) => Math.Abs(e - a) / Math.Max(1, Math.Abs(e))).Max();
        Assert.True(maxLogit < 0.01, $"max |graph - ONNX Runtime| int8 logit = {maxLogit}");
        Assert.True(maxDistance < 0.01, $"max relative |graph - ONNX Runtime| int8 distance = {maxDistance}");

        // And the int8 model gives the float model's class to every parity crop (calibrated on 6 crops, its logits are
        // within 1.3 of the float ones here; on 300 crops, 0.27).
        var (floatLogits, _) = original.Run(inputs, batch);
        int classes = original.Card.Classes.Count;
        Assert.Equal(
            Enumerable.Range(0, batch).Select(i => ArgMax(floatLogits.AsSpan(i * classes, classes))),
            Enumerable.Range(0, batch).Select(i => ArgMax(int8Logits.AsSpan(i * classes, classes))));
    }

    /// <summary>The parity file's real crops (its stain section, RGB) as a leuko segment --dataset folder.</summary>
    private static string WriteParityCrops(string parityPath, string folder)
    {
        using var parity = JsonDocument.Parse(File.ReadAllText(parityPath));
        var stain = parity.RootElement.GetProperty("stain");
        var shape = stain.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var rgb = stain.GetProperty("rgb").EnumerateArray().Select(e => e.GetByte()).ToArray();
        int size = shape[1] * shape[2] * 3;
        // The labels only feed the accuracy quantize.py prints; the ranges need pixels, not classes.
        Directory.CreateDirectory(Path.Combine(folder, "NEUTROPHIL"));
        var rows = new List<string> { "crop\tsource\tclass" };
        for (int i = 0; i < shape[0]; i++)
        {
            using var crop = Mat.FromPixelData(shape[1], shape[2], MatType.CV_8UC3, rgb[(i * size)..((i + 1) * size)]);
            using var bgr = crop.CvtColor(ColorConversionCodes.RGB2BGR);
            var name = $"NEUTROPHIL/{i}.png";
            Assert.True(Cv2.ImWrite(Path.Combine(folder, name), bgr));
            rows.Add($"{name}\tparity-{i}.png\tNEUTROPHIL");
        }

        File.WriteAllLines(Path.Combine(folder, "dataset.tsv"), rows);
        return folder;
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++)
        {
            best = row[i] > row[best] ? i : best;
        }

        return best;
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo(PythonFactAttribute.Python) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PYTHONDONTWRITEBYTECODE"] = "1"; // no __pycache__ left in the repository's models/training
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var python = Process.Start(start)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync();
        return (python.ExitCode, await stdout, await stderr);
    }
}
