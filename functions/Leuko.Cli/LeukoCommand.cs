using System.CommandLine;
using Leuko.Cli.Commands;

namespace Leuko.Cli;

/// <summary>The <c>leuko</c> command tree.</summary>
public static class LeukoCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("LeukoFunctions: find, cut out and classify the white blood cells in blood-smear photographs.")
        {
            AnalyzeCommand.Create(),
            ServeCommand.Create(),
            UploadCommand.Create(),
            SegmentCommand.Create(),
            EvaluateCommand.Create(),
            BenchCommand.Create(),
            ExportCommand.Create(),
        };
        return root;
    }

    /// <summary>
    /// Parses and runs a command line. Errors in the command line itself (unknown option, bad value) are printed with
    /// the help and give <see cref="ExitCodes.BadUsage"/>, like the usage errors the commands find themselves.
    /// </summary>
    public static async Task<int> InvokeAsync(string[] args, InvocationConfiguration? configuration = null)
    {
        var parse = Create().Parse(args);
        // Ctrl+C and SIGTERM cancel the command's token and leave it this long to stop cleanly (analyze finishes the
        // images it has read and writes their results; serve stops its host) before the process is ended with 130.
        configuration ??= new InvocationConfiguration();
        configuration.ProcessTerminationTimeout ??= TimeSpan.FromSeconds(30);
        bool handleExceptions = configuration.EnableDefaultExceptionHandler;
        configuration.EnableDefaultExceptionHandler = false;
        int exit;
        try
        {
            exit = await parse.InvokeAsync(configuration);
        }
        catch (Exception e) when (handleExceptions && e is IOException or UnauthorizedAccessException)
        {
            // A file the command writes (or a folder it lists) that the system refuses: a full disk, a folder removed
            // meanwhile. Each input that cannot be read fails alone inside the commands; this is what ends a command.
            configuration.Error.WriteLine($"error: {TerminalText.OneLine(e.Message)}");
            return ExitCodes.OutputFailed;
        }
        catch (Exception e) when (handleExceptions && e is not OperationCanceledException)
        {
            configuration.Error.WriteLine($"Unhandled exception: {e}"); // as System.CommandLine's own handler says it
            return 1;
        }

        return parse.Errors.Count > 0 && exit != ExitCodes.Success ? ExitCodes.BadUsage : exit;
    }
}
