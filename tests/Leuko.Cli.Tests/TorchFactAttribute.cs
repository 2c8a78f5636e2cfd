using System.Diagnostics;

namespace Leuko.Cli.Tests;

/// <summary>
/// A test that needs <c>/usr/bin/python3</c> with torch (models/training's own imports): skipped, saying so, where it
/// has none. The training machine has it; a bare CI image may not.
/// </summary>
public sealed class TorchFactAttribute : FactAttribute
{
    public const string Python = "/usr/bin/python3";

    private static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(Python))
        {
            return $"{Python} is not installed: the training script's loader cannot be run";
        }

        var start = new ProcessStartInfo(Python) { ArgumentList = { "-c", "import torch, numpy, PIL" }, RedirectStandardError = true, RedirectStandardOutput = true };
        using var python = Process.Start(start)!;
        var error = python.StandardError.ReadToEnd();
        python.WaitForExit();
        return python.ExitCode == 0 ? null : $"{Python} lacks torch, numpy or Pillow (models/training/train.py imports them): {error.Trim().Split('\n')[^1]}";
    });

    public TorchFactAttribute()
    {
        if (Missing.Value is { } reason)
        {
            Skip = reason;
        }
    }
}
