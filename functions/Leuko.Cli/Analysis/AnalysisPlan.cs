using Leuko.Core.Imaging;
using Leuko.Pipeline.Archives;

namespace Leuko.Cli.Analysis;

/// <summary>One image to analyse, in input order: a file, an archive entry, or an input already known to have failed.</summary>
/// <param name="Source">The input path as given, or <c>archive.zip!entry</c>.</param>
/// <param name="Name">A unique relative name for its outputs (annotated image), safe to join under the output folder and short
/// enough for any file system (<see cref="OutputNames"/>: the cloud names an archive's uploads alike).</param>
/// <param name="File">The file to read, for a plain image.</param>
/// <param name="Archive">The archive holding it, for an entry.</param>
/// <param name="Entry">The entry, for an archive entry.</param>
/// <param name="Error">Why it failed before being read (refused archive or entry).</param>
internal sealed record PlannedImage(int Index, string Source, string Name, string? File, ImageArchive? Archive, ArchiveEntry? Entry, string? Error);

/// <summary>An input that is not analysed and is not an error: a folder's or an archive's file that is not an image, or a nested archive.</summary>
internal sealed record SkippedInput(string Source, string Reason);

/// <summary>
/// Every input of a run, decided before any image is read: images (files and archive entries) in a stable order,
/// each exactly once, and the entries skipped. Archives are opened to read their central directories and held
/// open for the run.
/// </summary>
internal sealed class AnalysisPlan : IDisposable
{
    private static readonly HashSet<string> Extensions =
        new(Leuko.Core.Imaging.ImageFormats.Extensions.Append(".zip"), StringComparer.OrdinalIgnoreCase);

    private readonly List<ImageArchive> _archives = [];

    private AnalysisPlan()
    {
    }

    public List<PlannedImage> Images { get; } = [];

    public List<SkippedInput> Skipped { get; } = [];

    /// <summary>Expands files, folders (recursively: images and zip archives) and zip archives; <paramref name="output"/>, where the run writes, is not searched.</summary>
    /// <exception cref="FileNotFoundException">A path does not exist.</exception>
    /// <exception cref="OutputAmongInputsException">A folder given is <paramref name="output"/>.</exception>
    public static AnalysisPlan Create(IEnumerable<string> paths, ArchiveLimits limits, string? output = null)
    {
        var plan = new AnalysisPlan();
        var names = new OutputNames();
        try
        {
            var notTaken = new List<(string Path, string Reason)>();
            foreach (var input in InputFiles.Expand(paths, Extensions, notTaken, output))
            {
                if (IsArchive(input.Path))
                {
                    plan.AddArchive(input, limits, names);
                }
                else
                {
                    plan.Add(input.Path, input.Name, names, file: input.Path);
                }
            }

            plan.Skipped.AddRange(notTaken.Select(f => new SkippedInput(f.Path, f.Reason)));
        }
        catch
        {
            plan.Dispose();
            throw;
        }

        return plan;
    }

    private void AddArchive(InputFile input, ArchiveLimits limits, OutputNames names)
    {
        ImageArchive archive;
        try
        {
            archive = ImageArchive.Open(File.OpenRead(input.Path), limits);
        }
        catch (Exception e) when (e is ArchiveRejectedException or IOException or UnauthorizedAccessException)
        {
            Add(input.Path, input.Name, names, error: $"archive refused: {e.Message}");
            return;
        }

        _archives.Add(archive);
        var stem = Path.ChangeExtension(input.Name, null);
        foreach (var entry in archive.Entries)
        {
            var source = $"{input.Path}!{entry.Name}";
            switch (entry.Kind)
            {
                case ArchiveEntryKind.Skipped:
                    Skipped.Add(new SkippedInput(source, entry.Reason!));
                    break;
                case ArchiveEntryKind.Refused:
                    Add(source, $"{stem}/entry-{entry.Index}", names, error: entry.Reason);
                    break;
                default:
                    Add(source, $"{stem}/{entry.Name}", names, archive: archive, entry: entry);
                    break;
            }
        }
    }

    private void Add(string source, string name, OutputNames names, string? file = null, ImageArchive? archive = null,
        ArchiveEntry? entry = null, string? error = null)
    {
        Images.Add(new PlannedImage(Images.Count, source, names.Add(name), file, archive, entry, error));
    }

    /// <summary>
    /// Archive or image by content, as images are recognised: a zip's magic makes an archive of any name, an image's
    /// makes an image of a <c>.zip</c>. A file that is neither keeps the kind its name says, so a broken <c>.zip</c>
    /// is refused as an archive and anything else as an image, each with its reason.
    /// </summary>
    internal static bool IsArchive(string path)
    {
        Span<byte> head = stackalloc byte[16];
        int read;
        try
        {
            if (ImageFile.Target(path) is not { Exists: true, Length: > 0 })
            {
                return false; // an empty file, a named pipe or a device is not opened: reading it as an image says why
            }

            using var f = File.OpenRead(path);
            read = f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // reading it as an image reports why it cannot be read
        }

        head = head[..read];
        if (ImageArchive.IsZip(head))
        {
            return true;
        }

        return ImageHeader.Sniff(head) is null && path.EndsWith(".zip", StringComparison.OrdinalIgnoreCase);
    }

    public void Dispose()
    {
        foreach (var archive in _archives)
        {
            archive.Dispose();
        }
    }
}
