using System.Diagnostics;

namespace Leuko.Cli;

/// <summary>Plain progress lines on stderr for long runs: at most one a second, plus the last.</summary>
internal sealed class Progress(string what, int total, TextWriter output)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private int _done;
    private TimeSpan _lastReport;

    public TimeSpan Elapsed => _clock.Elapsed;

    public void Advance()
    {
        lock (_lock)
        {
            _done++;
            var now = _clock.Elapsed;
            if (_done != total && now - _lastReport < TimeSpan.FromSeconds(1))
            {
                return;
            }

            _lastReport = now;
            double rate = _done / Math.Max(now.TotalSeconds, 1e-9);
            var eta = rate > 0 ? TimeSpan.FromSeconds((total - _done) / rate) : TimeSpan.Zero;
            output.WriteLine($"{what}: {_done}/{total} ({100.0 * _done / Math.Max(total, 1):0}%), {rate:0.0}/s, ETA {eta:mm\\:ss}");
        }
    }
}
