using System.Security.Cryptography;
using Leuko.Core.Segmentation;
using Microsoft.ML.OnnxRuntime;
using OpenCvSharp;

namespace Leuko.Core.Classification;

/// <summary>
/// Classifies leukocyte crops with the CNN exported by models/training (ONNX Runtime). Load once per process:
/// the session is thread-safe and every call batches the crops it is given.
/// </summary>
public sealed class LeukocyteClassifier : IDisposable
{
    /// <summary>File name of the model shipped with the application, under <c>models/</c> beside its binaries.</summary>
    public const string DefaultModelFile = "leukocyte-cnn.onnx";

    private readonly InferenceSession _session;
    private readonly float[] _mean;
    private readonly float[] _std;
    private readonly float _scale;
    private readonly bool _rgb;
    private readonly ColourNormalisation? _colour;

    private LeukocyteClassifier(InferenceSession session, ModelCard card)
    {
        _session = session;
        Card = card;
        _scale = (float)card.Input.Scale;
        _mean = card.Input.Mean.Select(v => (float)v).ToArray();
        _std = card.Input.Std.Select(v => (float)v).ToArray();
        _rgb = card.Input.ColourOrder.Equals("RGB", StringComparison.OrdinalIgnoreCase);
        _colour = card.Input.ColourNormalisation;
    }

    public ModelCard Card { get; }

    /// <summary>The bundled model: <c>models/leukocyte-cnn.onnx</c> beside the application.</summary>
    public static string DefaultModelPath => Path.Combine(AppContext.BaseDirectory, "models", DefaultModelFile);

    /// <summary>
    /// Session options for <paramref name="workers"/> threads that each call the model: ONNX Runtime gets the cores
    /// left per worker, and its threads do not spin-wait after a call (spinning takes the core from the next image's
    /// segmentation: measured, analyze on 2 cores ran at 78 images/s with spinning and 2 threads per call).
    /// </summary>
    public static SessionOptions SessionOptionsFor(int workers)
    {
        var options = new SessionOptions { IntraOpNumThreads = Math.Max(1, Environment.ProcessorCount / Math.Max(1, workers)) };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return options;
    }

    /// <summary>
    /// Loads an ONNX model and the card beside it (<c>name.json</c>), checking that they belong together, so that a
    /// missing, corrupt or mismatched model fails here, at start-up, and not at the first image.
    /// </summary>
    public static LeukocyteClassifier Load(string modelPath, SessionOptions? options = null)
    {
        if (!File.Exists(modelPath))
        {
            throw new ModelLoadException($"model file not found: '{modelPath}'");
        }

        var cardPath = Path.ChangeExtension(modelPath, ".json");
        if (string.Equals(Path.GetExtension(modelPath), ".json", StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelLoadException(
                $"'{modelPath}' is a model card: give the ONNX model beside it ('{Path.ChangeExtension(modelPath, ".onnx")}'), whose card is read with it");
        }

        if (!File.Exists(cardPath))
        {
            throw new ModelLoadException($"model card not found: '{cardPath}' (it must lie beside the model)");
        }

        ModelCard card;
        try
        {
            card = ModelCard.Parse(File.ReadAllText(cardPath));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ModelLoadException($"model card '{cardPath}' is not valid: {e.Message}", e);
        }

        Validate(card, cardPath);
        var bytes = File.ReadAllBytes(modelPath);
        if (card.OnnxSha256 is { Length: > 0 } expected &&
            !Convert.ToHexString(SHA256.HashData(bytes)).Equals(expected, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelLoadException($"model '{modelPath}' does not match its card (SHA-256 differs from {card.Name} {card.Version})");
        }

        InferenceSession session;
        try
        {
            session = options is null ? new InferenceSession(bytes) : new InferenceSession(bytes, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelLoadException($"model '{modelPath}' could not be loaded by ONNX Runtime: {e.Message}", e);
        }

        try
        {
            CheckShapes(session, card, modelPath);
            return new LeukocyteClassifier(session, card);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static void Validate(ModelCard card, string cardPath)
    {
        var problems = new List<string>();
        if (card.Classes is not { Count: > 1 })
        {
            problems.Add("it names fewer than two classes");
        }

        if (card.Input is null || card.Input.Width < 8 || card.Input.Height != card.Input.Width)
        {
            problems.Add("its input must be square and at least 8 pixels");
        }
        else if (card.Input.Mean is not { Count: 3 } || card.Input.Std is not { Count: 3 } || card.Input.Std.Any(s => s <= 0))
        {
            problems.Add("its input needs three means and three positive standard deviations");
        }
        else if (!card.Input.Layout.Equals("NCHW", StringComparison.OrdinalIgnoreCase) ||
                 card.Input.ColourOrder.ToUpperInvariant() is not ("RGB" or "BGR"))
        {
            problems.Add("only NCHW input in RGB or BGR order is supported");
        }

        if (card.Output is null || card.Output.SoftmaxTemperature <= 0)
        {
            problems.Add("its output needs a positive softmax temperature");
        }

        if (card.Input?.WindowMicrons is double window && Math.Abs(window - SegmentationOptions.Default.CropWindow) > 1e-6)
        {
            problems.Add($"it was trained on crops of a {window:0.##} µm window and the segmenter cuts {SegmentationOptions.Default.CropWindow:0.##} µm " +
                         "(SegmentationOptions.CropWindow): the cells would not look to it as they did in training");
        }

        if (card.MaxDistance is not null && card.Output is { Distance: null or "" })
        {
            problems.Add("it bounds the feature distance (maxDistance) but names no distance output");
        }

        if (card.Input?.ColourNormalisation?.Problem() is { } colourProblem)
        {
            problems.Add(colourProblem);
        }
        else if (card.Input?.ColourNormalisation is not null && (!card.Input.ColourOrder.Equals("RGB", StringComparison.OrdinalIgnoreCase) || Math.Abs(card.Input.Scale - (1 / 255.0)) > 1e-9))
        {
            problems.Add("a colour-normalised input must be RGB at scale 1/255");
        }

        if (card.StainDomain?.Problem("stain domain", StainFingerprint.Features, StainFingerprint.Length) is { } stainProblem)
        {
            problems.Add(stainProblem);
        }

        if (card.FieldStainDomain?.Problem("field stain domain", FieldColours.Features, FieldColours.Length) is { } fieldProblem)
        {
            problems.Add(fieldProblem);
        }

        if (card.SureConfidence is double sure && (!card.UsesDihedralAveraging || sure is <= 0 or > 1))
        {
            problems.Add("its sureConfidence must be a probability, and is used only with dihedral8 test-time augmentation");
        }

        if (card.LogitOffsets is { } offsets && (offsets.Count != card.Classes?.Count || offsets.Any(o => !double.IsFinite(o))))
        {
            problems.Add($"its logitOffsets must be {card.Classes?.Count} finite numbers, one per class");
        }

        if (card.ReviewThreshold is < 0 or > 1)
        {
            problems.Add("its review threshold must be a probability");
        }

        if (problems.Count > 0)
        {
            throw new ModelLoadException($"model card '{cardPath}' is not usable: {string.Join("; ", problems)}");
        }
    }

    private static void CheckShapes(InferenceSession session, ModelCard card, string modelPath)
    {
        if (!session.InputMetadata.TryGetValue(card.Input.Name, out var input) ||
            !session.OutputMetadata.TryGetValue(card.Output.Name, out var output) ||
            (card.HasDistance && !session.OutputMetadata.ContainsKey(card.Output.Distance!)))
        {
            throw new ModelLoadException(
                $"model '{modelPath}' does not match its card: expected input '{card.Input.Name}' and output '{card.Output.Name}'" +
                (card.HasDistance ? $" and '{card.Output.Distance}'" : "") + ", " +
                $"found inputs [{string.Join(", ", session.InputMetadata.Keys)}] and outputs [{string.Join(", ", session.OutputMetadata.Keys)}]");
        }

        var inDims = input.Dimensions;
        var outDims = output.Dimensions;
        bool inputOk = inDims.Length == 4 && inDims[1] == 3 && inDims[2] == card.Input.Height && inDims[3] == card.Input.Width;
        bool outputOk = outDims.Length == 2 && outDims[1] == card.Classes.Count;
        if (!inputOk || !outputOk)
        {
            throw new ModelLoadException(
                $"model '{modelPath}' does not match its card: input [{string.Join(",", inDims)}] and output [{string.Join(",", outDims)}], " +
                $"card says [N,3,{card.Input.Height},{card.Input.Width}] and [N,{card.Classes.Count}]");
        }
    }

    /// <summary>
    /// Classifies square cell crops (8-bit BGR, any size) in one batch. <paramref name="fields"/>, where given, holds
    /// the colours of each crop's field (<see cref="SegmentationResult.Field"/>; null for a crop whose field is not
    /// known): a cell of a field unlike every training microscope's (<see cref="ModelCard.FieldStainDomain"/>) is
    /// flagged as its crop would be.
    /// </summary>
    public IReadOnlyList<CellClassification> Classify(IReadOnlyList<Mat> crops, IReadOnlyList<FieldColours?>? fields = null)
    {
        ArgumentNullException.ThrowIfNull(crops);
        if (crops.Count == 0)
        {
            return [];
        }

        if (fields is not null && fields.Count != crops.Count)
        {
            throw new ArgumentException("needs one field (or null) per crop", nameof(fields));
        }

        var stain = HasStainCheck ? new double[crops.Count] : null;
        var input = Preprocess(crops, stain, fields);

        var (logits, distance) = Infer(input, crops.Count);
        var results = new CellClassification[crops.Count];
        int classes = Card.Classes.Count;
        for (int i = 0; i < crops.Count; i++)
        {
            var uncorrected = Card.Classes[ArgMax(logits.AsSpan(i * classes, classes))];
            var row = Corrected(logits.AsSpan(i * classes, classes));
            var probabilities = Softmax(row, Card.Output.SoftmaxTemperature);
            int top = Array.IndexOf(probabilities, probabilities.Max());
            var label = Card.Classes[top];
            bool coarse = crops[i].Width < Card.Input.Width || crops[i].Height < Card.Input.Height;
            results[i] = new CellClassification(label, probabilities, ReviewReason(label, uncorrected, coarse, probabilities[top], Evidence(row), distance?[i], stain?[i]));
        }

        return results;
    }

    /// <summary>
    /// Why a person must look at a cell, by the card's review policy, or null when the model's answer can be accepted:
    /// a kind outside the differential (or one the model would give without its prior correction), a stain and camera unlike any the model was trained on (stain distance over 1,
    /// <see cref="StainDomain"/>), a crop with fewer pixels than the model's input (<paramref name="coarse"/>: the
    /// image is coarser than the model's resolution, so the model would see detail the camera did not capture), a
    /// calibrated confidence under the threshold, or a cell unlike the training data
    /// (less evidence than <see cref="ModelCard.MinEvidence"/>, or farther from the training classes in feature space
    /// than <see cref="ModelCard.MaxDistance"/>).
    /// </summary>
    private string? ReviewReason(string label, string uncorrected, bool coarse, float confidence, double evidence, float? distance, double? stain) =>
        Card.Others.Contains(label) ? ReviewReasons.OtherCell
        : Card.Others.Contains(uncorrected) ? ReviewReasons.PossibleOtherCell
        : stain > 1 ? ReviewReasons.UnfamiliarStain
        : coarse ? ReviewReasons.LowResolution
        : confidence < Card.ReviewThreshold ? ReviewReasons.LowConfidence
        : evidence < Card.MinEvidence || distance > Card.MaxDistance ? ReviewReasons.Atypical
        : null;

    /// <summary>A cell's logits with the card's prior correction (<see cref="ModelCard.LogitOffsets"/>) added, in a new array when there is one.</summary>
    private ReadOnlySpan<float> Corrected(ReadOnlySpan<float> logits)
    {
        if (Card.LogitOffsets is not { } offsets)
        {
            return logits;
        }

        var row = new float[logits.Length];
        for (int c = 0; c < row.Length; c++)
        {
            row[c] = logits[c] + (float)offsets[c];
        }

        return row;
    }

    /// <summary>The first index of the largest value.</summary>
    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>The model's evidence for a cell: log-sum-exp of its logits (the negative free energy of Liu et al. 2020), low for inputs unlike any training class.</summary>
    public static double Evidence(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        double sum = 0;
        foreach (var l in logits)
        {
            sum += Math.Exp(l - max);
        }

        return max + Math.Log(sum);
    }

    /// <summary>Classifies one crop.</summary>
    public CellClassification Classify(Mat crop) => Classify([crop])[0];

    /// <summary>Whether the card checks a cell's stain, by its crop (<see cref="ModelCard.StainDomain"/>) or its field (<see cref="ModelCard.FieldStainDomain"/>).</summary>
    public bool HasStainCheck => Card.StainDomain is not null || Card.FieldStainDomain is not null;

    /// <summary>
    /// A field's stain distance to the training microscopes' fields (<see cref="ModelCard.FieldStainDomain"/>): over 1,
    /// unlike all of them. Null where the card has no field domain or the field has too few background or red-cell
    /// pixels to measure (<see cref="FieldColours.Fingerprint"/>).
    /// </summary>
    public double? FieldStainDistance(FieldColours? field) =>
        Card.FieldStainDomain is { } domain && field?.Fingerprint() is { } fingerprint ? domain.Distance(fingerprint) : null;

    /// <summary>
    /// The model's input for a batch of crops: each resized as training data was (<see cref="Crops.Resize"/>),
    /// colour-normalised where the card says so (<see cref="ColourNormalisation"/>), put in the card's colour order,
    /// scaled and normalised per channel, NCHW. Where <paramref name="stainDistances"/> is
    /// given, each cell's stain distance is written into it, as the review flag reads it: the larger of its resized
    /// crop's (<see cref="StainFingerprint"/>, <see cref="ModelCard.StainDomain"/>) and its field's
    /// (<paramref name="fields"/>, <see cref="FieldStainDistance"/>), 0 for a check the card or the cell lacks.
    /// </summary>
    public float[] Preprocess(IReadOnlyList<Mat> crops, double[]? stainDistances = null, IReadOnlyList<FieldColours?>? fields = null)
    {
        int size = Card.Input.Width;
        int plane = size * size;
        var tensor = new float[crops.Count * 3 * plane];
        for (int n = 0; n < crops.Count; n++)
        {
            var crop = crops[n];
            if (crop.Empty() || crop.Type() != MatType.CV_8UC3)
            {
                throw new ArgumentException($"crop {n} is not an 8-bit, 3-channel BGR image", nameof(crops));
            }

            using var resized = Crops.Resize(crop, size);
            if (stainDistances is not null)
            {
                stainDistances[n] = Math.Max(
                    Card.StainDomain?.Distance(StainFingerprint.Of(resized)) ?? 0, FieldStainDistance(fields?[n]) ?? 0);
            }

            resized.GetArray(out Vec3b[] pixels);
            int offset = n * 3 * plane;
            if (_colour is not null)
            {
                var planes = tensor.AsSpan(offset, 3 * plane);
                _colour.Apply(pixels, planes);
                for (int c = 0; c < 3; c++)
                {
                    float mean = _mean[c], std = _std[c];
                    foreach (ref var v in planes.Slice(c * plane, plane))
                    {
                        v = (v - mean) / std;
                    }
                }

                continue;
            }

            for (int c = 0; c < 3; c++)
            {
                int source = _rgb ? 2 - c : c; // OpenCV stores BGR
                float mean = _mean[c], std = _std[c];
                var dest = tensor.AsSpan(offset + (c * plane), plane);
                for (int p = 0; p < plane; p++)
                {
                    dest[p] = ((pixels[p][source] * _scale) - mean) / std;
                }
            }
        }

        return tensor;
    }

    /// <summary>
    /// Runs the model on an already preprocessed NCHW batch; returns the logits, row by row, and each cell's feature
    /// distance where the model has that output (null otherwise).
    /// </summary>
    public (float[] Logits, float[]? Distance) Run(float[] input, int batch)
    {
        long[] shape = [batch, 3, Card.Input.Height, Card.Input.Width];
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        string[] names = Card.HasDistance ? [Card.Output.Name, Card.Output.Distance!] : [Card.Output.Name];
        Enter();
        try
        {
            using var outputs = _session.Run(runOptions, [Card.Input.Name], [value], names);
            Interlocked.Add(ref _viewsRun, batch);
            return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), Card.HasDistance ? outputs[1].GetTensorDataAsSpan<float>().ToArray() : null);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// A model call begins: refused once the classifier is disposed. ONNX Runtime's session does not check: a call on a
    /// released session dereferences a null handle and the process dies (a host stopping while a model call is queued).
    /// </summary>
    private void Enter()
    {
        lock (_lifetime)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _calls++;
        }
    }

    private void Exit()
    {
        lock (_lifetime)
        {
            if (--_calls == 0 && _disposed)
            {
                Monitor.PulseAll(_lifetime);
            }
        }
    }

    private readonly object _lifetime = new();
    private int _calls;
    private bool _disposed;

    /// <summary>Views the model has been run on since it was loaded (each crop once, or once per symmetry it was averaged over).</summary>
    public long ViewsRun => Interlocked.Read(ref _viewsRun);

    private long _viewsRun;

    /// <summary>
    /// The logits (and distances) the card's test-time augmentation serves for a preprocessed batch: one view; the mean
    /// over the 8 symmetries (<see cref="DihedralMean"/>); or, with <see cref="ModelCard.SureConfidence"/>, one view for
    /// the cells whose single view has a softmax top probability (temperature 1, after the card's prior correction) of at
    /// least that, the 8 for the others: the training script chose it so that on every validation source each cell kept
    /// at one view has the class the 8 give it. The logits returned are the model's, without the prior correction.
    /// </summary>
    public (float[] Logits, float[]? Distance) Infer(float[] input, int batch)
    {
        if (!Card.UsesDihedralAveraging)
        {
            return Run(input, batch);
        }

        if (Card.SureConfidence is not double sure)
        {
            return DihedralMean(input, batch);
        }

        var (logits, distance) = Run(input, batch);
        int classes = Card.Classes.Count, cell = input.Length / batch;
        var unsure = Enumerable.Range(0, batch).Where(i => Softmax(Corrected(logits.AsSpan(i * classes, classes)), 1).Max() < sure).ToArray();
        if (unsure.Length == 0)
        {
            return (logits, distance);
        }

        var subset = new float[unsure.Length * cell];
        for (int j = 0; j < unsure.Length; j++)
        {
            input.AsSpan(unsure[j] * cell, cell).CopyTo(subset.AsSpan(j * cell, cell));
        }

        var (mean, meanDistance) = DihedralMean(subset, unsure.Length);
        for (int j = 0; j < unsure.Length; j++)
        {
            mean.AsSpan(j * classes, classes).CopyTo(logits.AsSpan(unsure[j] * classes, classes));
            if (distance is not null)
            {
                distance[unsure[j]] = meanDistance![j];
            }
        }

        return (logits, distance);
    }

    /// <summary>
    /// Test-time augmentation chosen on validation by the training script: the mean logits (and feature distances) over
    /// the 8 symmetries of the square (4 rotations, each with and without a reflection). A cell has no orientation on the slide.
    /// </summary>
    public (float[] Logits, float[]? Distance) DihedralMean(float[] input, int batch)
    {
        const int views = 8;
        int size = Card.Input.Width, plane = size * size, classes = Card.Classes.Count;
        var all = new float[input.Length * views];
        for (int v = 0; v < views; v++)
        {
            int turns = v % 4;
            bool mirror = v >= 4;
            for (int p = 0; p < batch * 3; p++)
            {
                var source = input.AsSpan(p * plane, plane);
                var dest = all.AsSpan(((v * batch * 3) + p) * plane, plane);
                for (int y = 0; y < size; y++)
                {
                    for (int x = 0; x < size; x++)
                    {
                        // Follow the output pixel back through the quarter turns (each: (y, x) <- (x, size-1-y)) and the mirror.
                        int sy = y, sx = x;
                        for (int t = 0; t < turns; t++)
                        {
                            (sy, sx) = (sx, size - 1 - sy);
                        }

                        dest[(y * size) + x] = source[(sy * size) + (mirror ? size - 1 - sx : sx)];
                    }
                }
            }
        }

        var (logits, distance) = Run(all, batch * views);
        var mean = new float[batch * classes];
        var meanDistance = distance is null ? null : new float[batch];
        for (int v = 0; v < views; v++)
        {
            for (int i = 0; i < batch * classes; i++)
            {
                mean[i] += logits[(v * batch * classes) + i] / views;
            }

            for (int i = 0; meanDistance is not null && i < batch; i++)
            {
                meanDistance[i] += distance![(v * batch) + i] / views;
            }
        }

        return (mean, meanDistance);
    }

    /// <summary>Softmax of <paramref name="logits"/> divided by the temperature (temperature scaling calibration).</summary>
    public static float[] Softmax(ReadOnlySpan<float> logits, double temperature)
    {
        var result = new float[logits.Length];
        float max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double e = Math.Exp((logits[i] - max) / temperature);
            result[i] = (float)e;
            sum += e;
        }

        for (int i = 0; i < result.Length; i++)
        {
            result[i] = (float)(result[i] / sum);
        }

        return result;
    }

    /// <summary>Releases the model once the calls in flight have returned; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_lifetime)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            while (_calls > 0)
            {
                Monitor.Wait(_lifetime);
            }
        }

        _session.Dispose();
    }
}
