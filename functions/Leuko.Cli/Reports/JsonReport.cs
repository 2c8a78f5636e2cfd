using System.Text.Json;
using Leuko.Cli.Analysis;

namespace Leuko.Cli.Reports;

/// <summary>
/// <c>results.json</c> (<see cref="ResultsDocument"/>), written as the run goes: the model first, then each image as it
/// is handed on in input order, then the skipped entries and the summary. The bytes are those of serializing the whole
/// document at once (same options, same indentation), without holding it. It is written as a <see cref="PartFile"/>.
/// </summary>
internal sealed class JsonReport : IResultFile
{
    private readonly PartFile _part;
    private readonly FileStream _file;
    private readonly Utf8JsonWriter _json;
    private readonly IReadOnlyList<SkippedInput> _skipped;

    public JsonReport(string path, ModelRecord model, IReadOnlyList<SkippedInput> skipped)
    {
        Path = path;
        _skipped = skipped;
        _part = new PartFile(path);
        _file = File.Create(_part.Part);
        _json = new Utf8JsonWriter(_file, new JsonWriterOptions
        {
            Indented = Json.Options.WriteIndented,
            IndentCharacter = Json.Options.IndentCharacter,
            IndentSize = Json.Options.IndentSize,
            NewLine = Json.Options.NewLine,
            Encoder = Json.Options.Encoder,
            MaxDepth = Json.Options.MaxDepth,
        });
        _json.WriteStartObject();
        _json.WriteNumber(Name(nameof(ResultsDocument.SchemaVersion)), ResultsDocument.CurrentVersion);
        _json.WritePropertyName(Name(nameof(ResultsDocument.Model)));
        JsonSerializer.Serialize(_json, model, Json.Options);
        _json.WriteStartArray(Name(nameof(ResultsDocument.Images)));
    }

    public string Path { get; }

    public void Write(ImageRecord image)
    {
        JsonSerializer.Serialize(_json, image, Json.Options);
        if (_json.BytesPending > 1 << 16)
        {
            _json.Flush();
        }
    }

    public void Complete(RunSummary summary)
    {
        _json.WriteEndArray();
        _json.WritePropertyName(Name(nameof(ResultsDocument.Skipped)));
        JsonSerializer.Serialize(_json, _skipped, Json.Options);
        _json.WritePropertyName(Name(nameof(ResultsDocument.Summary)));
        JsonSerializer.Serialize(_json, summary, Json.Options);
        _json.WriteEndObject();
        Close();
        _part.Publish();
    }

    public void Dispose()
    {
        PartFile.CloseAbandoned(_json, _file);
        _part.Discard();
    }

    private void Close()
    {
        _json.Dispose();
        _file.Dispose();
    }

    private static string Name(string property) => Json.Options.PropertyNamingPolicy!.ConvertName(property);
}

/// <summary>A result file written as the run goes: each image in input order, then the run's summary.</summary>
internal interface IResultFile : IDisposable
{
    string Path { get; }

    void Write(ImageRecord image);

    void Complete(RunSummary summary);
}
