using System.Text;
using System.Text.Json.Nodes;
using Leuko.Azure.Hosting;
using Leuko.Core.Classification;
using Leuko.Pipeline;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Leuko.Functions.Tests;

/// <summary>An answer of a function, as its client reads it.</summary>
internal sealed record Answer(int Status, string? ContentType, byte[] Body)
{
    public JsonNode Json => JsonNode.Parse(Body)!;

    public string Text => Encoding.UTF8.GetString(Body);

    /// <summary>A problem-details body (RFC 9457) with this status, its <c>error</c> repeating its <c>detail</c>.</summary>
    public JsonNode Problem(int status)
    {
        Assert.True(Status == status, $"expected {status}, got {Status}: {Text}");
        Assert.Equal("application/problem+json", ContentType);
        var problem = Json;
        Assert.Equal(status, problem["status"]!.GetValue<int>());
        Assert.Equal(problem["detail"]!.GetValue<string>(), problem["error"]!.GetValue<string>());
        return problem;
    }
}

/// <summary>
/// The function app's HTTP functions without the host: <see cref="ApiFunctions"/> built as the worker builds it (its
/// constructor's services), the keys file in the host secrets shape that infra/ mounts, and a request from
/// <see cref="DefaultHttpContext"/> whose answer is executed as the worker executes it. Client names carry a
/// suffix of their own, so tests sharing Azurite's tables see only their own clients' subscriptions.
/// </summary>
internal sealed class ApiRig : IDisposable
{
    private static readonly Lazy<LeukocyteClassifier> Classifier = new(() => LeukocyteClassifier.Load(LeukocyteClassifier.DefaultModelPath));

    private readonly string _folder = Directory.CreateTempSubdirectory("leuko-api-").FullName;
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..8];

    /// <param name="roles">Roles other than infra/'s for some clients (by short name).</param>
    public ApiRig(IWebhookStore? store = null, int maxSubscriptionsPerClient = 20, IReadOnlyDictionary<string, string>? roles = null)
    {
        Store = store ?? new InMemoryWebhookStore();
        KeysFile = Path.Combine(_folder, "host.json");
        foreach (var client in new[] { "lims", "uploader", "reviewer", "admin", "lab2" })
        {
            Keys[client] = NewKey();
        }

        WriteKeys();
        Options = new ApiAccessOptions
        {
            ApiKeysFile = KeysFile,
            ApiClients =
            {
                // The roles infra/ gives the four clients, and a second LIMS to be "another client".
                [Name("lims")] = "read,subscribe",
                [Name("uploader")] = "submit,read",
                [Name("reviewer")] = "read,review",
                [Name("admin")] = "admin",
                [Name("lab2")] = "read, subscribe",
            },
        };
        foreach (var (client, given) in roles ?? new Dictionary<string, string>())
        {
            Options.ApiClients[Name(client)] = given;
        }

        Webhooks = new WebhookService(Store, TestSecrets.Shared, WebhookOptions.Default with { AllowLoopback = true, MaxSubscriptionsPerClient = maxSubscriptionsPerClient });
        var classes = CellClasses.Of(Classifier.Value.Card);
        Functions = new ApiFunctions(
            ApiAccess.From(Options), new PipelineQueries(Blobs, Results, classes), Webhooks, new ReviewService(Results, Reviews, Blobs, classes), Results,
            new PipelineOptions { Transport = Transports.Memory }, Classifier.Value);
    }

    public IWebhookStore Store { get; }

    public InMemoryResultStore Results { get; } = new();

    public InMemoryBlobStore Blobs { get; } = new();

    public InMemoryReviewStore Reviews { get; } = new();

    public WebhookService Webhooks { get; }

    public ApiFunctions Functions { get; }

    public ApiAccessOptions Options { get; }

    public string KeysFile { get; }

    /// <summary>Each client's key (by its short name), as the keys file holds it.</summary>
    public Dictionary<string, string> Keys { get; } = [];

    public string MasterKey { get; } = NewKey();

    public string SystemKey { get; } = NewKey();

    /// <summary>A client's name as configured here (unique to this rig).</summary>
    public string Name(string client) => $"{client}-{_suffix}";

    public static string NewKey() => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(30)).Replace('+', '-').Replace('/', '_');

    /// <summary>The keys file as infra/ writes the host's: master key, the clients' named keys, the blob extension's system key.</summary>
    public void WriteKeys()
    {
        var file = new JsonObject
        {
            ["masterKey"] = new JsonObject { ["name"] = "master", ["value"] = MasterKey, ["encrypted"] = false },
            ["functionKeys"] = new JsonArray(Keys.Select(k => (JsonNode)new JsonObject { ["name"] = Name(k.Key), ["value"] = k.Value, ["encrypted"] = false }).ToArray()),
            ["systemKeys"] = new JsonArray(new JsonObject { ["name"] = "blobs_extension", ["value"] = SystemKey, ["encrypted"] = false }),
        };
        File.WriteAllText(KeysFile, file.ToJsonString());
    }

    /// <summary>Calls a function with a request carrying <paramref name="key"/> (none when null) in the header, or in the <c>code</c> query.</summary>
    public static async Task<Answer> CallAsync(
        Func<HttpRequest, Task<IResult>> function, string method, string? key, string? body = null, bool keyInQuery = false)
    {
        var context = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        context.Request.Method = method;
        if (key is not null)
        {
            if (keyInQuery)
            {
                context.Request.QueryString = QueryString.Create(ApiAccess.KeyQuery, key);
            }
            else
            {
                context.Request.Headers[ApiAccess.KeyHeader] = key;
            }
        }

        if (body is not null)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            context.Request.Body = new MemoryStream(bytes);
            context.Request.ContentLength = bytes.Length;
            context.Request.ContentType = "application/json";
        }

        var response = new MemoryStream();
        context.Response.Body = response;
        var result = await function(context.Request);
        await result.ExecuteAsync(context);
        return new Answer(context.Response.StatusCode, context.Response.ContentType?.Split(';')[0], response.ToArray());
    }

    /// <summary>
    /// Calls the function named <paramref name="name"/> (its method's name) with <paramref name="id"/> where its route has
    /// one, and <paramref name="index"/> where it has a second parameter (a cell's).
    /// </summary>
    public Task<Answer> CallAsync(string name, string method, string? key, string? body = null, string id = "wh_none", string index = "0")
    {
        var function = typeof(ApiFunctions).GetMethod(name) ?? throw new ArgumentException($"no function {name}");
        object[] arguments = function.GetParameters().Length switch { 3 => [null!, id, index], 2 => [null!, id], _ => [null!] };
        return CallAsync(r =>
        {
            arguments[0] = r;
            return function.Invoke(Functions, arguments) switch
            {
                Task<IResult> task => task,
                IResult result => Task.FromResult(result),
                var other => throw new InvalidOperationException($"{name} returned {other}"),
            };
        }, method, key, body);
    }

    /// <summary>Subscribes as <paramref name="client"/>; the subscription's id.</summary>
    public async Task<string> SubscribeAsync(string client)
    {
        var created = await CallAsync(Functions.CreateWebhook, "POST", Keys[client], "{\"url\": \"http://127.0.0.1:9/hook\"}");
        Assert.True(created.Status == 201, created.Text);
        return created.Json["subscription"]!["id"]!.GetValue<string>();
    }

    /// <summary>
    /// Deletes this rig's clients' subscriptions (on Azurite, one left behind would be sent every later test's events at
    /// a receiver that is not there) and its keys file.
    /// </summary>
    public void Dispose()
    {
        foreach (var subscription in Store.ListAsync(CancellationToken.None).GetAwaiter().GetResult())
        {
            if (subscription.Owner?.EndsWith($"-{_suffix}", StringComparison.Ordinal) == true)
            {
                Store.DeleteAsync(subscription.Id, CancellationToken.None).GetAwaiter().GetResult();
            }
        }

        Directory.Delete(_folder, recursive: true);
    }
}
