using System.Buffers.Text;
using System.Text.Json;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Leuko.Pipeline.Secrets;

namespace Leuko.Azure.Secrets;

/// <summary>
/// The key-encryption key in Azure Key Vault: an RSA key (<c>webhook-secrets</c>) that wraps and unwraps data keys with
/// RSA-OAEP-256 inside the vault, reached with the app's managed identity (which needs the key's <c>get</c>,
/// <c>wrapKey</c> and <c>unwrapKey</c>: the role Key Vault Crypto Service Encryption User). Configured by the key's
/// versionless URI; new data keys are wrapped by its current version (looked up again every <see cref="VersionRefresh"/>,
/// so a rotated key is taken up without a restart), and each wrapped key records the versioned id that unwraps it.
/// Key Vault's keys REST API is called through an Azure.Core pipeline (bearer token, retries): the Key Vault Keys client
/// library is not available to this build.
/// </summary>
public sealed class KeyVaultKeyEncryptionKey : IKeyEncryptionKey
{
    /// <summary>Key Vault's keys API version (its REST reference: wrapkey, unwrapkey, get key).</summary>
    private const string ApiVersion = "7.4";

    private const string Algorithm = "RSA-OAEP-256";

    /// <summary>How long the key's current version is used before it is looked up again.</summary>
    public static readonly TimeSpan VersionRefresh = TimeSpan.FromMinutes(10);

    private readonly Uri _key;
    private readonly HttpPipeline _pipeline;
    private readonly TimeProvider _time;
    private volatile CurrentVersion? _current;

    public KeyVaultKeyEncryptionKey(Uri keyUri, TokenCredential credential, TimeProvider? time = null)
    {
        _key = keyUri;
        _time = time ?? TimeProvider.System;
        _pipeline = HttpPipelineBuilder.Build(new KeyVaultClientOptions(), new BearerTokenAuthenticationPolicy(credential, ScopeOf(keyUri)));
    }

    public string Description => $"the Key Vault key {_key}";

    /// <summary>
    /// The key's versionless URI, <c>https://VAULT.vault.azure.net/keys/NAME</c> (or a Managed HSM's), checked.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not such a URI (for instance one with a version, which would never see a rotation).</exception>
    public static Uri ParseKeyUri(string value)
    {
        var usage = $"Leuko:SecretsKeyUri '{value}' is not a Key Vault key's versionless URI, https://VAULT.vault.azure.net/keys/NAME";
        if (!Uri.TryCreate(value.TrimEnd('/'), UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps || uri.Query.Length > 0 ||
            uri.Host.Split('.').Length < 3)
        {
            throw new InvalidOperationException(usage);
        }

        var segments = uri.AbsolutePath.Trim('/').Split('/');
        return segments switch
        {
            ["keys", { Length: > 0 }] => uri,
            ["keys", { Length: > 0 }, { Length: > 0 }] => throw new InvalidOperationException(usage + ": give it without the version, so that new secrets use the key's current version"),
            _ => throw new InvalidOperationException(usage),
        };
    }

    /// <summary>The token audience of the vault's cloud: <c>https://vault.azure.net/.default</c> for VAULT.vault.azure.net, and so on.</summary>
    internal static string ScopeOf(Uri keyUri) => $"https://{keyUri.Host[(keyUri.Host.IndexOf('.', StringComparison.Ordinal) + 1)..]}/.default";

    public async Task<WrappedKey> WrapAsync(ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default)
    {
        var kid = await CurrentVersionAsync(cancellationToken);
        using var result = await SendAsync(RequestMethod.Post, new Uri($"{kid}/wrapkey?api-version={ApiVersion}"),
            new { alg = Algorithm, value = Base64Url.EncodeToString(dataKey.Span) }, cancellationToken);
        var root = result.RootElement;
        return new WrappedKey(root.GetProperty("kid").GetString() ?? kid, Base64Url.DecodeFromChars(root.GetProperty("value").GetString()));
    }

    public async Task<byte[]> UnwrapAsync(WrappedKey wrapped, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        if (!Uri.TryCreate(wrapped.KekId, UriKind.Absolute, out var kid) || kid.Host != _key.Host ||
            !kid.AbsolutePath.StartsWith(_key.AbsolutePath.TrimEnd('/') + "/", StringComparison.Ordinal))
        {
            throw new SecretDecryptionException(wrapped.KekId.StartsWith("local:", StringComparison.Ordinal)
                ? $"the data key was wrapped by the local key {wrapped.KekId}, not by {_key}: it was written by a host using a local key file (Leuko:SecretsKeyFile)"
                : $"the data key was wrapped by {wrapped.KekId}, not by a version of {_key}");
        }

        try
        {
            using var result = await SendAsync(RequestMethod.Post, new Uri($"{wrapped.KekId}/unwrapkey?api-version={ApiVersion}"),
                new { alg = Algorithm, value = Base64Url.EncodeToString(wrapped.Bytes) }, cancellationToken);
            return Base64Url.DecodeFromChars(result.RootElement.GetProperty("value").GetString());
        }
        catch (RequestFailedException e) when (e.Status is 400 or 404)
        {
            // 400: the wrapped bytes do not decrypt under that version (altered); 404: that version no longer exists.
            throw new SecretDecryptionException($"Key Vault refused to unwrap the data key with {wrapped.KekId} ({e.Status}: {e.ErrorCode ?? e.Message})", e);
        }
    }

    private async Task<string> CurrentVersionAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_current is { } current && current.Until > now)
        {
            return current.Kid;
        }

        using var key = await SendAsync(RequestMethod.Get, new Uri($"{_key}?api-version={ApiVersion}"), null, cancellationToken);
        var kid = key.RootElement.GetProperty("key").GetProperty("kid").GetString()
                  ?? throw new InvalidOperationException($"Key Vault returned no key id for {_key}");
        _current = new CurrentVersion(kid, now + VersionRefresh);
        return kid;
    }

    private async Task<JsonDocument> SendAsync(RequestMethod method, Uri uri, object? body, CancellationToken cancellationToken)
    {
        using var message = _pipeline.CreateMessage();
        message.Request.Method = method;
        message.Request.Uri.Reset(uri);
        message.Request.Headers.Add("Accept", "application/json");
        if (body is not null)
        {
            message.Request.Headers.Add("Content-Type", "application/json");
            message.Request.Content = RequestContent.Create(JsonSerializer.SerializeToUtf8Bytes(body));
        }

        await _pipeline.SendAsync(message, cancellationToken);
        var response = message.Response;
        if (response.IsError)
        {
            throw new RequestFailedException(response);
        }

        return await JsonDocument.ParseAsync(response.ContentStream ?? Stream.Null, cancellationToken: cancellationToken);
    }

    /// <summary>The key's current version, and until when it is taken as current (one reference, swapped whole).</summary>
    private sealed record CurrentVersion(string Kid, DateTimeOffset Until);

    /// <summary>The pipeline's settings: Azure.Core's defaults (retries with back-off on 429 and 5xx, a network timeout).</summary>
    private sealed class KeyVaultClientOptions : ClientOptions;
}
