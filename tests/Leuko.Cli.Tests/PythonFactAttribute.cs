using System.Diagnostics;

namespace Leuko.Cli.Tests;

/// <summary>
/// A test that runs models/training's data loader (<c>dataset.py</c>): it needs <c>/usr/bin/python3</c> with NumPy and
/// Pillow (<c>.ci/setup --test</c> installs them); skipped, saying so, where they are missing.
/// </summary>
public sealed class PythonFactAttribute : FactAttribute
{
    public const string Python = "/usr/bin/python3";

    private static readonly Lazy<string?> Missing = new(() =>
    {
        if (!File.Exists(Python))
        {
            return $"{Python} is not installed: the training script's loader cannot be run";
        }

        var start = new ProcessStartInfo(Python) { ArgumentList = { "-c", "import numpy, PIL" }, RedirectStandardError = true, RedirectStandardOutput = true };
        using var python = Process.Start(start)!;
        var error = python.StandardError.ReadToEnd();
        python.WaitForExit();
        return python.ExitCode == 0 ? null : $"{Python} lacks NumPy or Pillow (models/training/dataset.py imports them): {error.Trim().Split('\n')[^1]}";
    });

    public PythonFactAttribute()
    {
        if (Missing.Value is { } reason)
        {
            Skip = reason;
        }
    }
}
