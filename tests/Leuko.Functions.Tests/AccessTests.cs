using Leuko.Azure.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Leuko.Functions.Tests;

/// <summary>
/// Who may call the function app's HTTP functions (issue 12, item 1): each named client with its key and roles, never
/// the host's master or system keys, called as the worker calls them (no host: an HttpRequest of a DefaultHttpContext).
/// </summary>
public sealed class AccessTests : IDisposable
{
    private readonly ApiRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task ARequestWithoutAKeyIsUnauthorised()
    {
        var answer = await ApiRig.CallAsync(r => _rig.Functions.GetImage(r, "img1"), "GET", key: null);

        var problem = answer.Problem(401);
        Assert.Contains(ApiAccess.KeyHeader, problem["detail"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheHostsMasterKeyIsRefused()
    {
        // The host accepts its master key for AuthorizationLevel.Function; the app does not: it is no client's.
        foreach (var call in new Func<Microsoft.AspNetCore.Http.HttpRequest, Task<Microsoft.AspNetCore.Http.IResult>>[]
                 { r => _rig.Functions.GetImage(r, "img1"), _rig.Functions.ListWebhooks })
        {
            var answer = await ApiRig.CallAsync(call, "GET", _rig.MasterKey);
            Assert.Equal("not a client key", answer.Problem(403)["title"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task TheHostsSystemKeyAndAnUnknownKeyAreRefused()
    {
        Assert.Equal(403, (await ApiRig.CallAsync(r => _rig.Functions.GetBatch(r, "b1"), "GET", _rig.SystemKey)).Status);
        Assert.Equal(403, (await ApiRig.CallAsync(r => _rig.Functions.GetBatch(r, "b1"), "GET", ApiRig.NewKey())).Status);
        Assert.Equal(403, (await ApiRig.CallAsync(r => _rig.Functions.GetBatch(r, "b1"), "GET", _rig.Keys["lims"] + "x")).Status);
    }

    [Theory]
    [InlineData("lims")]
    [InlineData("uploader")]
    [InlineData("reviewer")]
    [InlineData("admin")]
    public async Task EveryClientWithTheReadRoleReadsResults(string client)
    {
        // Authorised, the function answers: no such image (a problem body too).
        var answer = await ApiRig.CallAsync(r => _rig.Functions.GetImage(r, "no-such-image"), "GET", _rig.Keys[client]);

        Assert.Contains("no image 'no-such-image'", answer.Problem(404)["detail"]!.GetValue<string>());
        Assert.Equal(404, (await ApiRig.CallAsync(r => _rig.Functions.GetBatch(r, "no-such-batch"), "GET", _rig.Keys[client])).Status);
        Assert.Equal(404, (await ApiRig.CallAsync(r => _rig.Functions.GetAnnotatedImage(r, "no-such-image"), "GET", _rig.Keys[client])).Status);
    }

    [Fact]
    public async Task TheKeyIsTakenFromTheCodeQueryToo()
    {
        var answer = await ApiRig.CallAsync(_rig.Functions.ListWebhooks, "GET", _rig.Keys["lims"], keyInQuery: true);

        Assert.Equal(200, answer.Status);
    }

    [Theory]
    [InlineData("uploader")]
    [InlineData("reviewer")]
    public async Task AClientWithoutTheSubscribeRoleCannotTouchWebhooks(string client)
    {
        var key = _rig.Keys[client];
        var answers = new[]
        {
            await ApiRig.CallAsync(_rig.Functions.CreateWebhook, "POST", key, "{\"url\": \"http://127.0.0.1:9/hook\"}"),
            await ApiRig.CallAsync(_rig.Functions.ListWebhooks, "GET", key),
            await ApiRig.CallAsync(r => _rig.Functions.DeleteWebhook(r, "wh_1"), "DELETE", key),
            await ApiRig.CallAsync(r => _rig.Functions.RotateWebhookSecret(r, "wh_1"), "POST", key),
            await ApiRig.CallAsync(r => _rig.Functions.WebhookDeliveries(r, "wh_1"), "GET", key),
        };

        Assert.All(answers, a => Assert.Contains($"does not have the 'subscribe' role", a.Problem(403)["detail"]!.GetValue<string>()));
        Assert.Empty(await _rig.Store.ListAsync(CancellationToken.None));
    }

    [Fact]
    public async Task HealthNeedsNoKey()
    {
        var answer = await ApiRig.CallAsync(_rig.Functions.Health, "GET", key: null);

        Assert.Equal(200, answer.Status);
        Assert.Equal("ok", answer.Json["status"]!.GetValue<string>());
        Assert.Equal(Transports.Memory, answer.Json["transport"]!.GetValue<string>());
        Assert.StartsWith("leukocyte", answer.Json["model"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task ARotatedKeyIsTakenFromTheFileWithoutARestart()
    {
        var old = _rig.Keys["lims"];
        Assert.Equal(200, (await ApiRig.CallAsync(_rig.Functions.ListWebhooks, "GET", old)).Status);

        // A new value for limsApiKey and `azd provision`: the mounted secrets file changes.
        _rig.Keys["lims"] = ApiRig.NewKey();
        _rig.WriteKeys();
        File.SetLastWriteTimeUtc(_rig.KeysFile, DateTime.UtcNow.AddMinutes(1)); // a change even where the clock's step is coarse

        Assert.Equal(403, (await ApiRig.CallAsync(_rig.Functions.ListWebhooks, "GET", old)).Status);
        Assert.Equal(200, (await ApiRig.CallAsync(_rig.Functions.ListWebhooks, "GET", _rig.Keys["lims"])).Status);
    }

    /// <summary>Every route's role, as <see cref="LeukoApi.Routes"/> lists it, is what its function enforces.</summary>
    [Fact]
    public async Task EveryRouteNeedsTheRoleTheApiDefinitionGivesIt()
    {
        foreach (var route in LeukoApi.Routes.Where(r => r.Role is not null))
        {
            // A client holding every role but this one is refused; one holding only this one is let through.
            var others = string.Join(",", ApiRoles.All.Where(x => x != route.Role && x != ApiRoles.Admin));
            using var rig = new ApiRig(roles: new Dictionary<string, string> { ["lims"] = others, ["lab2"] = route.Role! });
            var body = route.Method == "POST" ? "{\"url\": \"http://127.0.0.1:9/hook\"}" : null;

            var refused = await rig.CallAsync(route.Name, route.Method, rig.Keys["lims"], body);
            Assert.True(refused.Status == 403, $"{route.Name} let a client without '{route.Role}' through: {refused.Status}");
            var allowed = await rig.CallAsync(route.Name, route.Method, rig.Keys["lab2"], body);
            Assert.True(allowed.Status is not (401 or 403), $"{route.Name} refused a client with '{route.Role}': {allowed.Status} {allowed.Text}");
            var admin = await rig.CallAsync(route.Name, route.Method, rig.Keys["admin"], body);
            Assert.True(admin.Status is not (401 or 403), $"{route.Name} refused the admin: {admin.Status} {admin.Text}");
        }
    }

    [Theory]
    [InlineData("read,write", null, "unknown role 'write'")]
    [InlineData(" , ", null, "has no role")]
    [InlineData("read", "/nonexistent/host.json", "API keys file /nonexistent/host.json")]
    [InlineData("read", "", "Leuko:ApiKeysFile is not set")]
    public async Task AHostWithUnusableAccessSettingsDoesNotStart(string roles, string? keysFile, string reason)
    {
        var settings = new Dictionary<string, string?>
        {
            [$"Leuko:ApiClients:{_rig.Name("lims")}"] = roles,
            ["Leuko:ApiKeysFile"] = keysFile ?? _rig.KeysFile,
        };
        using var host = Host(settings);

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(reason, e.Message);
    }

    [Theory]
    [InlineData("not json", "API keys file")]
    [InlineData("{\"masterKey\": {\"name\": \"master\", \"value\": \"0123456789abcdef0123\"}}", "no functionKeys array")]
    [InlineData("{\"functionKeys\": [{\"name\": \"lims\", \"value\": \"0123456789abcdef0123\", \"encrypted\": true}]}", "encrypted with the host's machine key")]
    [InlineData("{\"functionKeys\": [{\"name\": \"lims\", \"value\": \"short\"}]}", "shorter than 16 characters")]
    [InlineData("{\"functionKeys\": [{\"name\": \"lims\", \"value\": \"0123456789abcdef0123\"}, {\"name\": \"lab2\", \"value\": \"0123456789abcdef0123\"}]}", "share one key")]
    [InlineData("{\"functionKeys\": [{\"name\": \"someone\", \"value\": \"0123456789abcdef0123\"}]}", "has no key for any client")]
    public async Task AKeysFileTheAppCannotUseStopsTheHostAtStart(string content, string reason)
    {
        // Client names as the file names them (no suffix here: the file is this test's own).
        var file = Path.Combine(Path.GetDirectoryName(_rig.KeysFile)!, "bad.json");
        File.WriteAllText(file, content);
        using var host = Host(new Dictionary<string, string?>
        {
            ["Leuko:ApiClients:lims"] = "read,subscribe", ["Leuko:ApiClients:lab2"] = "read", ["Leuko:ApiKeysFile"] = file,
        });

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void AnAdminKeyAloneNeedsNoKeysFile()
    {
        // leuko serve --api-key: no file, one admin.
        var key = ApiRig.NewKey();
        var access = ApiAccess.From(new ApiAccessOptions { ApiKeysFile = "" }, adminKey: key);
        var request = new Microsoft.AspNetCore.Http.DefaultHttpContext().Request;
        request.Headers[ApiAccess.KeyHeader] = key;

        Assert.True(access.TryAuthorize(request, ApiRoles.Subscribe, out var caller, out _));
        Assert.Equal(ApiAccess.LocalAdmin, caller.Name);
        Assert.True(caller.IsAdmin);
        request.Headers[ApiAccess.KeyHeader] = _rig.Keys["lims"];
        Assert.False(access.TryAuthorize(request, ApiRoles.Read, out _, out var refused));
        Assert.Equal(403, refused.StatusCode);
    }

    [Fact]
    public async Task AHostWithTheDeployedAccessSettingsStarts()
    {
        // As infra/ sets them: Leuko__ApiClients__NAME and Leuko__ApiKeysFile (environment names, "__" for ":").
        var settings = new Dictionary<string, string?> { ["Leuko:ApiKeysFile"] = _rig.KeysFile };
        foreach (var (client, roles) in _rig.Options.ApiClients)
        {
            settings[$"Leuko:ApiClients:{client}"] = roles;
        }

        using var host = Host(settings);
        await host.StartAsync();
        var access = host.Services.GetRequiredService<ApiAccess>();
        Assert.False(access.IsOpen);
        Assert.Equal(_rig.Options.ApiClients.Keys.Order(StringComparer.Ordinal), access.Callers.Select(c => c.Name));
        await host.StopAsync();
    }

    private static IHost Host(Dictionary<string, string?> settings)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddLeukoApiAccess();
        return builder.Build();
    }
}
