using System.Runtime.InteropServices;

namespace Leuko.Cli;

/// <summary>
/// glibc's allocator hands every allocation above its mmap threshold (128 KiB at first, raised as such blocks are freed)
/// to a fresh mapping and gives the top of its heaps back to the kernel once 128 KiB of it is free. Each image's OpenCV
/// buffers (a 640x480 field's colour planes are 0.9 MiB each) were therefore mapped, zeroed page by page by the kernel
/// and unmapped again: 180,000-550,000 page faults and 1.3-2.1 s of system time in a 292-field <c>leuko analyze</c>. Kept
/// within the process instead (blocks below 32 MiB from the heaps, free memory returned once 64 MiB of it lies at a heap's top),
/// the same run has 48,000-57,000 faults and 0.6-1.1 s (README "Throughput"). Memory stays bounded: what is freed is reused
/// by the next image. Applied once at start-up; without glibc (another C library, another OS) nothing is changed.
/// </summary>
internal static class NativeHeap
{
    private const int TrimThreshold = -1; // M_TRIM_THRESHOLD, malloc.h
    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD

    public static void KeepFreedMemoryForReuse()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            _ = mallopt(MmapThreshold, 32 << 20);
            _ = mallopt(TrimThreshold, 64 << 20);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Not glibc: its allocator keeps its own defaults.
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
