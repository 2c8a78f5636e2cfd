using System.Collections.Concurrent;
using System.Diagnostics;

namespace Leuko.Cli.Tests;

/// <summary>
/// A test that runs a script of models/training: it needs <c>/usr/bin/python3</c> with NumPy and Pillow (the data
/// loader, <c>dataset.py</c>; <c>.ci/setup --test</c> installs them) and any further modules it names (PyTorch and onnx
/// for <c>quantize.py</c>, which <c>.ci/setup</c> does not install); skipped, saying so, where they are missing.
/// </summary>
public sealed class PythonFactAttribute : FactAttribute
{
    public const string Python = "/usr/bin/python3";

    private static readonly ConcurrentDictionary<string, string?> Missing = new();

    public PythonFactAttribute(params string[] modules)
    {
        if (Missing.GetOrAdd(string.Join(", ", new[] { "numpy", "PIL" }.Concat(modules)), Check) is { } reason)
        {
            Skip = reason;
        }
    }

    private static string? Check(string modules)
    {
        if (!File.Exists(Python))
        {
            return $"{Python} is not installed: the training scripts cannot be run";
        }

        var start = new ProcessStartInfo(Python) { ArgumentList = { "-c", $"import {modules}" }, RedirectStandardError = true, RedirectStandardOutput = true };
        using var python = Process.Start(start)!;
        var error = python.StandardError.ReadToEnd();
        python.WaitForExit();
        return python.ExitCode == 0 ? null : $"{Python} lacks one of {modules} (models/training imports them): {error.Trim().Split('\n')[^1]}";
    }
}
