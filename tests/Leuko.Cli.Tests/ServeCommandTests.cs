using System.CommandLine;

namespace Leuko.Cli.Tests;

/// <summary>
/// <c>leuko serve</c>'s command line, parsed and validated without starting the host (which needs storage):
/// the README's command with no optional flag, and the options' limits.
/// </summary>
public class ServeCommandTests
{
    private static ParseResult Parse(params string[] args) => LeukoCommand.Create().Parse(["serve", .. args]);

    [Fact]
    public void TheReadmeCommandIsValidAndTakesTheDefaults()
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true");

        Assert.Empty(parse.Errors);
        Assert.Equal(60, parse.GetValue<int>("--queue-lock"));
        Assert.Equal("storage-queue", parse.GetValue<string>("--transport"));
        Assert.Equal("classify", parse.GetValue<string>("--queue"));
        Assert.Equal("http://127.0.0.1:7071", parse.GetValue<string>("--urls"));
        Assert.False(parse.GetValue<bool>("--allow-loopback-webhooks"));
        Assert.Equal([5, 30, 120, 600, 1800, 3600, 10800], parse.GetRequiredValue<double[]>("--webhook-retry")); // the README's Leuko:WebhookRetrySeconds
    }

    [Fact]
    public void AScaleForEveryUploadIsTakenAndValidatedAsAnalyzesIs()
    {
        Assert.Null(Parse("--storage", "UseDevelopmentStorage=true").GetValue<double?>("--microns-per-pixel")); // estimated per image
        var given = Parse("--storage", "UseDevelopmentStorage=true", "--microns-per-pixel", "0.1");
        Assert.Empty(given.Errors);
        Assert.Equal(0.1, given.GetValue<double?>("--microns-per-pixel"));
        Assert.Contains(Parse("--storage", "UseDevelopmentStorage=true", "--microns-per-pixel", "-1").Errors,
            e => e.Message.Contains("--microns-per-pixel must be between", StringComparison.Ordinal));
    }

    [Fact]
    public void AWebhookRetryScheduleIsTaken()
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--webhook-retry", "1", "2.5", "60");

        Assert.Empty(parse.Errors);
        Assert.Equal([1, 2.5, 60], parse.GetRequiredValue<double[]>("--webhook-retry"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("604801")]
    public void AWebhookRetryWaitOutsideItsRangeIsRefused(string seconds)
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--webhook-retry", "5", seconds);

        Assert.Contains(parse.Errors, e => e.Message.Contains("--webhook-retry takes one or more waits in seconds", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("serve --storage UseDevelopmentStorage=true --stuck-after abc", "--stuck-after")]
    [InlineData("serve --storage UseDevelopmentStorage=true --queue-lock x", "--queue-lock")]
    [InlineData("serve --storage UseDevelopmentStorage=true --webhook-retry 5|30", "--webhook-retry")]
    [InlineData("analyze in --out out --parallel abc", "--parallel")]
    [InlineData("analyze in --out out --microns-per-pixel abc", "--microns-per-pixel")]
    [InlineData("segment in --out out --size q", "--size")]
    [InlineData("evaluate segmentation --voc v --iou high", "--iou")]
    [InlineData("bench analyze in --profile-images many", "--profile-images")]
    [InlineData("bench serve in --storage UseDevelopmentStorage=true --timeout soon", "--timeout")]
    public void AValueNotOfItsOptionsTypeIsAUsageErrorNotACrash(string line, string option)
    {
        // Each of these options has a validator of its range; it used to read the value and throw where there was none.
        var parse = LeukoCommand.Create().Parse(line.Split(' '));

        Assert.Contains(parse.Errors, e => e.Message.Contains($"for option '{option}'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("evaluate segmentation --voc v --iou NaN", "--iou must be in (0, 1]")] // NaN passed the range check and threw later
    [InlineData("bench analyze in --parallel 0", "--parallel takes parallelisms between 1 and 256")] // an unhandled exception
    [InlineData("bench analyze in --parallel 2 300", "--parallel takes parallelisms between 1 and 256")]
    [InlineData("bench analyze in --seconds -1", "--seconds must be above 0")] // measured nothing and printed it
    [InlineData("bench segmentation in --seconds 0", "--seconds must be above 0")]
    [InlineData("bench classification in --seconds NaN", "--seconds must be above 0")]
    public void AValueOutsideItsOptionsRangeIsAUsageError(string line, string says)
    {
        var parse = LeukoCommand.Create().Parse(line.Split(' '));

        Assert.Contains(parse.Errors, e => e.Message.Contains(says, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("601")]
    public void AQueueLockOutsideItsRangeIsRefused(string seconds)
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--queue-lock", seconds);

        Assert.Contains(parse.Errors, e => e.Message.Contains("--queue-lock must be between 2 and 600 seconds", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Bad_Queue!")] // the storage refused it at start, after the host's stack trace
    [InlineData("ab")]
    [InlineData("two--hyphens")]
    [InlineData("-leading")]
    [InlineData("a-name-that-is-too-long-once-the-webhook-queue-adds-its-suffix")]
    public void AStorageQueueNameTheStorageWouldRefuseIsAUsageError(string name)
    {
        Assert.Contains(Parse("--storage", "UseDevelopmentStorage=true", "--queue", name).Errors,
            e => e.Message.Contains("is not a storage queue name", StringComparison.Ordinal));
        Assert.DoesNotContain(Parse("--storage", "UseDevelopmentStorage=true", "--queue", name, "--transport", "service-bus", "--service-bus", "Endpoint=sb://x/").Errors,
            e => e.Message.Contains("is not a storage queue name", StringComparison.Ordinal)); // Service Bus names its queues by other rules
        Assert.Empty(Parse("--storage", "UseDevelopmentStorage=true", "--queue", "ward-3").Errors);
    }

    [Fact]
    public void AGivenQueueLockInRangeIsTaken()
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--queue-lock", "3");

        Assert.Empty(parse.Errors);
        Assert.Equal(3, parse.GetValue<int>("--queue-lock"));
    }

    [Fact]
    public void ServiceBusNeedsItsConnectionString()
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--transport", "service-bus");

        Assert.Contains(parse.Errors, e => e.Message.Contains("--service-bus", StringComparison.Ordinal));
        Assert.DoesNotContain(parse.Errors, e => e.Message.Contains("--queue-lock", StringComparison.Ordinal));
    }

    [Fact]
    public void TheWebhookSecretsKeyFileIsTheDefaultOneUnlessGiven()
    {
        Assert.Null(Parse("--storage", "UseDevelopmentStorage=true").GetValue<string?>("--secrets-key-file")); // Leuko:SecretsKeyFile's default
        Assert.Equal("/srv/leuko/key", Parse("--storage", "UseDevelopmentStorage=true", "--secrets-key-file", "/srv/leuko/key").GetValue<string?>("--secrets-key-file"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:7071", true)]
    [InlineData("http://127.0.0.2:7071", true)]
    [InlineData("http://localhost:7071", true)]
    [InlineData("http://[::1]:7071", true)]
    [InlineData("http://127.0.0.1:7071;http://[::1]:7072", true)]
    [InlineData("http://0.0.0.0:7071", false)]
    [InlineData("http://[::]:7071", false)]
    [InlineData("http://*:7071", false)]
    [InlineData("http://+:7071", false)]
    [InlineData("http://lab-server:7071", false)]
    [InlineData("http://localhost.example.org:7071", false)]
    [InlineData("http://10.0.0.5:7071", false)]
    [InlineData("http://127.0.0.1:7071;http://0.0.0.0:7072", false)]
    public void OnlyLoopbackAddressesCountAsLoopback(string urls, bool loopback)
    {
        Assert.Equal(loopback, Leuko.Cli.Commands.ServeCommand.IsLoopbackOnly(urls));
    }

    [Fact]
    public void TheApiKeyOptionsAreTaken()
    {
        var parse = Parse("--storage", "UseDevelopmentStorage=true", "--api-key", "k", "--api-keys", "keys.json");

        Assert.Empty(parse.Errors);
        Assert.Equal("k", parse.GetValue<string>("--api-key"));
        Assert.Equal("keys.json", parse.GetValue<string>("--api-keys"));
        Assert.Null(Parse("--storage", "UseDevelopmentStorage=true").GetValue<string>("--api-key"));
    }
}
