using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Leuko.Azure.Hosting;
using Leuko.Azure.Storage;
using Leuko.Pipeline.Webhooks;
using Leuko.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Tests;

/// <summary>
/// The webhook API as <c>leuko serve</c> serves it (<see cref="LeukoApi.MapLeukoApi"/>, the handlers the function
/// app calls too), open as on loopback: real Kestrel on loopback, subscriptions in Azurite's tables, a real HTTP client.
/// </summary>
[Collection("Azurite")]
public class WebhookApiTests
{
    [Fact]
    public async Task AMalformedBodyGetsAProblemWithTheReason()
    {
        await using var api = await ApiAsync();
        var response = await api.Http.PostAsync("/api/webhooks", Json("{\"url\": \"http://127.0.0.1:9/hook\", \"types\": ["));

        var problem = await ProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("malformed JSON", problem["title"]!.GetValue<string>());
        Assert.Contains("the body is not a subscription", problem["detail"]!.GetValue<string>());
        Assert.Equal(problem["detail"]!.GetValue<string>(), problem["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("")]
    [InlineData("  \n")]
    [InlineData("null")]
    public async Task AnEmptyBodyGetsAProblemWithTheReason(string body)
    {
        await using var api = await ApiAsync();
        var response = await api.Http.PostAsync("/api/webhooks", Json(body));

        var problem = await ProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Contains("a JSON object with url", problem["detail"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ABodyOverTheLimitIsRefusedUnread(bool declaredLength)
    {
        await using var api = await ApiAsync();
        // Valid JSON, so only its size can be refused: a subscription padded past 64 KiB.
        var body = $"{{\"url\": \"http://127.0.0.1:9/hook\", \"sourcePrefix\": \"{new string('a', WebhookApi.MaxBodyBytes)}\"}}";
        HttpContent content = declaredLength ? Json(body) : new StreamContent(new UnknownLengthStream(Encoding.UTF8.GetBytes(body)));
        content.Headers.ContentType = new("application/json");

        var response = await api.Http.PostAsync("/api/webhooks", content);

        var problem = await ProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("at most 64 KiB", problem["detail"]!.GetValue<string>());
        // Nothing was subscribed (other tests' subscriptions may share these tables).
        var subscriptions = await api.Http.GetFromJsonAsync<JsonArray>("/api/webhooks") ?? [];
        Assert.DoesNotContain(subscriptions, w => (w!["sourcePrefix"]?.GetValue<string>()?.Length ?? 0) >= WebhookApi.MaxBodyBytes);
    }

    [Fact]
    public async Task AGoodBodyIsASubscriptionAndARefusedOneSaysWhy()
    {
        await using var api = await ApiAsync();
        var created = await api.Http.PostAsJsonAsync("/api/webhooks", new { url = "http://127.0.0.1:9/hook", types = new[] { "image.completed" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["subscription"]!["id"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.NoContent, (await api.Http.DeleteAsync($"/api/webhooks/{id}")).StatusCode);

        var refused = await api.Http.PostAsJsonAsync("/api/webhooks", new { url = "https://10.1.2.3/hook" });
        var problem = await ProblemAsync(refused, HttpStatusCode.BadRequest);
        Assert.Equal("subscription refused", problem["title"]!.GetValue<string>());
        Assert.Contains("url refused", problem["detail"]!.GetValue<string>());
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<JsonNode> ProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal((int)status, problem["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(problem["detail"]?.GetValue<string>()));
        return problem;
    }

    private static async Task<Api> ApiAsync()
    {
        await Azurite.RequireAsync();
        var store = new TableWebhookStore(Azurite.Tables);
        await store.InitializeAsync(CancellationToken.None);

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(new WebhookService(store, TestSecrets.Shared, WebhookOptions.Default with { AllowLoopback = true })).AddOpenApiAccess();
        var app = builder.Build();
        app.MapLeukoApi();
        await app.StartAsync();
        return new Api(app, new HttpClient { BaseAddress = new Uri(app.Urls.First()) });
    }

    private sealed record Api(WebApplication App, HttpClient Http) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    /// <summary>A body sent chunked, without Content-Length: the limit must hold on what is read, not only on what is declared.</summary>
    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
