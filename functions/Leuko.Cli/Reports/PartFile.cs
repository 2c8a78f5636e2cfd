namespace Leuko.Cli.Reports;

/// <summary>
/// A result file written as <c>NAME.part</c> and renamed to <c>NAME</c> when complete, so that a run that is stopped
/// leaves no half file under the name consumers read.
/// </summary>
internal readonly record struct PartFile(string Path)
{
    /// <summary>Where the file is written until it is complete.</summary>
    public string Part => Path + ".part";

    /// <summary>The complete file takes its name (replacing an earlier run's).</summary>
    public void Publish() => File.Move(Part, Path, overwrite: true);

    /// <summary>The half file is removed (nothing, once published).</summary>
    public void Discard() => File.Delete(Part);

    /// <summary>
    /// Closes the writers of a file being abandoned: what they still hold cannot be written (a full disk is why a run
    /// ends so) and is not wanted, so their failure to flush does not stop the half files from being removed.
    /// </summary>
    public static void CloseAbandoned(params IDisposable[] writers)
    {
        foreach (var writer in writers)
        {
            try
            {
                writer.Dispose();
            }
            catch (IOException)
            {
            }
        }
    }
}
