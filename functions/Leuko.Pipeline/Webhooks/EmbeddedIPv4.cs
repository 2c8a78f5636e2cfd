namespace Leuko.Pipeline.Webhooks;

/// <summary>Where the addresses of an IPv6 <see cref="AddressBlock"/> carry an IPv4 address.</summary>
public enum EmbeddedIPv4
{
    /// <summary>No IPv4 address inside.</summary>
    None,

    /// <summary>
    /// IPv4-mapped (<c>::ffff:a.b.c.d</c>, RFC 4291 §2.5.5.2): not an IPv6 destination at all but the IPv4 address
    /// itself as a dual-mode socket spells it, so it is judged exactly as that address (loopback included).
    /// </summary>
    Mapped,

    /// <summary>
    /// The last 32 bits, on the way to that IPv4 address through something else (a NAT64 translator, RFC 6052 §2.2
    /// with a /96 prefix; the deprecated IPv4-compatible form, RFC 4291 §2.5.5.1).
    /// </summary>
    Last32Bits,

    /// <summary>6to4 (RFC 3056 §2): <c>2002:AABB:CCDD::/48</c>, the site's IPv4 address in bits 16 to 47.</summary>
    SixToFour,

    /// <summary>
    /// Teredo (RFC 4380 §4): the Teredo server's IPv4 address in bits 32 to 63 and the client's public IPv4 address
    /// in bits 96 to 127, stored obfuscated (every bit inverted).
    /// </summary>
    Teredo,
}
