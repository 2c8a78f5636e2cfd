using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Leuko.Azure.Hosting;

/// <summary>Registers <see cref="ApiAccess"/>: its options bound from section <c>Leuko</c> and validated when the host starts.</summary>
public static class ApiAccessServices
{
    /// <summary>
    /// Named client keys, required (the function app; <c>leuko serve</c> with a key). <paramref name="adminKey"/>:
    /// <c>leuko serve --api-key</c>; <paramref name="keysFile"/>: <c>--api-keys</c>, over <c>Leuko:ApiKeysFile</c>.
    /// </summary>
    public static IServiceCollection AddLeukoApiAccess(this IServiceCollection services, string? adminKey = null, string? keysFile = null)
    {
        var options = services.AddOptions<ApiAccessOptions>().BindConfiguration(ApiAccessOptions.Section);
        if (keysFile is not null)
        {
            options.PostConfigure(o => o.ApiKeysFile = keysFile);
        }

        services.AddSingleton<IValidateOptions<ApiAccessOptions>>(new Validator(adminKey));
        options.ValidateOnStart();
        return services.AddSingleton(sp => ApiAccess.From(sp.GetRequiredService<IOptions<ApiAccessOptions>>().Value, adminKey));
    }

    /// <summary>No key: every request is an admin's. Only <c>leuko serve</c> on loopback, for development.</summary>
    public static IServiceCollection AddOpenApiAccess(this IServiceCollection services) => services.AddSingleton(ApiAccess.Open());

    private sealed class Validator(string? adminKey) : IValidateOptions<ApiAccessOptions>
    {
        public ValidateOptionsResult Validate(string? name, ApiAccessOptions options) =>
            ApiAccess.Check(options, adminKey) is { Count: > 0 } errors ? ValidateOptionsResult.Fail(errors) : ValidateOptionsResult.Success;
    }
}
