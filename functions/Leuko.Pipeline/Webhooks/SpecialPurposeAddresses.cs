using System.Net;
using System.Net.Sockets;
using static Leuko.Pipeline.Webhooks.EmbeddedIPv4;
using static Leuko.Pipeline.Webhooks.WebhookReach;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// The one table the webhook address guard decides by: every row of the IANA IPv4 and IPv6 Special-Purpose Address
/// Registries (https://www.iana.org/assignments/iana-ipv4-special-registry/ and
/// https://www.iana.org/assignments/iana-ipv6-special-registry/, RFC 6890 as updated by RFC 8190 and the RFCs cited
/// per row), the few blocks of the general address-space registries a receiver can never be in (multicast, IPv6
/// outside global unicast), and the cloud metadata addresses. An address is judged by the most specific row that
/// contains it; <c>0.0.0.0/0</c> and <c>::/0</c> make every address match one.
/// </summary>
/// <remarks>
/// Only rows the registry marks globally reachable are ever <see cref="WebhookReach.Allowed"/>, with one exception:
/// IPv4-mapped addresses, which are IPv4 addresses in IPv6 notation and are judged as the IPv4 address they are.
/// Some globally reachable rows are refused all the same: anycast service addresses (PCP, TURN, SRP, AMT, AS112), which
/// reach whichever instance is nearest, often the network's own gateway, and identifier blocks (ORCHIDv2, DETs),
/// which are not locators; no subscriber's receiver lives at either.
/// 6to4 and Teredo are refused whatever IPv4 address they embed: both reach it through a relay the network picks
/// (the registry marks them N/A, RFC 7526 deprecates 6to4's anycast relays), and no receiver needs them;
/// the embedded address is still decoded, so a refusal says where the address would have led.
/// </remarks>
public static class SpecialPurposeAddresses
{
    public static IReadOnlyList<AddressBlock> Blocks { get; } =
    [
        // Everything not named below: unicast space the RIRs allocate (IANA IPv4 Address Space Registry).
        Row("0.0.0.0/0", "IPv4 unicast", "RFC 791", true, Allowed),

        // IANA IPv4 Special-Purpose Address Registry, every row.
        Row("0.0.0.0/8", "\"This network\"", "RFC 791 §3.2", false, Refused),
        Row("0.0.0.0/32", "\"This host on this network\"", "RFC 1122 §3.2.1.3", false, Refused),
        Row("10.0.0.0/8", "Private-Use", "RFC 1918", false, Refused),
        Row("100.64.0.0/10", "Shared Address Space (carrier-grade NAT)", "RFC 6598", false, Refused),
        Row("127.0.0.0/8", "Loopback", "RFC 1122 §3.2.1.3", false, Loopback),
        Row("169.254.0.0/16", "Link Local", "RFC 3927", false, Refused),
        Row("172.16.0.0/12", "Private-Use", "RFC 1918", false, Refused),
        Row("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 §2.1", false, Refused),
        Row("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", false, Refused),
        Row("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", false, Refused),
        Row("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", true, Refused),
        Row("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", true, Refused),
        Row("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", false, Refused),
        Row("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", false, Refused),
        Row("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", false, Refused),
        Row("192.31.196.0/24", "AS112-v4", "RFC 7535", true, Refused),
        Row("192.52.193.0/24", "AMT", "RFC 7450", true, Refused),
        Row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", null, Refused),
        Row("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", false, Refused),
        Row("192.168.0.0/16", "Private-Use", "RFC 1918", false, Refused),
        Row("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", true, Refused),
        Row("198.18.0.0/15", "Benchmarking", "RFC 2544", false, Refused),
        Row("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", false, Refused),
        Row("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", false, Refused),
        Row("240.0.0.0/4", "Reserved", "RFC 1112 §4", false, Refused),
        Row("255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 §7", false, Refused),

        // Not in the special-purpose registry: multicast (IANA IPv4 Multicast Address Space Registry) and the cloud
        // addresses that hand out credentials or configuration to the machine that asks.
        Row("224.0.0.0/4", "Multicast", "RFC 5771", false, Refused),
        Row("169.254.169.254/32", "Cloud instance metadata service (Azure IMDS, AWS, Google Cloud)",
            "learn.microsoft.com/azure/virtual-machines/instance-metadata-service", false, Refused),
        Row("168.63.129.16/32", "Azure wire server (platform DNS, DHCP, health probes, VM agent)",
            "learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16", false, Refused),

        // IPv6 outside 2000::/3 is not global unicast: unassigned or reserved by the IETF (IANA IPv6 Address Space Registry).
        Row("::/0", "IPv6 outside global unicast (reserved by the IETF)", "RFC 4291 §2.4", false, Refused),
        Row("2000::/3", "IPv6 global unicast", "RFC 4291 §2.4", true, Allowed),
        Row("::/96", "IPv4-compatible IPv6 address (deprecated)", "RFC 4291 §2.5.5.1", false, Refused, Last32Bits),
        Row("fec0::/10", "Site-local unicast (deprecated)", "RFC 3879", false, Refused),
        Row("ff00::/8", "Multicast", "RFC 4291 §2.7", false, Refused),

        // IANA IPv6 Special-Purpose Address Registry, every row.
        Row("::1/128", "Loopback Address", "RFC 4291", false, Loopback),
        Row("::/128", "Unspecified Address", "RFC 4291", false, Refused),
        Row("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", false, Allowed, Mapped),
        Row("64:ff9b::/96", "IPv4-IPv6 Translation (NAT64 well-known prefix)", "RFC 6052", true, Allowed, Last32Bits),
        // Local-use prefixes sit under this /48 at a length the operator picks (RFC 6052 §2.2); the last 32 bits
        // (a /96, the usual choice) are decoded only to say where it may lead: the row is refused whatever it embeds.
        Row("64:ff9b:1::/48", "IPv4-IPv6 Translation (local-use NAT64)", "RFC 8215", false, Refused, Last32Bits),
        Row("100::/64", "Discard-Only Address Block", "RFC 6666", false, Refused),
        Row("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", false, Refused),
        Row("2001::/23", "IETF Protocol Assignments", "RFC 2928", false, Refused),
        Row("2001::/32", "TEREDO", "RFC 4380, RFC 8190", null, Refused, Teredo),
        Row("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", true, Refused),
        Row("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", true, Refused),
        Row("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", true, Refused),
        Row("2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752", false, Refused),
        Row("2001:3::/32", "AMT", "RFC 7450", true, Refused),
        Row("2001:4:112::/48", "AS112-v6", "RFC 7535", true, Refused),
        Row("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", null, Refused),
        Row("2001:20::/28", "ORCHIDv2", "RFC 7343", true, Refused),
        Row("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", true, Refused),
        Row("2001:db8::/32", "Documentation", "RFC 3849", false, Refused),
        Row("2002::/16", "6to4", "RFC 3056", null, Refused, SixToFour),
        Row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", true, Refused),
        Row("3fff::/20", "Documentation", "RFC 9637", false, Refused),
        Row("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", false, Refused),
        Row("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", false, Refused),
        Row("fe80::/10", "Link-Local Unicast", "RFC 4291", false, Refused),

        // Not in the registry: the AWS instance metadata service over IPv6 (inside fc00::/7, named for a clearer reason).
        Row("fd00:ec2::254/128", "Cloud instance metadata service (AWS, IPv6)",
            "docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html", false, Refused),
    ];

    private static readonly AddressBlock MappedBlock = Blocks.Single(b => b.Embeds == Mapped);

    /// <summary>The most specific row that contains <paramref name="address"/> (a scope id is ignored).</summary>
    public static AddressBlock Find(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"{address} is not an IPv4 or IPv6 address.", nameof(address));
        }

        // IPNetwork.Contains matches an IPv4-mapped address against IPv4 networks (on purpose, .NET 9 on), and against
        // IPv6 networks with IPv4 arithmetic (dotnet/runtime#131861, in .NET 10.0.12: ::ffff:8.8.8.8 "is in" 2000::/3).
        // Its one row is ::ffff:0:0/96, so it is found without Contains, and other addresses only among their own family.
        if (address.IsIPv4MappedToIPv6)
        {
            return MappedBlock;
        }

        AddressBlock? best = null;
        foreach (var block in Blocks)
        {
            if (block.Prefix.BaseAddress.AddressFamily == address.AddressFamily
                && block.Prefix.Contains(address)
                && (best is null || block.Prefix.PrefixLength > best.Prefix.PrefixLength))
            {
                best = block;
            }
        }

        // 0.0.0.0/0 and ::/0 contain every address of their family.
        return best!;
    }

    /// <summary>The IPv4 addresses <paramref name="address"/> carries as <paramref name="embeds"/> lays them out.</summary>
    public static IReadOnlyList<IPAddress> EmbeddedIn(IPAddress address, EmbeddedIPv4 embeds)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (embeds == None || address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return [];
        }

        var b = address.GetAddressBytes();
        return embeds switch
        {
            Mapped or Last32Bits => [new IPAddress(b.AsSpan(12, 4))],
            SixToFour => [new IPAddress(b.AsSpan(2, 4))],
            Teredo => [new IPAddress(b.AsSpan(4, 4)), new IPAddress(Inverted(b.AsSpan(12, 4)))],
            _ => throw new ArgumentOutOfRangeException(nameof(embeds), embeds, null),
        };
    }

    private static byte[] Inverted(ReadOnlySpan<byte> bytes)
    {
        var inverted = new byte[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            inverted[i] = (byte)~bytes[i];
        }

        return inverted;
    }

    private static AddressBlock Row(
        string prefix, string name, string reference, bool? globallyReachable, WebhookReach webhook, EmbeddedIPv4 embeds = None) =>
        new(IPNetwork.Parse(prefix), name, reference, globallyReachable, webhook, embeds);
}
