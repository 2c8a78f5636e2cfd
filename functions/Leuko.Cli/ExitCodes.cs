namespace Leuko.Cli;

internal static class ExitCodes
{
    public const int Success = 0;

    /// <summary>The run finished but at least one input failed (each is reported).</summary>
    public const int SomeFailed = 1;

    /// <summary>Bad arguments: missing input, wrong folder layout.</summary>
    public const int BadUsage = 2;

    /// <summary>A native library the image code needs is missing.</summary>
    public const int MissingDependency = 3;

    /// <summary>The results could not be written (a full disk, a folder where a result file goes), or another file error ended the command: each is said.</summary>
    public const int OutputFailed = 4;

    /// <summary>Stopped by Ctrl+C (SIGINT) or SIGTERM before every input was analysed (the shell's 128 + SIGINT).</summary>
    public const int Interrupted = 130;
}
