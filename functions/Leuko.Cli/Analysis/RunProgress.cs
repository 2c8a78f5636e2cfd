using Leuko.Pipeline;
using Spectre.Console;

namespace Leuko.Cli.Analysis;

/// <summary>
/// Progress of an analysis on stderr: a live bar with rate and ETA when stderr is a terminal, plain lines (at most
/// one a second) otherwise, so logs and CI output stay readable.
/// </summary>
internal static class RunProgress
{
    public static bool IsInteractive(TextWriter stderr) =>
        ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb";

    public static async Task<T> RunAsync<T>(TextWriter stderr, int total, Func<Action<ImageResult>, Task<T>> work)
    {
        if (!IsInteractive(stderr))
        {
            var plain = new Progress("analyze", total, stderr);
            return await work(_ => plain.Advance());
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return await console.Progress()
            .AutoClear(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new RateColumn(),
                new ElapsedTimeColumn(),
                new RemainingTimeColumn(),
                new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("analyze", maxValue: Math.Max(total, 1));
                int failed = 0;
                var result = await work(r =>
                {
                    if (r.Status == ImageStatus.Failed)
                    {
                        task.Description = $"analyze ([red]{Interlocked.Increment(ref failed)} failed[/])";
                    }

                    task.Increment(1);
                });
                task.StopTask(); // at the count reached: a stopped run's bar does not claim every image
                return result;
            });
    }

    /// <summary>Images per second, from Spectre's own speed estimate.</summary>
    private sealed class RateColumn : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is { } speed ? $"{speed:0.0} img/s" : "-- img/s");
    }
}
