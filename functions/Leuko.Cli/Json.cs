using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Leuko.Cli.Analysis;
using Leuko.Cli.Commands;

namespace Leuko.Cli;

internal static class Json
{
    /// <summary>
    /// The CLI's files (results.json, segmentation.json): their types by generated code (<see cref="CliJsonContext"/>),
    /// anything else by reflection. The same bytes as reflection alone; with the pipeline's own context it took a
    /// one-image run from 1,018 methods compiled at run time to 810 (README.md, "Throughput").
    /// </summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = JsonTypeInfoResolver.Combine(CliJsonContext.Default, new DefaultJsonTypeInfoResolver()),
    };
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelRecord))]
[JsonSerializable(typeof(ImageRecord))]
[JsonSerializable(typeof(IReadOnlyList<SkippedInput>))]
[JsonSerializable(typeof(RunSummary))]
[JsonSerializable(typeof(SegmentCommand.SegmentationDocument))]
[JsonSerializable(typeof(SegmentCommand.ImageRecord), TypeInfoPropertyName = "SegmentedImageRecord")]
internal sealed partial class CliJsonContext : JsonSerializerContext;
