using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>
/// Issue 12 item 11: the function app's image runs as a non-root user on the port the ingress targets, its base
/// images are pinned by digest or pinned by infra/pin-images.sh (tested here against a real HTTP registry stand-in),
/// and its build context holds what the publish reads and nothing else.
/// </summary>
public partial class DockerImageTests
{
    private static string DockerfilePath => Path.Combine(Root, "functions", "Leuko.Functions", "Dockerfile");

    private static string[] Instructions(string dockerfile) =>
        dockerfile.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();

    [Fact]
    public void TheImageRunsAsANonRootUserOnTheIngressPort()
    {
        var lines = Instructions(File.ReadAllText(DockerfilePath));
        var finalStage = lines[Array.FindLastIndex(lines, l => l.StartsWith("FROM ", StringComparison.Ordinal))..];
        var user = finalStage.LastOrDefault(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.True(user is not null, "the final stage sets no USER: it runs as root");
        var name = user!["USER ".Length..].Split(':')[0].Trim();
        Assert.DoesNotMatch("^(root|0|\\$.*)$", name);
        Assert.Matches("^[0-9]+$", name); // numeric, so that a runAsNonRoot check can verify it
        Assert.DoesNotContain(finalStage.SkipWhile(l => l != user), l => l.StartsWith("USER ", StringComparison.Ordinal) && l != user);

        // Not root, the host cannot bind 80: it listens where the container app's ingress sends requests.
        var port = ContainerApp()["properties"]!["configuration"]!["ingress"]!["targetPort"]!.GetValue<int>();
        Assert.True(port > 1024, $"ingress targetPort {port} needs root");
        Assert.Contains(finalStage, l => l.Contains($"ASPNETCORE_URLS=http://+:{port}", StringComparison.Ordinal));
        Assert.Contains($"EXPOSE {port}", finalStage);
        Assert.Equal($"http://+:{port}", ContainerEnv()["ASPNETCORE_URLS"]); // the first provision's placeholder image too
    }

    [Fact]
    public void EveryBaseImageIsPinnedByDigestOrThePinScriptSaysHow()
    {
        var dockerfile = File.ReadAllText(DockerfilePath);
        var images = Instructions(dockerfile).Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1]).ToList();
        Assert.NotEmpty(images);
        var unpinned = images.Where(i => !Pinned().IsMatch(i)).ToList();
        if (unpinned.Count > 0)
        {
            // Not pinned in this commit (no registry reachable where it was written): the Dockerfile must say how.
            Assert.Contains("infra/pin-images.sh", dockerfile);
            Assert.True(File.Exists(Path.Combine(Root, "infra", "pin-images.sh")));
            Assert.All(unpinned, i => Assert.Matches(@"^[a-z0-9.\-]+/[a-z0-9./\-]+:[A-Za-z0-9._\-]+$", i)); // a tag to pin
        }
    }

    [GeneratedRegex(@"^[a-z0-9.\-]+/[a-z0-9./\-]+:[A-Za-z0-9._\-]+@sha256:[0-9a-f]{64}$")]
    private static partial Regex Pinned();

    private static string FakeDigest(string path) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path)));

    [Fact]
    public void ThePinScriptPinsEachFromLineToTheDigestTheRegistryGivesAndRepinsOnUpdate()
    {
        var generation = 1;
        using var registry = new LocalHttpReceiver(r => r.Method == "HEAD" && r.PathAndQuery.StartsWith("/v2/", StringComparison.Ordinal)
            ? (200, new Dictionary<string, string> { ["Docker-Content-Digest"] = FakeDigest(r.PathAndQuery + generation) })
            : (404, new Dictionary<string, string>()));
        var copy = Path.Combine(Directory.CreateTempSubdirectory("leuko-pin-").FullName, "Dockerfile");
        try
        {
            var original = File.ReadAllText(DockerfilePath);
            File.WriteAllText(copy, original);
            var (exit, output) = Pin(copy, registry.BaseUrl);
            Assert.True(exit == 0, output);

            var pinned = File.ReadAllText(copy);
            foreach (var line in Instructions(original).Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)))
            {
                var parts = line.Split(' ');
                var image = parts[1].Split('@')[0];
                var repositoryAndTag = image[(image.IndexOf('/') + 1)..];
                var path = $"/v2/{repositoryAndTag[..repositoryAndTag.LastIndexOf(':')]}/manifests/{repositoryAndTag[(repositoryAndTag.LastIndexOf(':') + 1)..]}";
                // The tag is kept, the digest is the registry's, the stage name survives.
                var expected = $"FROM {image}@{FakeDigest(path + 1)}{string.Concat(parts.Skip(2).Select(p => " " + p))}";
                Assert.Contains(expected, pinned.Split('\n'));
            }

            // It asked for the multi-platform index (what `docker pull` resolves), with a HEAD of each tag's manifest.
            Assert.All(registry.Requests, r =>
            {
                Assert.Equal("HEAD", r.Method);
                Assert.Contains("application/vnd.oci.image.index.v1+json", r.Headers["Accept"]);
                Assert.Contains("application/vnd.docker.distribution.manifest.list.v2+json", r.Headers["Accept"]);
            });
            Assert.Equal(Instructions(original).Count(l => l.StartsWith("FROM ", StringComparison.Ordinal)), registry.Requests.Count);

            // A new base image behind the same tag: run again and the digest follows it; everything else is unchanged.
            generation = 2;
            (exit, output) = Pin(copy, registry.BaseUrl);
            Assert.True(exit == 0, output);
            var repinned = File.ReadAllText(copy);
            Assert.NotEqual(pinned, repinned);
            Assert.Equal(Unpin(original), Unpin(repinned));
            Assert.All(Instructions(repinned).Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)),
                l => Assert.Matches(Pinned(), l.Split(' ')[1]));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
        }
    }

    [Fact]
    public void ThePinScriptChangesNothingWhenTheRegistryGivesNoDigest()
    {
        using var registry = new LocalHttpReceiver(_ => (401, new Dictionary<string, string>()));
        var copy = Path.Combine(Directory.CreateTempSubdirectory("leuko-pin-").FullName, "Dockerfile");
        try
        {
            var original = File.ReadAllText(DockerfilePath);
            File.WriteAllText(copy, original);
            var (exit, output) = Pin(copy, registry.BaseUrl);
            Assert.NotEqual(0, exit);
            Assert.Contains("no digest", output);
            Assert.Equal(original, File.ReadAllText(copy));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
        }
    }

    private static string Unpin(string dockerfile) => Regex.Replace(dockerfile, "@sha256:[0-9a-f]{64}", "");

    private static (int Exit, string Output) Pin(string dockerfile, string registryBase) =>
        Run("sh", Root, [Path.Combine("infra", "pin-images.sh"), "--dockerfile", dockerfile],
            new Dictionary<string, string> { ["LEUKO_REGISTRY_BASE"] = registryBase });

    /// <summary>
    /// .dockerignore as Docker reads it: each line a pattern (Go filepath.Match, plus ** for any folders), a leading !
    /// re-includes, the last matching line wins, and a pattern that matches a folder matches everything under it.
    /// </summary>
    private static Func<string, bool> DockerIgnore(string file)
    {
        var rules = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => (Include: l.StartsWith('!'), Pattern: new Regex("^" + PatternToRegex(l.TrimStart('!').Trim('/')) + "$")))
            .ToList();
        return path =>
        {
            var segments = path.Split('/');
            var prefixes = Enumerable.Range(1, segments.Length).Select(n => string.Join('/', segments.Take(n))).ToList();
            var excluded = false;
            foreach (var (include, pattern) in rules)
            {
                if (prefixes.Any(p => pattern.IsMatch(p)))
                {
                    excluded = !include;
                }
            }

            return !excluded;
        };
    }

    private static string PatternToRegex(string pattern)
    {
        var regex = new StringBuilder();
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                regex.Append(i + 2 < pattern.Length && pattern[i + 2] == '/' ? "(.*/)?" : ".*");
                i += i + 2 < pattern.Length && pattern[i + 2] == '/' ? 2 : 1;
            }
            else
            {
                regex.Append(c switch { '*' => "[^/]*", '?' => "[^/]", _ => Regex.Escape(c.ToString()) });
            }
        }

        return regex.ToString();
    }

    /// <summary>The projects Leuko.Functions builds from: itself and its ProjectReferences, transitively.</summary>
    private static HashSet<string> ProjectsOfTheFunctionApp()
    {
        var projects = new HashSet<string>();
        var pending = new Stack<string>([Path.Combine(Root, "functions", "Leuko.Functions", "Leuko.Functions.csproj")]);
        while (pending.TryPop(out var project))
        {
            if (projects.Add(Path.GetRelativePath(Root, Path.GetDirectoryName(project)!).Replace('\\', '/')))
            {
                foreach (Match m in ProjectReference().Matches(File.ReadAllText(project)))
                {
                    pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(project)!, m.Groups["path"].Value.Replace('\\', '/'))));
                }
            }
        }

        return projects;
    }

    [GeneratedRegex("<ProjectReference Include=\"(?<path>[^\"]+)\"")]
    private static partial Regex ProjectReference();

    [Fact]
    public void TheBuildContextHoldsWhatThePublishReadsAndNothingElse()
    {
        var included = DockerIgnore(Path.Combine(Root, ".dockerignore"));
        var projects = ProjectsOfTheFunctionApp();
        Assert.Equal(["functions/Leuko.Azure", "functions/Leuko.Core", "functions/Leuko.Functions", "functions/Leuko.Pipeline"], projects.Order());

        // Every source file of those projects, and the repository files their build reads.
        var needed = projects.SelectMany(p => Directory.EnumerateFiles(Path.Combine(Root, p), "*", SearchOption.AllDirectories))
            .Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/'))
            .Where(f => !Regex.IsMatch(f, "/(bin|obj)/"))
            .Concat(["Directory.Build.props", "Directory.Packages.props", "global.json", "host.json", ".editorconfig",
                "models/leukocyte-cnn.onnx", "models/leukocyte-cnn.json"])
            .ToList();
        var missing = needed.Where(f => !included(f)).ToList();
        Assert.True(missing.Count == 0, $"the build context lacks: {string.Join(", ", missing)}");

        // And what it must not carry: other projects, tests, data, history, build outputs, local settings.
        string[] unwanted =
        [
            ".git/HEAD", "tests/Leuko.Infra.Tests/InfraTests.cs", "functions/Leuko.Cli/Leuko.Cli.csproj", "samples/bccd/README.md",
            "models/training/train.sh", "models/leukocyte-cnn.parity.json", "models/README.md", "README.md", "node_modules/azurite/package.json",
            ".leuko/leuko", "out/samples/results.json", "functions/Leuko.Core/bin/Release/net10.0/Leuko.Core.dll",
            "functions/Leuko.Functions/obj/project.assets.json", "functions/Leuko.Functions/local.settings.json", "infra/main.bicep",
            ".ci/test", "LeukoFunctions.sln",
        ];
        var carried = unwanted.Where(included).ToList();
        Assert.True(carried.Count == 0, $"the build context carries: {string.Join(", ", carried)}");
    }
}
