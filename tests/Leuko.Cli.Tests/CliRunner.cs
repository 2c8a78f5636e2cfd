using System.CommandLine;

namespace Leuko.Cli.Tests;

internal sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the real <c>leuko</c> command tree in-process with captured output.</summary>
internal static class CliRunner
{
    public static async Task<CliResult> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await LeukoCommand.InvokeAsync(args, new InvocationConfiguration { Output = stdout, Error = stderr });
        return new CliResult(exit, stdout.ToString(), stderr.ToString());
    }

    public static string SamplesVoc => Path.Combine(AppContext.BaseDirectory, "samples", "bccd");

    public static string SampleImages => Path.Combine(SamplesVoc, "JPEGImages");

    public static string SampleImage(string name) => Path.Combine(SampleImages, name);
}

/// <summary>A temporary folder, removed afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("leuko-test-").FullName;

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
