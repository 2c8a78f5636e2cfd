using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace Leuko.Tests;

/// <summary>
/// The Azurite instance the integration tests run against: LEUKO_TEST_STORAGE, or Azurite's default endpoints
/// (<c>UseDevelopmentStorage=true</c>). `.ci/test` starts Azurite; a test fails with this message when none is running.
/// </summary>
public static class Azurite
{
    public static string ConnectionString =>
        Environment.GetEnvironmentVariable("LEUKO_TEST_STORAGE") is { Length: > 0 } s ? s : "UseDevelopmentStorage=true";

    public static BlobServiceClient Blobs => new(ConnectionString);

    public static TableServiceClient Tables => new(ConnectionString);

    public static QueueServiceClient Queues => new(ConnectionString);

    /// <summary>Fails clearly, rather than with a socket error deep in a test, when Azurite is not reachable.</summary>
    public static async Task RequireAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await Blobs.GetPropertiesAsync(cts.Token);
        }
        catch (Exception e)
        {
            Assert.Fail($"Azurite is not reachable at {ConnectionString} ({e.GetType().Name}: {e.Message}). Start it with " +
                        "`npx azurite --inMemoryPersistence --skipApiVersionCheck` (.ci/test does), or set LEUKO_TEST_STORAGE.");
        }
    }

    /// <summary>A name no other test uses (queues: lowercase letters, digits and dashes).</summary>
    public static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 63)];
}
