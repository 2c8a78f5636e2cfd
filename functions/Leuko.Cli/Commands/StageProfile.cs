using Leuko.Core.Classification;
using Leuko.Core.Imaging;
using Leuko.Core.Scale;
using Leuko.Core.Segmentation;
using Leuko.Pipeline;
using OpenCvSharp;

namespace Leuko.Cli.Commands;

/// <summary>
/// Where <c>leuko analyze</c>'s CPU goes, stage by stage: each image through the same calls the pipeline makes, on
/// one thread with ONNX Runtime on that thread too, timed in thread CPU milliseconds (<see cref="ThreadCpuClock"/>).
/// </summary>
internal sealed class StageProfile
{
    public int Images { get; private set; }

    public int Cells { get; private set; }

    public double Read { get; private set; }

    public double Decode { get; private set; }

    public double Scale { get; private set; }

    public double Segment { get; private set; }

    /// <summary>The crops' hand-off between the stages: encoded (BMP, in memory) by segmentation and decoded by classification.</summary>
    public double HandOff { get; private set; }

    public double Classify { get; private set; }

    /// <summary>Drawing the outlines and writing the annotated JPEG, with the second decoding of the image it does.</summary>
    public double Annotate { get; private set; }

    /// <summary>The model's views run for the profiled images' cells (the warm-up image's not counted).</summary>
    public long Views { get; private set; }

    public double Total => Read + Decode + Scale + Segment + HandOff + Classify + Annotate;

    /// <summary>Profiles up to <paramref name="limit"/> of <paramref name="files"/>, after one image of warm-up.</summary>
    public static StageProfile Run(IReadOnlyList<InputFile> files, LeukocyteClassifier classifier, LeukocyteSegmenter segmenter, int limit)
    {
        var profile = new StageProfile();
        var classes = CellClasses.Of(classifier.Card).All;
        var estimator = new RedCellScaleEstimator(segmenter.Options.Scale);
        for (int i = -1; i < Math.Min(limit, files.Count); i++)
        {
            var file = files[Math.Max(i, 0)];
            double t0 = ThreadCpuClock.Milliseconds();
            var data = ImageFile.ReadAll(file.Path);
            double t1 = ThreadCpuClock.Milliseconds();
            Mat image;
            try
            {
                image = ImageDecoder.Decode(data);
            }
            catch (InvalidImageException)
            {
                continue;
            }

            using (image)
            {
                double t2 = ThreadCpuClock.Milliseconds();
                var (scale, field) = estimator.EstimateWithField(image);
                double t3 = ThreadCpuClock.Milliseconds();
                using var result = segmenter.Segment(image, scale, field);
                double t4 = ThreadCpuClock.Milliseconds();
                var crops = result.Leukocytes.Select(l =>
                {
                    Cv2.ImEncode(".bmp", l.Crop, out var encoded);
                    return Cv2.ImDecode(encoded, ImreadModes.Color);
                }).ToList();
                double t5 = ThreadCpuClock.Milliseconds();
                long viewsBefore = classifier.ViewsRun;
                var classified = crops.Count > 0 ? classifier.Classify(crops, Enumerable.Repeat<FieldColours?>(result.Field, crops.Count).ToList()) : [];
                double t6 = ThreadCpuClock.Milliseconds();
                var cells = result.Leukocytes.Select((l, k) => new CellResult(
                    k, new Box(l.Box.X, l.Box.Y, l.Box.Width, l.Box.Height), classified[k].Label, classified[k].Confidence,
                    new Dictionary<string, double>(), classified[k].NeedsReview, l.Area, classified[k].ReviewReason)).ToList();
                using (var again = ImageDecoder.Decode(data))
                using (var drawn = Annotator.Draw(again, cells, result.Leukocytes.Select(l => l.Contour).ToList(), classes))
                {
                    Cv2.ImEncode(".jpg", drawn, out _, new ImageEncodingParam(ImwriteFlags.JpegQuality, 90));
                }

                double t7 = ThreadCpuClock.Milliseconds();
                crops.ForEach(c => c.Dispose());
                if (i < 0)
                {
                    continue; // warm-up: first calls load code and native state
                }

                profile.Images++;
                profile.Cells += cells.Count;
                profile.Read += t1 - t0;
                profile.Decode += t2 - t1;
                profile.Scale += t3 - t2;
                profile.Segment += t4 - t3;
                profile.HandOff += t5 - t4;
                profile.Classify += t6 - t5;
                profile.Views += classifier.ViewsRun - viewsBefore;
                profile.Annotate += t7 - t6;
            }
        }

        return profile;
    }
}
