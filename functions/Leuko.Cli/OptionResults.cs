using System.CommandLine.Parsing;

namespace Leuko.Cli;

/// <summary>What option validators read.</summary>
internal static class OptionResults
{
    /// <summary>
    /// The option's value; false where its tokens are not of its type (<c>--parallel abc</c>), which the parser reports
    /// itself as a usage error: a validator then has nothing to check (reading the value would throw).
    /// </summary>
    public static bool TryGetValue<T>(this OptionResult result, out T? value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default;
            return false;
        }
    }
}
