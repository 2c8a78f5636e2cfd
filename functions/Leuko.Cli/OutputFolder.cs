namespace Leuko.Cli;

/// <summary>The folder a command writes into (<c>--out</c>): made, and proved writable, before any work.</summary>
internal static class OutputFolder
{
    /// <summary>
    /// Creates <paramref name="path"/> (and its parents) and writes a probe file in it, so that a path that is a file,
    /// lies where nothing can be written, or is read-only is one clear error at the start, not an exception after the
    /// work; null (the error written) when it cannot be used.
    /// </summary>
    public static DirectoryInfo? Create(string path, TextWriter stderr)
    {
        try
        {
            if (File.Exists(path))
            {
                stderr.WriteLine($"error: --out '{TerminalText.OneLine(path)}' is a file; give a folder (it is created if absent)");
                return null;
            }

            var folder = Directory.CreateDirectory(path);
            using (File.Create(Path.Combine(folder.FullName, $".leuko-write-test-{Guid.NewGuid():n}"), 1, FileOptions.DeleteOnClose))
            {
            }

            return folder;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            stderr.WriteLine($"error: cannot write to the output folder '{TerminalText.OneLine(path)}': {TerminalText.OneLine(e.Message)}");
            return null;
        }
    }
}
