using Leuko.Core.Segmentation;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Stages;

/// <summary>Deterministic ids: the same upload always gets the same id, so every write is an idempotent upsert.</summary>
public static class PipelineIds
{
    /// <summary>The id of the image in <c>uploads/NAME</c>.</summary>
    public static string Image(string uploadName) => Hash($"{Containers.Uploads}/{uploadName}");

    /// <summary>The id of the batch made from <c>archives/NAME</c>.</summary>
    public static string Batch(string archiveName) => Hash($"{Containers.Archives}/{archiveName}");

    /// <summary>A message id for one version of an image: a replay of that version is a duplicate, a new upload is not.</summary>
    public static string Message(string imageId, string etag) => $"{imageId}-{Hash(etag)[..8]}";

    /// <summary>
    /// Where one version of an upload keeps its crops and manifest in <c>crops/</c>: <c>IMAGEID/VERSION/</c>, so the
    /// crops of a version are exactly that version's and a new upload removes the old one's whole.
    /// </summary>
    public static string CropFolder(string imageId, string etag) => $"{imageId}/{Hash(etag)[..12]}/";

    /// <summary>The manifest of one version of an upload, as the classification message names it (<c>crops/IMAGEID/VERSION/manifest.json</c>).</summary>
    public static string Manifest(string imageId, string etag) => $"{Containers.Crops}/{CropFolder(imageId, etag)}manifest.json";

    /// <summary>
    /// The batch an upload belongs to, from its <see cref="Containers.BatchIdKey"/> metadata: only an id such as the
    /// archive stage writes (<see cref="Batch"/>); anything else (metadata set by hand, a key the tables cannot hold,
    /// such as <c>a/b</c>) is no batch's, and the image is analysed on its own.
    /// </summary>
    public static string? BatchOf(IReadOnlyDictionary<string, string> metadata) =>
        metadata.GetValueOrDefault(Containers.BatchIdKey) is { Length: IdLength } id && id.All(char.IsAsciiHexDigitLower) ? id : null;

    private const int IdLength = 24;

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..IdLength];
}

/// <summary>
/// The classification message, never image bytes: the manifest of what segmentation found (the crops' names and
/// geometry), carried in the message itself when it fits (<see cref="Contents"/>), else a claim check on the
/// manifest blob that segmentation wrote beside the crops.
/// </summary>
/// <param name="ImageId">The image.</param>
/// <param name="Manifest">The manifest's name, <c>crops/IMAGEID/VERSION/manifest.json</c> (<see cref="PipelineIds.Manifest"/>): the
/// version the message is for; a blob of that name exists only when <see cref="Contents"/> is null.</param>
public sealed record ClassificationMessage(string ImageId, string Manifest)
{
    /// <summary>2: the manifest in the message when it fits, and the row's ETag (1: always a manifest blob).</summary>
    public const int Version = 2;

    public int SchemaVersion { get; init; } = Version;

    /// <summary>The manifest itself (null: read the blob <see cref="Manifest"/>).</summary>
    public CropManifest? Contents { get; init; }

    /// <summary>
    /// The image row's ETag as segmentation wrote it: classification writes the final row If-Match this without
    /// reading the row first, and reads it only when that write loses (null: read it first).
    /// </summary>
    public string? RowETag { get; init; }
}

/// <summary>What segmentation found in one image, for classification: the crops and their geometry.</summary>
public sealed record CropManifest(
    string ImageId,
    string Source,
    string Upload,
    string? BatchId,
    string BlobETag,
    int Width,
    int Height,
    double SegmentMs,
    IReadOnlyList<CropEntry> Cells,
    ScaleRecord? Scale = null,
    int? Orientation = null)
{
    /// <summary>The colours of the field's glass and red cells, for the classifier's check of the microscope (null: not measured).</summary>
    public FieldColours? Field { get; init; }
}

/// <summary>One segmented cell: where it is and where its crop is (<c>crops/IMAGEID/VERSION/INDEX.png</c>, lossless).</summary>
public sealed record CropEntry(int Index, Box Box, int Area, string Contour, string Crop);

/// <summary>JSON for messages, manifests and the HTTP API (camelCase).</summary>
public static class PipelineJson
{
    /// <summary>
    /// The stages' messages and manifests by generated code (<see cref="PipelineJsonContext"/>: no reflection or emitted
    /// code at start-up, nor for each image of <c>leuko analyze</c>, whose stages talk through the same messages);
    /// anything else (the HTTP API's views, webhook payloads) by reflection. The same bytes either way.
    /// </summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = JsonTypeInfoResolver.Combine(PipelineJsonContext.Default, new DefaultJsonTypeInfoResolver()),
    };
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ClassificationMessage))]
[JsonSerializable(typeof(CropManifest))]
[JsonSerializable(typeof(Webhooks.WebhookDelivery))]
internal sealed partial class PipelineJsonContext : JsonSerializerContext;

/// <summary>The traces of the pipeline: one activity per stage, linked from upload to table row by W3C traceparent.</summary>
public static class PipelineTelemetry
{
    public const string SourceName = "Leuko.Pipeline";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>The message property that carries the W3C trace context.</summary>
    public const string TraceParent = "traceparent";

    /// <summary>
    /// The W3C traceparent of a stage's work: its activity's id when something listens (OpenTelemetry in the hosts),
    /// otherwise a new span in the parent's trace (or a new trace), so the context flows from upload to table row
    /// whether or not traces are collected.
    /// </summary>
    public static string TraceParentOf(Activity? activity, ActivityContext parent)
    {
        if (activity?.Id is { } id && activity.IdFormat == ActivityIdFormat.W3C)
        {
            return id;
        }

        var traceId = parent.TraceId == default ? ActivityTraceId.CreateRandom() : parent.TraceId;
        var flags = parent.TraceId == default ? "01" : ((int)parent.TraceFlags).ToString("x2", System.Globalization.CultureInfo.InvariantCulture);
        return $"00-{traceId.ToHexString()}-{ActivitySpanId.CreateRandom().ToHexString()}-{flags}";
    }
}
