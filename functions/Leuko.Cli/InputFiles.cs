using System.Runtime.InteropServices;

namespace Leuko.Cli;

/// <summary>An input image: where it is, and the name its outputs take (its path relative to the folder given, or its file name).</summary>
internal sealed record InputFile(string Path, string Name);

/// <summary>An input folder is the output folder too (<see cref="InputFiles.Expand"/>).</summary>
internal sealed class OutputAmongInputsException(string message) : Exception(message);

/// <summary>Expands the files and folders given on a command line into image files.</summary>
internal static class InputFiles
{
    /// <summary>Why an input listed cannot be read as a file any more (FileNotFoundException): said alike by every command.</summary>
    public const string Gone = "the file is gone: removed after the run began, or a link to nothing";

    /// <summary>
    /// Folders are searched recursively for <paramref name="extensions"/> (default: image extensions); files named explicitly are always taken, so that a
    /// wrong file is reported rather than silently skipped. Order is stable (ordinal by path); each file once. A folder's
    /// other files go to <paramref name="skipped"/> with the reason, when given. The folder <paramref name="output"/>, where
    /// a command writes (its annotated images, crops and reports), is not searched when it lies in a folder given: a
    /// second run into the same place would otherwise read the first run's outputs as inputs.
    /// </summary>
    /// <exception cref="FileNotFoundException">A path does not exist.</exception>
    /// <exception cref="OutputAmongInputsException">A folder given is <paramref name="output"/> itself.</exception>
    public static IReadOnlyList<InputFile> Expand(IEnumerable<string> paths, IReadOnlySet<string>? extensions = null,
        ICollection<(string Path, string Reason)>? skipped = null, string? output = null)
    {
        extensions ??= Leuko.Core.Imaging.ImageFormats.Extensions;
        var outputReal = output is not null && Directory.Exists(output) ? RealPath(output) : null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var result = new List<InputFile>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                if (outputReal is not null && RealPath(path) == outputReal)
                {
                    throw new OutputAmongInputsException(
                        $"the output folder '{path}' is also an input folder: the results written there would be read as images by the next run; " +
                        "give another --out (a folder inside the inputs, such as results/, is fine: it is not searched)");
                }

                foreach (var file in FilesUnder(path, skipped, outputReal))
                {
                    if (extensions.Contains(System.IO.Path.GetExtension(file)))
                    {
                        Add(file, System.IO.Path.GetRelativePath(path, file));
                    }
                    else
                    {
                        skipped?.Add((file, WhyNotTaken(file, extensions)));
                    }
                }
            }
            else if (File.Exists(path))
            {
                Add(path, System.IO.Path.GetFileName(path));
            }
            else
            {
                throw new FileNotFoundException($"no such file or folder: '{path}'");
            }
        }

        return result;

        void Add(string file, string name)
        {
            if (!seen.Add(System.IO.Path.GetFullPath(file)))
            {
                return;
            }

            // Unique by the name without its extension: outputs replace it (annotated/NAME.jpg, crops/NAME_0.png), so
            // field.jpg and field.png would otherwise write one file.
            name = name.Replace('\\', '/');
            var unique = name;
            for (int n = 2; !names.Add(System.IO.Path.ChangeExtension(unique, null)); n++)
            {
                unique = $"{System.IO.Path.ChangeExtension(name, null)}~{n}{System.IO.Path.GetExtension(name)}";
            }

            result.Add(new InputFile(file, unique));
        }
    }

    /// <summary>
    /// Every file under <paramref name="root"/>, in ordinal order of path. Links to folders are followed, as
    /// <c>find -L</c> does, but each folder is searched once, by its real path, and after every folder that is no link
    /// (so a folder's files keep its own path, not a link's): a link to a folder that holds it (a loop, which would
    /// otherwise be searched without end) or to one already searched adds nothing. A folder that cannot be listed goes
    /// to <paramref name="skipped"/> with the reason; the others are still searched. The folder whose real path is
    /// <paramref name="excluded"/> is not searched.
    /// </summary>
    private static List<string> FilesUnder(string root, ICollection<(string Path, string Reason)>? skipped, string? excluded)
    {
        var files = new List<string>();
        var searched = new HashSet<string>(StringComparer.Ordinal);
        // Above: the real path of the folder a folder was found in, with a trailing slash.
        var folders = new Stack<(string Path, string Above)>([(root, "")]);
        var links = new Queue<(string Path, string Above)>();
        while (folders.TryPop(out var next) || links.TryDequeue(out next))
        {
            var (folder, real) = (next.Path, RealPath(next.Path));
            var within = real.EndsWith('/') ? real : real + "/";
            if (next.Above.StartsWith(within, StringComparison.Ordinal) || !searched.Add(real) || real == excluded)
            {
                continue;
            }

            try
            {
                files.AddRange(Directory.EnumerateFiles(folder));
                var subs = Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal).ToList();
                // Pushed last-first, so that folders are searched in name order whatever the file system's listing order.
                foreach (var sub in Enumerable.Reverse(subs).Where(s => new DirectoryInfo(s).LinkTarget is null))
                {
                    folders.Push((sub, within));
                }

                foreach (var link in subs.Where(s => new DirectoryInfo(s).LinkTarget is not null))
                {
                    links.Enqueue((link, within));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                skipped?.Add((folder, $"the folder cannot be read: {e.Message}"));
            }
        }

        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>The path with every link resolved (libc's realpath), or its full path where that fails.</summary>
    private static string RealPath(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            nint resolved = realpath(path, 0);
            if (resolved != 0)
            {
                try
                {
                    return Marshal.PtrToStringUTF8(resolved)!;
                }
                finally
                {
                    Marshal.FreeHGlobal(resolved); // malloc'd by realpath; FreeHGlobal is free() on Unix
                }
            }
        }

        return System.IO.Path.GetFullPath(path);
    }

    [DllImport("libc", SetLastError = false)]
    private static extern nint realpath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, nint resolved);

    /// <summary>Why a folder's file is not read: it is found by its name, and a file named on the command line is read by its content.</summary>
    private static string WhyNotTaken(string file, IReadOnlySet<string> extensions)
    {
        var name = System.IO.Path.GetFileName(file);
        if (Leuko.Pipeline.Archives.ImageArchive.IsOperatingSystemMetadata(name))
        {
            return "operating-system metadata";
        }

        var extension = System.IO.Path.GetExtension(name);
        return $"not an image by its name ({(extension.Length > 0 ? extension : "no extension")}): a folder's files are taken by their " +
               $"extensions ({string.Join(", ", extensions.Order(StringComparer.Ordinal))}); name the file itself to have it read by its content";
    }
}
