using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Leuko.Pipeline.Secrets;

/// <summary>
/// Envelope encryption of small secrets: each secret gets a fresh 256-bit data key and is encrypted with it by
/// AES-256-GCM; the data key is wrapped by the key-encryption key (<see cref="IKeyEncryptionKey"/>) and stored, wrapped,
/// beside the ciphertext. A context string (the record the secret belongs to) is authenticated with it, so a sealed
/// secret copied onto another record does not open. Unwrapped data keys are kept in memory for
/// <see cref="CacheFor"/> at most, so that signing a delivery does not call Key Vault each time.
/// </summary>
public sealed class EnvelopeEncryption(IKeyEncryptionKey kek, TimeSpan? cacheFor = null, TimeProvider? time = null)
{
    /// <summary>How long an unwrapped data key stays in memory by default: a Key Vault call per secret per 10 minutes at most.</summary>
    public static readonly TimeSpan DefaultCacheFor = TimeSpan.FromMinutes(10);

    /// <summary>Data keys cached at most; beyond it the cache is emptied (a host has a few secrets per subscription).</summary>
    private const int MaxCached = 10_000;

    private const int KeyBytes = 32;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<(string KekId, string Wrapped), (byte[] Key, DateTimeOffset Until)> _dataKeys = new();

    public IKeyEncryptionKey Key => kek;

    public TimeSpan CacheFor { get; } = cacheFor ?? DefaultCacheFor;

    /// <summary>Encrypts <paramref name="secret"/> for the record named by <paramref name="context"/>.</summary>
    public async Task<SealedSecret> SealAsync(string secret, string context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(context);
        var dataKey = RandomNumberGenerator.GetBytes(KeyBytes);
        var plain = Encoding.UTF8.GetBytes(secret);
        try
        {
            var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
            var ciphertext = new byte[plain.Length];
            var tag = new byte[TagBytes];
            using (var aes = new AesGcm(dataKey, TagBytes))
            {
                aes.Encrypt(nonce, plain, ciphertext, tag, Encoding.UTF8.GetBytes(context));
            }

            var wrapped = await kek.WrapAsync(dataKey, cancellationToken);
            return new SealedSecret(
                wrapped.KekId, Convert.ToBase64String(wrapped.Bytes), Convert.ToBase64String(nonce), Convert.ToBase64String(ciphertext), Convert.ToBase64String(tag));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>Decrypts a secret sealed for <paramref name="context"/>.</summary>
    /// <exception cref="SecretDecryptionException">Another KEK wrapped it, it was altered, or it was sealed for another context.</exception>
    public async Task<string> OpenAsync(SealedSecret sealedSecret, string context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sealedSecret);
        ArgumentNullException.ThrowIfNull(context);
        var nonce = Decode(sealedSecret.Nonce, "nonce", context);
        var ciphertext = Decode(sealedSecret.Ciphertext, "ciphertext", context);
        var tag = Decode(sealedSecret.Tag, "tag", context);
        if (nonce.Length != NonceBytes || tag.Length != TagBytes)
        {
            throw new SecretDecryptionException($"the secret of {context} cannot be decrypted: its nonce or tag has the wrong length (the row was altered)");
        }

        var dataKey = await DataKeyAsync(sealedSecret, context, cancellationToken);
        var plain = new byte[ciphertext.Length];
        try
        {
            using var aes = new AesGcm(dataKey, TagBytes);
            aes.Decrypt(nonce, ciphertext, tag, plain, Encoding.UTF8.GetBytes(context));
            return Encoding.UTF8.GetString(plain);
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new SecretDecryptionException(
                $"the secret of {context} cannot be decrypted: its ciphertext, nonce or tag was altered, or it was sealed for another record", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private async Task<byte[]> DataKeyAsync(SealedSecret sealedSecret, string context, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var cacheKey = (sealedSecret.KekId, sealedSecret.WrappedKey);
        if (_dataKeys.TryGetValue(cacheKey, out var cached) && cached.Until > now)
        {
            return cached.Key;
        }

        var dataKey = await kek.UnwrapAsync(new WrappedKey(sealedSecret.KekId, Decode(sealedSecret.WrappedKey, "wrapped data key", context)), cancellationToken);
        if (dataKey.Length != KeyBytes)
        {
            throw new SecretDecryptionException($"the secret of {context} cannot be decrypted: its data key unwraps to {dataKey.Length} bytes, not {KeyBytes}");
        }

        Evict(now);
        _dataKeys[cacheKey] = (dataKey, now + CacheFor);
        return dataKey;
    }

    /// <summary>Drops expired data keys (and all of them past <see cref="MaxCached"/>), so the cache stays bounded in time and size.</summary>
    private void Evict(DateTimeOffset now)
    {
        foreach (var entry in _dataKeys)
        {
            if (entry.Value.Until <= now || _dataKeys.Count >= MaxCached)
            {
                _dataKeys.TryRemove(entry.Key, out _);
            }
        }
    }

    private static byte[] Decode(string value, string what, string context)
    {
        try
        {
            return Convert.FromBase64String(value ?? throw new FormatException());
        }
        catch (FormatException e)
        {
            throw new SecretDecryptionException($"the secret of {context} cannot be decrypted: its {what} is not base64 (the row was altered)", e);
        }
    }
}
