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
    /// Null when a delivery may connect to the address, else why not, by <see cref="SpecialPurposeAddresses"/>: the
    /// most specific row that contains it decides. An IPv6 address that embeds an IPv4 address (IPv4-mapped,
    /// IPv4-compatible, NAT64, 6to4, Teredo server and client) is refused when any IPv4 address it embeds is refused,
    /// and otherwise as its row says (only IPv4-mapped and the NAT64 well-known prefix are allowed at all).
    /// Loopback is refused unless <paramref name="allowLoopback"/> (local development); an embedded loopback address
    /// only counts as loopback in the IPv4-mapped form, which is the IPv4 address itself.
    /// </summary>
    public static string? CheckAddress(IPAddress address, bool allowLoopback)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            return "Not an IP address.";
        }

        var block = SpecialPurposeAddresses.Find(address);
        var embedded = SpecialPurposeAddresses.EmbeddedIn(address, block.Embeds);
        foreach (var inside in embedded)
        {
            var inner = SpecialPurposeAddresses.Find(inside);
            if (!MayReach(inner, allowLoopback && block.Embeds == EmbeddedIPv4.Mapped))
            {
                return $"{Describe(block)}, for {inside}: {Describe(inner)}: {Why(inner)}.";
            }
        }

        if (MayReach(block, allowLoopback))
        {
            return null;
        }

        return embedded.Count == 0
            ? $"{Describe(block)}: {Why(block)}."
            : $"{Describe(block)}, for {string.Join(" and ", embedded)}: {Why(block)}.";
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
            return SpecialPurposeAddresses.Find(address).Webhook == WebhookReach.Loopback;
        }

        return string.Equals(host.TrimEnd('.'), "localhost", StringComparison.OrdinalIgnoreCase);
    }

    private static bool MayReach(AddressBlock block, bool allowLoopback) =>
        block.Webhook == WebhookReach.Allowed || (allowLoopback && block.Webhook == WebhookReach.Loopback);

    private static string Describe(AddressBlock block) => $"{block.Name}, {block.Prefix} ({block.Reference})";

    private static string Why(AddressBlock block) => block switch
    {
        { Webhook: WebhookReach.Loopback } => "loopback, allowed only in local development",
        { GloballyReachable: false } => "not globally reachable",
        { GloballyReachable: null } => "a transition address, reached through a relay the network picks",
        _ => "an anycast service or identifier block, never a subscriber's own receiver",
    };
}
