using System.Runtime.InteropServices;

namespace Leuko.Cli;

/// <summary>
/// OpenCV's official Linux runtime links GTK 3 (for its unused HighGUI). Without it every image call fails with
/// an opaque DllNotFoundException; check once, up front, and say which package to install.
/// </summary>
internal static class NativeDependencies
{
    public static bool Check(TextWriter error)
    {
        if (!OperatingSystem.IsLinux() || NativeLibrary.TryLoad("libgtk-3.so.0", out _))
        {
            return true;
        }

        error.WriteLine("error: OpenCV needs the GTK 3 library (libgtk-3.so.0), which is not installed.");
        error.WriteLine("       Install it with: sudo apt-get install -y libgtk-3-0   (Debian/Ubuntu)");
        return false;
    }
}
