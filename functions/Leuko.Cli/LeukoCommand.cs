using System.CommandLine;
using Leuko.Cli.Commands;

namespace Leuko.Cli;

/// <summary>The <c>leuko</c> command tree.</summary>
public static class LeukoCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("LeukoFunctions: find, cut out and classify the white blood cells in blood-smear photographs.")
        {
            SegmentCommand.Create(),
            EvaluateCommand.Create(),
            BenchCommand.Create(),
        };
        return root;
    }
}
