using System.Net;
using System.Net.Sockets;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// Keeps webhook deliveries off internal networks (SSRF): a subscriber chooses the URL, so without this
/// it could make the service call its own loopback, the VNet, or the cloud metadata endpoints that hand out credentials.
/// </summary>
public static class WebhookAddressGuard
{
    /// <summary>
    /// Null when the URL may be subscribed, else why not: an absolute http(s) URL without user info,
    /// HTTPS unless <paramref name="allowLoopback"/> (local development) and the host is loopback.
    /// A host given as an IP literal is also judged by <see cref="CheckAddress"/>; names are judged by
    /// <see cref="CheckHostAsync"/> and again at connect time by <see cref="CreateHandler"/>.
    /// </summary>
    public static string? CheckUrl(string url, bool allowLoopback)
    {
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            return "The URL must be absolute.";
        }

        if (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp)
        {
            return "The URL must be http or https.";
        }

        if (uri.UserInfo.Length > 0)
        {
            return "The URL must not carry user info.";
        }

        var host = uri.IdnHost;
        if (host.Length == 0)
        {
            return "The URL must name a host.";
        }

        var literal = IPAddress.TryParse(host, out var address) ? address : null;
        if (uri.Scheme == Uri.UriSchemeHttp && !(allowLoopback && IsLoopbackHost(host, literal)))
        {
            return "The URL must be https (http only for loopback in development).";
        }

        return literal is null ? null : CheckAddress(literal, allowLoopback);
    }

    /// <summary>
    /// Null when a delivery may connect to the address, else why not: loopback (unless <paramref name="allowLoopback"/>),
    /// private, link-local, cloud metadata, unspecified, carrier-grade NAT, multicast, broadcast and reserved ranges.
    /// IPv4-mapped (and IPv4-compatible, NAT64) IPv6 addresses are judged as the IPv4 address they reach.
    /// </summary>
    public static string? CheckAddress(IPAddress address, bool allowLoopback)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var v6 = address.GetAddressBytes();
            // Bytes, not Equals: a scope id (::1%1) must not make loopback look like something else.
            if (IsIPv4Compatible(v6) && v6[12] == 0 && v6[13] == 0 && v6[14] == 0 && v6[15] is 0 or 1)
            {
                return v6[15] == 0 ? "Unspecified address." : allowLoopback ? null : "Loopback address.";
            }

            if (address.IsIPv4MappedToIPv6 || IsIPv4Compatible(v6) || IsNat64(v6))
            {
                return CheckIPv4(new IPAddress(v6.AsSpan(12, 4)), allowLoopback);
            }

            return CheckIPv6(v6);
        }

        return address.AddressFamily == AddressFamily.InterNetwork
            ? CheckIPv4(address, allowLoopback)
            : "Not an IP address.";
    }

    /// <summary>
    /// Null when every address the host resolves to passes <see cref="CheckAddress"/>, else why not
    /// (any refused address refuses the host, so round-robin DNS cannot slip an internal address in).
    /// An IP literal is judged as is.
    /// </summary>
    public static async Task<string?> CheckHostAsync(string host, bool allowLoopback, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(host))
        {
            return "No host.";
        }

        var (addresses, error) = await ResolveAsync(host, ct).ConfigureAwait(false);
        return error ?? FirstRefusal(host, addresses, allowLoopback);
    }

    /// <summary>
    /// A handler for delivery clients that resolves and checks every address itself at connect time, so a DNS answer
    /// that changes between <see cref="CheckHostAsync"/> and the send (rebinding) still cannot reach an internal address.
    /// No redirects (a 3xx could point inside), no proxy (it would connect on the URL's behalf unchecked),
    /// small response headers and short-lived pooled connections (so DNS changes are seen).
    /// </summary>
    public static SocketsHttpHandler CreateHandler(bool allowLoopback, TimeSpan connectTimeout) => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        ConnectTimeout = connectTimeout,
        MaxResponseHeadersLength = 64, // KiB
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        ConnectCallback = (context, ct) => ConnectAsync(context.DnsEndPoint, allowLoopback, ct),
    };

    private static async ValueTask<Stream> ConnectAsync(DnsEndPoint endPoint, bool allowLoopback, CancellationToken ct)
    {
        var (addresses, error) = await ResolveAsync(endPoint.Host, ct).ConfigureAwait(false);
        var refusal = error ?? FirstRefusal(endPoint.Host, addresses, allowLoopback);
        if (refusal is not null)
        {
            throw new HttpRequestException($"Webhook delivery refused: {refusal}");
        }

        Exception? last = null;
        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endPoint.Port), ct).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw new HttpRequestException($"Could not connect to {endPoint.Host}:{endPoint.Port}.", last);
    }

    private static async Task<(IPAddress[] Addresses, string? Error)> ResolveAsync(string host, CancellationToken ct)
    {
        var trimmed = host.Length > 1 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;
        if (IPAddress.TryParse(trimmed, out var literal))
        {
            return ([literal], null);
        }

        try
        {
            var addresses = await Dns.GetHostAddressesAsync(trimmed, ct).ConfigureAwait(false);
            return addresses.Length > 0 ? (addresses, null) : ([], $"{host} does not resolve.");
        }
        catch (SocketException)
        {
            return ([], $"{host} does not resolve.");
        }
        catch (ArgumentException)
        {
            return ([], $"{host} is not a valid host name.");
        }
    }

    private static string? FirstRefusal(string host, IPAddress[] addresses, bool allowLoopback)
    {
        foreach (var address in addresses)
        {
            if (CheckAddress(address, allowLoopback) is { } reason)
            {
                return $"{host} resolves to {address}: {reason}";
            }
        }

        return null;
    }

    private static bool IsLoopbackHost(string host, IPAddress? literal)
    {
        if (literal is not null)
        {
            var address = literal.IsIPv4MappedToIPv6 ? literal.MapToIPv4() : literal;
            return IPAddress.IsLoopback(address);
        }

        return string.Equals(host.TrimEnd('.'), "localhost", StringComparison.OrdinalIgnoreCase);
    }

    private static string? CheckIPv4(IPAddress address, bool allowLoopback)
    {
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        return (b[0], b[1], b[2], b[3]) switch
        {
            (0, 0, 0, 0) => "Unspecified address.",
            (0, _, _, _) => "Address in 0.0.0.0/8 (this network).",
            (127, _, _, _) => allowLoopback ? null : "Loopback address.",
            (10, _, _, _) => "Private address.",
            (172, >= 16 and <= 31, _, _) => "Private address.",
            (192, 168, _, _) => "Private address.",
            (169, 254, 169, 254) => "Cloud metadata address.",
            (169, 254, _, _) => "Link-local address.",
            (168, 63, 129, 16) => "Azure wire server address.",
            (100, >= 64 and <= 127, _, _) => "Carrier-grade NAT address.",
            (>= 224 and <= 239, _, _, _) => "Multicast address.",
            (255, 255, 255, 255) => "Broadcast address.",
            (>= 240, _, _, _) => "Reserved address.",
            _ => null,
        };
    }

    private static string? CheckIPv6(byte[] b)
    {
        // fd00:ec2::254, the AWS metadata service over IPv6 (inside fc00::/7, named for a clearer reason).
        if (b[0] == 0xfd && b[1] == 0x00 && b[2] == 0x0e && b[3] == 0xc2
            && b.AsSpan(4, 10).IndexOfAnyExcept((byte)0) < 0 && b[14] == 0x02 && b[15] == 0x54)
        {
            return "Cloud metadata address.";
        }

        return b[0] switch
        {
            0xff => "Multicast address.",
            0xfc or 0xfd => "Private address.",
            0xfe when (b[1] & 0xc0) == 0x80 => "Link-local address.",
            0xfe when (b[1] & 0xc0) == 0xc0 => "Site-local address.",
            _ => null,
        };
    }

    // ::a.b.c.d (deprecated, but stacks may still route it as IPv4); :: and ::1 are judged before.
    private static bool IsIPv4Compatible(byte[] b) => b.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0;

    // 64:ff9b::/96, the well-known NAT64 prefix: on a NAT64 network it reaches the embedded IPv4 address.
    private static bool IsNat64(byte[] b) =>
        b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0;
}
