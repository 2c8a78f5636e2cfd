using System.Text.Json;
using System.Text.Json.Nodes;
using Leuko.Core.Classification;
using OpenCvSharp;

namespace Leuko.Core.Tests;

public sealed class LeukocyteClassifierTests : IDisposable
{
    private static readonly string ModelPath = LeukocyteClassifier.DefaultModelPath;
    private readonly string _temp = Directory.CreateTempSubdirectory("leuko-model-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    /// <summary>A copy of the bundled model whose card has been edited, in a temporary folder.</summary>
    private string ModelWithCard(Action<JsonObject> edit, byte[]? onnx = null)
    {
        var card = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(ModelPath, ".json")))!.AsObject();
        edit(card);
        var path = Path.Combine(_temp, "model.onnx");
        File.WriteAllBytes(path, onnx ?? File.ReadAllBytes(ModelPath));
        File.WriteAllText(Path.ChangeExtension(path, ".json"), card.ToJsonString());
        return path;
    }

    [Fact]
    public void ONNX_Runtime_reproduces_the_PyTorch_logits_and_distances_of_the_parity_vectors()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "leukocyte-cnn.parity.json")));
        var shape = parity.RootElement.GetProperty("inputShape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var inputs = parity.RootElement.GetProperty("inputs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var expected = parity.RootElement.GetProperty("logits").EnumerateArray()
            .SelectMany(r => r.EnumerateArray().Select(e => e.GetSingle())).ToArray();

        Assert.Equal(new[] { shape[0], 3, classifier.Card.Input.Height, classifier.Card.Input.Width }, shape);
        var (actual, distance) = classifier.Run(inputs, shape[0]);

        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(maxDiff < 1e-4, $"max |PyTorch - ONNX Runtime| = {maxDiff}");
        Assert.True(classifier.Card.HasDistance, "the bundled model has the feature-distance output");
        var expectedDistance = parity.RootElement.GetProperty("distance").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(expectedDistance.Length, distance!.Length);
        double maxDistanceDiff = expectedDistance.Zip(distance, (e, a) => Math.Abs(e - a) / Math.Max(1, Math.Abs(e))).Max();
        Assert.True(maxDistanceDiff < 1e-4, $"max relative |PyTorch - ONNX Runtime| distance = {maxDistanceDiff}");
    }

    /// <summary>The parity file's stain section: validation crops of each source (RGB) with Python's fingerprints and distances.</summary>
    private static (Mat[] Crops, double[][] Fingerprints, double[] Distances) StainParity()
    {
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "leukocyte-cnn.parity.json")));
        var stain = parity.RootElement.GetProperty("stain");
        var shape = stain.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var rgb = stain.GetProperty("rgb").EnumerateArray().Select(e => e.GetByte()).ToArray();
        int size = shape[1] * shape[2] * 3;
        var crops = new Mat[shape[0]];
        for (int i = 0; i < crops.Length; i++)
        {
            using var rgbCrop = Mat.FromPixelData(shape[1], shape[2], MatType.CV_8UC3, rgb[(i * size)..((i + 1) * size)]);
            crops[i] = new Mat();
            Cv2.CvtColor(rgbCrop, crops[i], ColorConversionCodes.RGB2BGR);
        }

        var fingerprints = stain.GetProperty("fingerprints").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        return (crops, fingerprints, stain.GetProperty("distance").EnumerateArray().Select(e => e.GetDouble()).ToArray());
    }

    [Fact]
    public void The_stain_fingerprint_and_distance_match_the_training_scripts()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        var domain = classifier.Card.StainDomain;
        Assert.NotNull(domain);
        var (crops, expected, distances) = StainParity();
        try
        {
            Assert.NotEmpty(crops);
            for (int i = 0; i < crops.Length; i++)
            {
                var actual = StainFingerprint.Of(crops[i]);
                double maxDiff = actual.Zip(expected[i], (a, e) => Math.Abs(a - e)).Max();
                Assert.True(maxDiff < 0.05, $"crop {i}: max |Python - C#| fingerprint = {maxDiff} ({string.Join(", ", actual)})");
                Assert.Equal(distances[i], domain.Distance(actual), 3);
            }
        }
        finally
        {
            Array.ForEach(crops, c => c.Dispose());
        }
    }

    [Fact]
    public void The_field_fingerprint_and_distance_match_the_training_scripts()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        Assert.NotNull(classifier.Card.FieldStainDomain);
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "leukocyte-cnn.parity.json")));
        var field = parity.RootElement.GetProperty("field");
        var rows = field.GetProperty("fields").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        var fingerprints = field.GetProperty("fingerprints").EnumerateArray().ToArray();
        var distances = field.GetProperty("distance").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.True(rows.Length >= 4);
        int unmeasured = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            var r = rows[i];
            var colours = new Segmentation.FieldColours([r[0], r[1], r[2]], (int)r[3], [r[4], r[5], r[6]], (int)r[7]);
            var actual = colours.Fingerprint();
            if (fingerprints[i].ValueKind == JsonValueKind.Null)
            {
                Assert.Null(actual);
                Assert.Null(classifier.FieldStainDistance(colours));
                unmeasured++;
                continue;
            }

            Assert.Equal(fingerprints[i].EnumerateArray().Select(e => e.GetDouble()), actual!); // OpenCV's 8-bit Lab in both: exact
            Assert.Equal(distances[i], classifier.FieldStainDistance(colours)!.Value, 4);
        }

        Assert.Equal(1, unmeasured);
    }

    [Fact]
    public void A_cell_of_a_field_unlike_every_training_microscope_is_flagged_whatever_its_crop()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "leukocyte-cnn.parity.json")));
        var first = parity.RootElement.GetProperty("field").GetProperty("fields")[0].EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var familiar = new Segmentation.FieldColours([first[0], first[1], first[2]], (int)first[3], [first[4], first[5], first[6]], (int)first[7]);
        // The same field under a lamp of another colour: glass and red cells bluer, as no training microscope shows them.
        var bluish = familiar with { WhiteBgr = [255, first[1] * 0.8, first[2] * 0.7], RedBgr = [first[4], first[5] * 0.7, first[6] * 0.6] };
        Assert.True(classifier.FieldStainDistance(familiar) <= 1);
        Assert.True(classifier.FieldStainDistance(bluish) > 1);

        var (crops, _, distances) = StainParity();
        try
        {
            var familiarCrops = crops.Where((_, i) => distances[i] <= 1).ToList();
            Assert.NotEmpty(familiarCrops);
            var plain = classifier.Classify(familiarCrops);
            var inFamiliarField = classifier.Classify(familiarCrops, familiarCrops.Select(_ => (Segmentation.FieldColours?)familiar).ToList());
            var inStrangeField = classifier.Classify(familiarCrops, familiarCrops.Select(_ => (Segmentation.FieldColours?)bluish).ToList());
            Assert.Equal(plain.Select(c => c.ReviewReason), inFamiliarField.Select(c => c.ReviewReason));
            Assert.Equal(plain.Select(c => c.Label), inStrangeField.Select(c => c.Label));
            for (int i = 0; i < plain.Count; i++)
            {
                // an other kind keeps its reason (it comes first); every other cell is flagged for the field
                Assert.Equal(
                    plain[i].ReviewReason is ReviewReasons.OtherCell or ReviewReasons.PossibleOtherCell ? plain[i].ReviewReason : ReviewReasons.UnfamiliarStain,
                    inStrangeField[i].ReviewReason);
            }

            Assert.Contains(plain, c => !c.NeedsReview); // the test shows a cell the field check flags that would be accepted
        }
        finally
        {
            Array.ForEach(crops, c => c.Dispose());
        }
    }

    [Fact]
    public void The_colour_normalisation_and_the_model_input_match_the_training_script()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        using var parity = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "models", "leukocyte-cnn.parity.json")));
        var normalisation = classifier.Card.Input.ColourNormalisation;
        Assert.Equal(normalisation is not null, parity.RootElement.TryGetProperty("colour", out var colour));
        if (normalisation is null)
        {
            return; // a model without colour normalisation: Preprocess scales the pixels, as the ONNX parity test covers
        }

        var shape = colour.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var rgb = colour.GetProperty("rgb").EnumerateArray().Select(e => e.GetByte()).ToArray();
        var expected = colour.GetProperty("normalised").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        int plane = shape[1] * shape[2];
        for (int i = 0; i < shape[0]; i++)
        {
            using var rgbCrop = Mat.FromPixelData(shape[1], shape[2], MatType.CV_8UC3, rgb[(i * plane * 3)..((i + 1) * plane * 3)]);
            using var bgr = new Mat();
            Cv2.CvtColor(rgbCrop, bgr, ColorConversionCodes.RGB2BGR);
            var input = classifier.Preprocess([bgr]);
            for (int c = 0; c < 3; c++)
            {
                float mean = (float)classifier.Card.Input.Mean[c], std = (float)classifier.Card.Input.Std[c];
                for (int p = 0; p < plane; p++)
                {
                    float want = expected[(((i * 3) + c) * plane) + p];
                    float got = (input[(c * plane) + p] * std) + mean;
                    Assert.True(Math.Abs(want - got) < 1e-4, $"crop {i}, channel {c}, pixel {p}: Python {want}, C# {got}");
                }
            }
        }
    }

    /// <summary>The crops of the committed sample cells (one per image), as the segmenter cuts them.</summary>
    private static List<Mat> SampleCrops()
    {
        var crops = new List<Mat>();
        foreach (var file in Directory.GetFiles(Path.Combine("samples", "cells"), "*.*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".md", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var image = Leuko.Core.Imaging.ImageDecoder.DecodeFile(file);
            using var result = new Leuko.Core.Segmentation.LeukocyteSegmenter().Segment(image);
            crops.AddRange(result.Leukocytes.Take(1).Select(l => l.Crop.Clone()));
        }

        return crops;
    }

    [Fact]
    public void With_a_sure_confidence_a_cell_the_single_view_is_sure_of_keeps_it_and_the_others_get_the_eight_views()
    {
        var crops = SampleCrops();
        try
        {
            double sure = 0.9;
            using var dihedral = LeukocyteClassifier.Load(ModelWithCard(card => { card["testTimeAugmentation"] = "dihedral8"; card.Remove("sureConfidence"); }));
            using var adaptive = LeukocyteClassifier.Load(ModelWithCard(card => { card["testTimeAugmentation"] = "dihedral8"; card["sureConfidence"] = sure; }));
            var input = dihedral.Preprocess(crops);
            var (plain, plainDistance) = dihedral.Run(input, crops.Count);
            var (eight, eightDistance) = dihedral.DihedralMean(input, crops.Count);
            long before = adaptive.ViewsRun;
            var (served, servedDistance) = adaptive.Infer(input, crops.Count);
            int classes = dihedral.Card.Classes.Count, unsure = 0;
            for (int i = 0; i < crops.Count; i++)
            {
                // Sure after the card's prior correction of the other kinds, as the classifier serves the cell.
                var row = plain.AsSpan(i * classes, classes).ToArray();
                for (int c = 0; c < classes && adaptive.Card.LogitOffsets is { } offsets; c++)
                {
                    row[c] += (float)offsets[c];
                }

                bool isSure = LeukocyteClassifier.Softmax(row, 1).Max() >= sure;
                unsure += isSure ? 0 : 1;
                var expected = isSure ? plain : eight;
                Assert.Equal(expected.AsSpan(i * classes, classes).ToArray(), served.AsSpan(i * classes, classes).ToArray());
                Assert.Equal((isSure ? plainDistance : eightDistance)![i], servedDistance![i]);
            }

            // Both kinds occur among the samples, and the views run are one per cell plus eight per unsure cell.
            Assert.InRange(unsure, 1, crops.Count - 1);
            Assert.Equal(crops.Count + (8 * unsure), adaptive.ViewsRun - before);
        }
        finally
        {
            crops.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void A_sure_confidence_without_dihedral_averaging_or_outside_0_to_1_is_refused()
    {
        Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(ModelWithCard(card => { card["testTimeAugmentation"] = "none"; card["sureConfidence"] = 0.9; })));
        Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(ModelWithCard(card => { card["testTimeAugmentation"] = "dihedral8"; card["sureConfidence"] = 1.5; })));
    }

    [Fact]
    public void A_cell_of_a_stain_unlike_every_training_source_is_flagged_whatever_its_confidence()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        var domain = classifier.Card.StainDomain!;
        var (crops, _, distances) = StainParity();
        try
        {
            // A training source's validation crop, and the same crop as a microscope with another stain would show it:
            // the red and blue channels exchanged (a blue-green field with orange nuclei), so no training source is near.
            int familiar = Array.FindIndex(distances, d => d <= 1);
            Assert.True(familiar >= 0, "a parity crop of a familiar stain");
            using var recoloured = new Mat();
            Cv2.CvtColor(crops[familiar], recoloured, ColorConversionCodes.BGR2RGB);

            Assert.NotEqual(ReviewReasons.UnfamiliarStain, classifier.Classify(crops[familiar]).ReviewReason);
            Assert.True(domain.Distance(StainFingerprint.Of(recoloured)) > 1);
            var cell = classifier.Classify(recoloured);
            Assert.True(cell.NeedsReview);
            Assert.Contains(cell.ReviewReason, new[] { ReviewReasons.UnfamiliarStain, ReviewReasons.OtherCell });

            using var withoutDomain = LeukocyteClassifier.Load(ModelWithCard(card => card.Remove("stainDomain")));
            Assert.NotEqual(ReviewReasons.UnfamiliarStain, withoutDomain.Classify(recoloured).ReviewReason);
        }
        finally
        {
            Array.ForEach(crops, c => c.Dispose());
        }
    }

    [Fact]
    public void A_card_whose_stain_domain_this_build_cannot_compute_is_refused()
    {
        var path = ModelWithCard(card => card["stainDomain"]!["features"] = "hsv-something-else");

        var e = Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path));
        Assert.Contains("stain domain", e.Message);
    }

    [Fact]
    public void Preprocessing_follows_the_model_card()
    {
        using var classifier = LeukocyteClassifier.Load(ModelPath);
        var input = classifier.Card.Input;
        using var crop = new Mat(150, 150, MatType.CV_8UC3, new Scalar(10, 100, 200)); // B, G, R

        var tensor = classifier.Preprocess([crop, crop]);

        int plane = input.Width * input.Height;
        Assert.Equal(2 * 3 * plane, tensor.Length);
        byte[] rgb = input.ColourOrder == "RGB" ? [200, 100, 10] : [10, 100, 200];
        for (int c = 0; c < 3; c++)
        {
            float expected = (float)(((rgb[c] * input.Scale) - input.Mean[c]) / input.Std[c]);
            Assert.Equal(expected, tensor[c * plane], 4);
            Assert.Equal(expected, tensor[(3 * plane) + (c * plane) + plane - 1], 4); // second crop, last pixel
        }
    }

    [Fact]
    public void Softmax_with_temperature_is_a_distribution_that_flattens_as_temperature_rises()
    {
        float[] logits = [2f, 1f, 0f, -1f];
        var sharp = LeukocyteClassifier.Softmax(logits, 0.5);
        var flat = LeukocyteClassifier.Softmax(logits, 2.0);

        Assert.Equal(1.0, sharp.Sum(), 5);
        Assert.Equal(1.0, flat.Sum(), 5);
        Assert.True(sharp[0] > flat[0]);
        Assert.Equal(Math.Exp(2) / (Math.Exp(2) + Math.Exp(1) + 1 + Math.Exp(-1)), LeukocyteClassifier.Softmax(logits, 1.0)[0], 5);
    }

    [Theory]
    [InlineData(1.0, true)]
    [InlineData(0.0, false)]
    public void Cells_under_the_review_threshold_need_review(double threshold, bool needsReview)
    {
        // Only the confidence rule here: no other kinds, no evidence or distance bound.
        using var classifier = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = threshold;
            card["otherClasses"] = new JsonArray();
            card.Remove("minEvidence");
            card.Remove("maxDistance");
            card.Remove("stainDomain"); // a flat crop is no stain
        }));
        using var crop = new Mat(100, 100, MatType.CV_8UC3, new Scalar(200, 120, 140));

        var result = classifier.Classify(crop);

        Assert.Equal(needsReview, result.NeedsReview);
        Assert.Equal(needsReview ? ReviewReasons.LowConfidence : null, result.ReviewReason);
        Assert.Equal(classifier.Card.Classes.Count, result.Probabilities.Count);
        Assert.Contains(result.Label, classifier.Card.Classes);
    }

    [Theory]
    [InlineData(64, 64, null)]
    [InlineData(300, 300, null)]
    [InlineData(63, 63, ReviewReasons.LowResolution)]
    [InlineData(64, 40, ReviewReasons.LowResolution)]
    [InlineData(20, 20, ReviewReasons.LowResolution)]
    public void A_crop_with_fewer_pixels_than_the_model_takes_is_flagged_low_resolution(int width, int height, string? reason)
    {
        // Every other rule off: what is left is the crop's size against the model's input (64 x 64).
        using var classifier = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = 0.0;
            card["otherClasses"] = new JsonArray();
            card.Remove("minEvidence");
            card.Remove("maxDistance");
            card.Remove("stainDomain");
        }));
        Assert.Equal(64, classifier.Card.Input.Width);
        using var crop = new Mat(height, width, MatType.CV_8UC3, new Scalar(200, 120, 140));

        var result = classifier.Classify(crop);

        Assert.Equal(reason, result.ReviewReason);
        Assert.Equal(reason is not null, result.NeedsReview);
    }

    [Fact]
    public void A_cell_of_an_other_kind_or_with_too_little_evidence_always_needs_review()
    {
        using var crop = new Mat(100, 100, MatType.CV_8UC3, new Scalar(200, 120, 140));
        string label;
        using (var plain = LeukocyteClassifier.Load(ModelWithCard(card => card["otherClasses"] = new JsonArray())))
        {
            label = plain.Classify(crop).Label;
        }

        using var other = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = 0.0;
            card["otherClasses"] = new JsonArray(JsonValue.Create(label));
        }));
        var asOther = other.Classify(crop);
        Assert.Equal(label, asOther.Label);
        Assert.Equal(ReviewReasons.OtherCell, asOther.ReviewReason);

        using var atypical = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = 0.0;
            card["otherClasses"] = new JsonArray();
            card.Remove("stainDomain");
            card["minEvidence"] = 1e9; // more evidence than any logits give
        }));
        Assert.Equal(ReviewReasons.Atypical, atypical.Classify(crop).ReviewReason);

        using var far = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = 0.0;
            card["otherClasses"] = new JsonArray();
            card.Remove("stainDomain");
            card.Remove("minEvidence");
            card["maxDistance"] = 0.0; // every cell is some distance from the training classes
        }));
        Assert.Equal(ReviewReasons.Atypical, far.Classify(crop).ReviewReason);

        using var near = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card["reviewThreshold"] = 0.0;
            card["otherClasses"] = new JsonArray();
            card.Remove("stainDomain");
            card.Remove("minEvidence");
            card["maxDistance"] = 1e9;
        }));
        Assert.Null(near.Classify(crop).ReviewReason);
    }

    [Fact]
    public void The_prior_correction_moves_a_cell_out_of_an_other_kind_and_flags_it()
    {
        // The crop's class without any correction, then that class made an other kind with a large negative offset.
        using var crop = new Mat(100, 100, MatType.CV_8UC3, new Scalar(200, 120, 140));
        CellClassification plain;
        using (var uncorrected = LeukocyteClassifier.Load(ModelWithCard(card => { card.Remove("logitOffsets"); card["reviewThreshold"] = 0.0; })))
        {
            plain = uncorrected.Classify(crop);
        }

        int k = plain.Probabilities.Count, index = -1;
        using var corrected = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            var classes = card["classes"]!.AsArray().Select(c => (string)c!).ToList();
            index = classes.IndexOf(plain.Label);
            card["otherClasses"] = new JsonArray(JsonValue.Create(plain.Label));
            card["logitOffsets"] = new JsonArray(Enumerable.Range(0, k).Select(c => (JsonNode)JsonValue.Create(c == index ? -50.0 : 0.0)!).ToArray());
            card["reviewThreshold"] = 0.0;
        }));

        var result = corrected.Classify(crop);

        Assert.NotEqual(plain.Label, result.Label);
        Assert.Equal(ReviewReasons.PossibleOtherCell, result.ReviewReason);
        Assert.True(result.Probabilities[index] < 1e-6, "the corrected probabilities are reported");

        // A zero offset everywhere changes nothing.
        using var zero = LeukocyteClassifier.Load(ModelWithCard(card =>
        {
            card.Remove("logitOffsets");
            card["logitOffsets"] = new JsonArray(Enumerable.Range(0, k).Select(_ => (JsonNode)JsonValue.Create(0.0)!).ToArray());
            card["reviewThreshold"] = 0.0;
        }));
        Assert.Equal(plain.Probabilities, zero.Classify(crop).Probabilities);
    }

    [Fact]
    public void A_card_given_for_the_model_is_refused_with_the_path_of_the_model()
    {
        var onnx = ModelWithCard(_ => { });
        var e = Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(Path.ChangeExtension(onnx, ".json")));
        Assert.Contains("is a model card", e.Message, StringComparison.Ordinal);
        Assert.Contains(onnx, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Logit_offsets_of_the_wrong_length_are_refused_at_load()
    {
        var e = Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(ModelWithCard(card => card["logitOffsets"] = new JsonArray(JsonValue.Create(-1.0)))));
        Assert.Contains("logitOffsets", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_trained_on_another_crop_window_is_refused_at_load()
    {
        var path = ModelWithCard(card => card["input"]!["windowMicrons"] = 30.0);

        var e = Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path));

        Assert.Contains("30 µm window", e.Message);
    }

    [Fact]
    public void Dihedral_averaging_does_not_depend_on_the_orientation_of_the_cell()
    {
        // Every cell averaged (no sureConfidence: with it, a cell its single view is sure of keeps that view).
        using var classifier = LeukocyteClassifier.Load(ModelWithCard(card => { card["testTimeAugmentation"] = "dihedral8"; card.Remove("sureConfidence"); }));
        using var image = new Mat(new Size(120, 120), MatType.CV_8UC3, new Scalar(200, 190, 200));
        image.Circle(new Point(45, 60), 30, new Scalar(180, 80, 120), -1);   // an off-centre "nucleus"
        image.Rectangle(new Rect(70, 20, 30, 12), new Scalar(120, 120, 220), -1);
        using var turned = new Mat();
        Cv2.Rotate(image, turned, RotateFlags.Rotate90Clockwise);
        using var mirrored = new Mat();
        Cv2.Flip(image, mirrored, FlipMode.Y);

        var results = classifier.Classify([image, turned, mirrored]);

        for (int c = 0; c < 4; c++)
        {
            Assert.Equal(results[0].Probabilities[c], results[1].Probabilities[c], 4);
            Assert.Equal(results[0].Probabilities[c], results[2].Probabilities[c], 4);
        }
    }

    [Fact]
    public void A_classifier_used_after_it_is_disposed_says_so_instead_of_calling_a_released_session()
    {
        var classifier = LeukocyteClassifier.Load(ModelPath);
        using var crop = new Mat(100, 100, MatType.CV_8UC3, new Scalar(200, 120, 140));
        classifier.Classify(crop);

        classifier.Dispose();
        classifier.Dispose(); // twice is harmless

        Assert.Throws<ObjectDisposedException>(() => classifier.Classify(crop));
    }

    [Fact]
    public async Task Dispose_waits_for_the_model_calls_in_flight_and_later_calls_are_refused()
    {
        var classifier = LeukocyteClassifier.Load(ModelPath);
        var crops = Enumerable.Range(0, 64).Select(_ => new Mat(100, 100, MatType.CV_8UC3, new Scalar(200, 120, 140))).ToList();
        try
        {
            using var started = new ManualResetEventSlim();
            // Callers that keep classifying until the classifier is disposed under them, as a host's threads would at shutdown.
            var callers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
            {
                int calls = 0;
                while (true)
                {
                    try
                    {
                        classifier.Classify(crops);
                        calls++;
                        started.Set();
                    }
                    catch (ObjectDisposedException)
                    {
                        return calls;
                    }
                }
            })).ToList();
            Assert.True(started.Wait(TimeSpan.FromMinutes(1)));

            classifier.Dispose(); // while calls are running

            var calls = await Task.WhenAll(callers).WaitAsync(TimeSpan.FromMinutes(1));
            Assert.True(calls.Sum() > 0);
        }
        finally
        {
            crops.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public void A_missing_model_is_refused_at_load()
    {
        var e = Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(Path.Combine(_temp, "none.onnx")));
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void A_model_without_its_card_is_refused()
    {
        var path = Path.Combine(_temp, "lonely.onnx");
        File.Copy(ModelPath, path);
        Assert.Contains("card not found", Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path)).Message);
    }

    [Fact]
    public void A_corrupt_model_is_refused()
    {
        var garbage = new byte[4096];
        new Random(7).NextBytes(garbage);
        var path = ModelWithCard(card => card.Remove("onnxSha256"), garbage);
        Assert.Contains("could not be loaded", Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path)).Message);
    }

    [Fact]
    public void A_model_that_is_not_the_one_its_card_describes_is_refused()
    {
        var bytes = File.ReadAllBytes(ModelPath);
        bytes[^1] ^= 0xFF;
        var path = ModelWithCard(_ => { }, bytes);
        Assert.Contains("does not match its card", Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path)).Message);
    }

    [Fact]
    public void A_card_with_another_input_size_is_refused()
    {
        var path = ModelWithCard(card =>
        {
            card["input"]!["width"] = 96;
            card["input"]!["height"] = 96;
        });
        Assert.Contains("does not match its card", Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path)).Message);
    }

    [Fact]
    public void An_unreadable_card_is_refused()
    {
        var path = Path.Combine(_temp, "model.onnx");
        File.Copy(ModelPath, path);
        File.WriteAllText(Path.ChangeExtension(path, ".json"), "{ not json");
        Assert.Contains("not valid", Assert.Throws<ModelLoadException>(() => LeukocyteClassifier.Load(path)).Message);
    }
}
