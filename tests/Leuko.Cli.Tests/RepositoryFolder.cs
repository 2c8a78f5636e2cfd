namespace Leuko.Cli.Tests;

/// <summary>Folders of the repository the tests run from (models/training's scripts), found above the test binaries.</summary>
internal static class RepositoryFolder
{
    public static string Find(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, relative)))
            {
                return Path.Combine(dir.FullName, relative);
            }
        }

        throw new DirectoryNotFoundException($"no {relative} above {AppContext.BaseDirectory}");
    }
}
