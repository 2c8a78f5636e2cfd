using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// Signs and verifies deliveries as the Standard Webhooks specification (standardwebhooks.com) says,
/// so that receivers can check them with any of its reference libraries.
/// </summary>
public static class WebhookSigner
{
    /// <summary>The delivery's unique id; receivers use it to drop duplicates (retries keep it).</summary>
    public const string WebhookId = "webhook-id";

    /// <summary>Unix seconds of the attempt; signed, so a captured delivery cannot be replayed later.</summary>
    public const string WebhookTimestamp = "webhook-timestamp";

    /// <summary>Space-separated <c>v1,BASE64</c> signatures, one per secret in use.</summary>
    public const string WebhookSignature = "webhook-signature";

    /// <summary>The prefix that marks a Standard Webhooks secret.</summary>
    public const string SecretPrefix = "whsec_";

    private const string SignaturePrefix = "v1,";

    /// <summary>A fresh secret, <c>whsec_</c> + base64 of 32 random bytes: the key size of HMAC-SHA256.</summary>
    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// The <c>v1,BASE64</c> signature: HMAC-SHA256 keyed by the secret's bytes over <c>id.timestamp.body</c>,
    /// so the id and the time cannot be swapped onto another body.
    /// </summary>
    /// <exception cref="ArgumentException">The secret lacks <c>whsec_</c> or is not base64.</exception>
    public static string Sign(string secret, string webhookId, long timestamp, string body)
    {
        var key = KeyOf(secret);
        return SignaturePrefix + Convert.ToBase64String(Hash(key, webhookId, timestamp, body));
    }

    /// <summary>
    /// The header value: one signature per secret, so a receiver still holding the previous secret
    /// during a rotation's grace period accepts the delivery.
    /// </summary>
    public static string SignatureHeader(IEnumerable<string> secrets, string webhookId, long timestamp, string body)
    {
        ArgumentNullException.ThrowIfNull(secrets);
        return string.Join(' ', secrets.Select(secret => Sign(secret, webhookId, timestamp, body)));
    }

    /// <summary>
    /// True when any <c>v1</c> signature of the header matches (compared in constant time, so timing reveals nothing)
    /// and the timestamp is within <paramref name="tolerance"/> of <paramref name="now"/> (so old deliveries cannot be replayed).
    /// </summary>
    /// <exception cref="ArgumentException">The secret lacks <c>whsec_</c> or is not base64.</exception>
    public static bool Verify(
        string secret, string webhookId, long timestamp, string body, string signatureHeader, DateTimeOffset now, TimeSpan tolerance)
    {
        var key = KeyOf(secret);
        ArgumentNullException.ThrowIfNull(signatureHeader);

        // Int128: a hostile timestamp near long.MinValue/MaxValue must not overflow into "recent".
        var skewMs = (Int128)now.ToUnixTimeMilliseconds() - (Int128)timestamp * 1000;
        if (Int128.Abs(skewMs) > (Int128)(tolerance.Ticks / TimeSpan.TicksPerMillisecond))
        {
            return false;
        }

        var expected = Hash(key, webhookId, timestamp, body);
        var matched = false;
        foreach (var signature in signatureHeader.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (!signature.StartsWith(SignaturePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var given = new byte[expected.Length];
            if (Convert.TryFromBase64String(signature[SignaturePrefix.Length..], given, out var written)
                && written == expected.Length
                && CryptographicOperations.FixedTimeEquals(given, expected))
            {
                matched = true;
            }
        }

        return matched;
    }

    private static byte[] KeyOf(string secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"A webhook secret starts with '{SecretPrefix}'.", nameof(secret));
        }

        byte[] key;
        try
        {
            key = Convert.FromBase64String(secret[SecretPrefix.Length..]);
        }
        catch (FormatException e)
        {
            throw new ArgumentException("A webhook secret is base64 after its prefix.", nameof(secret), e);
        }

        return key.Length > 0 ? key : throw new ArgumentException("A webhook secret has key bytes after its prefix.", nameof(secret));
    }

    private static byte[] Hash(byte[] key, string webhookId, long timestamp, string body)
    {
        ArgumentNullException.ThrowIfNull(webhookId);
        ArgumentNullException.ThrowIfNull(body);
        return HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{webhookId}.{timestamp}.{body}")));
    }
}
