using System.Runtime.InteropServices;

namespace Leuko.Cli;

/// <summary>
/// CPU time of the calling thread (Linux <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>), for benchmarks that say
/// where the CPU goes, stage by stage, whatever else the machine runs: wall time on a shared machine measures the
/// neighbours too. Elsewhere <see cref="IsSupported"/> is false and <see cref="Milliseconds"/> returns NaN.
/// </summary>
internal static class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    public static bool IsSupported => OperatingSystem.IsLinux();

    public static double Milliseconds()
    {
        if (!IsSupported || ClockGetTime(ClockThreadCpuTimeId, out var time) != 0)
        {
            return double.NaN;
        }

        return time.Seconds * 1e3 + time.Nanoseconds / 1e6;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // DllImport rather than LibraryImport: its generated code needs unsafe blocks, and this one call marshals nothing.
#pragma warning disable SYSLIB1054
    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);
#pragma warning restore SYSLIB1054
}
