using System.Text;

namespace Leuko.Tests;

/// <summary>The forms in which a leaked webhook secret could be found in stored data.</summary>
public static class SecretForms
{
    /// <summary>
    /// The secret as given (<c>whsec_BASE64</c>), its base64 key part, the key bytes in hex and base64url, and the whole
    /// string in base64 and hex: a dump holding none of these holds no secret.
    /// </summary>
    public static IReadOnlyList<string> Of(string secret)
    {
        var keyPart = secret["whsec_".Length..];
        var key = Convert.FromBase64String(keyPart);
        var whole = Encoding.UTF8.GetBytes(secret);
        return
        [
            secret, keyPart, keyPart.TrimEnd('='), Convert.ToHexString(key), System.Buffers.Text.Base64Url.EncodeToString(key),
            Convert.ToBase64String(whole).TrimEnd('='), Convert.ToHexString(whole),
        ];
    }
}
