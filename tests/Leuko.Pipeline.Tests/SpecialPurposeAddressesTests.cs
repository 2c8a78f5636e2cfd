using System.Net;
using System.Net.Sockets;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Tests;

/// <summary>
/// The guard's table, row by row: each row over its own addresses (data-driven over the table itself), and, written
/// out independently of it, the first and last address of every block and its neighbours, with the row that must
/// judge each and the decision a subscriber would see.
/// </summary>
public class SpecialPurposeAddressesTests
{
    // address, the row that must judge it, and the decision: allowed, refused, or loopback (allowed only in development).
    // Every row of the table appears here at least once (EveryRowHasAnExplicitCase).
    private static readonly string[] Cases =
    [
        // IPv4: every special-purpose block's first and last address and the addresses either side of it.
        "0.0.0.0            0.0.0.0/32          refused",
        "0.0.0.1            0.0.0.0/8           refused",
        "0.255.255.255      0.0.0.0/8           refused",
        "1.0.0.0            0.0.0.0/0           allowed",
        "8.8.8.8            0.0.0.0/0           allowed",
        "9.255.255.255      0.0.0.0/0           allowed",
        "10.0.0.0           10.0.0.0/8          refused",
        "10.255.255.255     10.0.0.0/8          refused",
        "11.0.0.0           0.0.0.0/0           allowed",
        "100.63.255.255     0.0.0.0/0           allowed",
        "100.64.0.0         100.64.0.0/10       refused",
        "100.100.100.200    100.64.0.0/10       refused",
        "100.127.255.255    100.64.0.0/10       refused",
        "100.128.0.0        0.0.0.0/0           allowed",
        "126.255.255.255    0.0.0.0/0           allowed",
        "127.0.0.0          127.0.0.0/8         loopback",
        "127.0.0.1          127.0.0.0/8         loopback",
        "127.255.255.255    127.0.0.0/8         loopback",
        "128.0.0.0          0.0.0.0/0           allowed",
        "168.63.129.15      0.0.0.0/0           allowed",
        "168.63.129.16      168.63.129.16/32    refused",
        "168.63.129.17      0.0.0.0/0           allowed",
        "169.253.255.255    0.0.0.0/0           allowed",
        "169.254.0.0        169.254.0.0/16      refused",
        "169.254.169.253    169.254.0.0/16      refused",
        "169.254.169.254    169.254.169.254/32  refused",
        "169.254.169.255    169.254.0.0/16      refused",
        "169.254.255.255    169.254.0.0/16      refused",
        "169.255.0.0        0.0.0.0/0           allowed",
        "172.15.255.255     0.0.0.0/0           allowed",
        "172.16.0.0         172.16.0.0/12       refused",
        "172.31.255.255     172.16.0.0/12       refused",
        "172.32.0.0         0.0.0.0/0           allowed",
        "191.255.255.255    0.0.0.0/0           allowed",
        "192.0.0.0          192.0.0.0/29        refused",
        "192.0.0.7          192.0.0.0/29        refused",
        "192.0.0.8          192.0.0.8/32        refused",
        "192.0.0.9          192.0.0.9/32        refused",
        "192.0.0.10         192.0.0.10/32       refused",
        "192.0.0.11         192.0.0.0/24        refused",
        "192.0.0.169        192.0.0.0/24        refused",
        "192.0.0.170        192.0.0.170/32      refused",
        "192.0.0.171        192.0.0.171/32      refused",
        "192.0.0.172        192.0.0.0/24        refused",
        "192.0.0.192        192.0.0.0/24        refused",
        "192.0.0.255        192.0.0.0/24        refused",
        "192.0.1.0          0.0.0.0/0           allowed",
        "192.0.1.255        0.0.0.0/0           allowed",
        "192.0.2.0          192.0.2.0/24        refused",
        "192.0.2.255        192.0.2.0/24        refused",
        "192.0.3.0          0.0.0.0/0           allowed",
        "192.31.195.255     0.0.0.0/0           allowed",
        "192.31.196.0       192.31.196.0/24     refused",
        "192.31.196.255     192.31.196.0/24     refused",
        "192.31.197.0       0.0.0.0/0           allowed",
        "192.52.192.255     0.0.0.0/0           allowed",
        "192.52.193.0       192.52.193.0/24     refused",
        "192.52.193.255     192.52.193.0/24     refused",
        "192.52.194.0       0.0.0.0/0           allowed",
        "192.88.98.255      0.0.0.0/0           allowed",
        "192.88.99.0        192.88.99.0/24      refused",
        "192.88.99.1        192.88.99.0/24      refused",
        "192.88.99.2        192.88.99.2/32      refused",
        "192.88.99.3        192.88.99.0/24      refused",
        "192.88.99.255      192.88.99.0/24      refused",
        "192.88.100.0       0.0.0.0/0           allowed",
        "192.167.255.255    0.0.0.0/0           allowed",
        "192.168.0.0        192.168.0.0/16      refused",
        "192.168.255.255    192.168.0.0/16      refused",
        "192.169.0.0        0.0.0.0/0           allowed",
        "192.175.47.255     0.0.0.0/0           allowed",
        "192.175.48.0       192.175.48.0/24     refused",
        "192.175.48.255     192.175.48.0/24     refused",
        "192.175.49.0       0.0.0.0/0           allowed",
        "198.17.255.255     0.0.0.0/0           allowed",
        "198.18.0.0         198.18.0.0/15       refused",
        "198.19.255.255     198.18.0.0/15       refused",
        "198.20.0.0         0.0.0.0/0           allowed",
        "198.51.99.255      0.0.0.0/0           allowed",
        "198.51.100.0       198.51.100.0/24     refused",
        "198.51.100.255     198.51.100.0/24     refused",
        "198.51.101.0       0.0.0.0/0           allowed",
        "203.0.112.255      0.0.0.0/0           allowed",
        "203.0.113.0        203.0.113.0/24      refused",
        "203.0.113.255      203.0.113.0/24      refused",
        "203.0.114.0        0.0.0.0/0           allowed",
        "223.255.255.255    0.0.0.0/0           allowed",
        "224.0.0.0          224.0.0.0/4         refused",
        "239.255.255.255    224.0.0.0/4         refused",
        "240.0.0.0          240.0.0.0/4         refused",
        "255.255.255.254    240.0.0.0/4         refused",
        "255.255.255.255    255.255.255.255/32  refused",

        // IPv6 below global unicast, and the IPv4 forms.
        "::                                         ::/128              refused",
        "::1                                        ::1/128             loopback",
        "::2                                        ::/96               refused",
        "::8.8.8.8                                  ::/96               refused",
        "::255.255.255.255                          ::/96               refused",
        "::1:0:0                                    ::/0                refused",
        "::fffe:ffff:ffff                           ::/0                refused",
        "::ffff:0.0.0.0                             ::ffff:0:0/96       refused",
        "::ffff:8.8.8.8                             ::ffff:0:0/96       allowed",
        "::ffff:10.0.0.1                            ::ffff:0:0/96       refused",
        "::ffff:127.0.0.1                           ::ffff:0:0/96       loopback",
        "::ffff:169.254.169.254                     ::ffff:0:0/96       refused",
        "::ffff:255.255.255.255                     ::ffff:0:0/96       refused",
        "::1:0:0:0                                  ::/0                refused",
        "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff      ::/0                refused",
        "64:ff9b::                                  64:ff9b::/96        refused",
        "64:ff9b::8.8.8.8                           64:ff9b::/96        allowed",
        "64:ff9b::10.0.0.1                          64:ff9b::/96        refused",
        "64:ff9b::127.0.0.1                         64:ff9b::/96        refused",
        "64:ff9b::169.254.169.254                   64:ff9b::/96        refused",
        "64:ff9b::255.255.255.255                   64:ff9b::/96        refused",
        "64:ff9b::1:0:0                             ::/0                refused",
        "64:ff9b:1::                                64:ff9b:1::/48      refused",
        "64:ff9b:1::8.8.8.8                         64:ff9b:1::/48      refused",
        "64:ff9b:1::169.254.169.254                 64:ff9b:1::/48      refused",
        "64:ff9b:1:ffff:ffff:ffff:ffff:ffff         64:ff9b:1::/48      refused",
        "64:ff9b:2::                                ::/0                refused",
        "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff      ::/0                refused",
        "100::                                      100::/64            refused",
        "100::1                                     100::/64            refused",
        "100::ffff:ffff:ffff:ffff                   100::/64            refused",
        "100:0:0:1::                                100:0:0:1::/64      refused",
        "100:0:0:1:ffff:ffff:ffff:ffff              100:0:0:1::/64      refused",
        "100:0:0:2::                                ::/0                refused",
        "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    ::/0                refused",

        // Global unicast and the special-purpose blocks inside it.
        "2000::                                     2000::/3            allowed",
        "2001::                                     2001::/32           refused",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2       2001::/32           refused",
        "2001:0:ffff:ffff:ffff:ffff:ffff:ffff       2001::/32           refused",
        "2001:1::                                   2001::/23           refused",
        "2001:1::1                                  2001:1::1/128       refused",
        "2001:1::2                                  2001:1::2/128       refused",
        "2001:1::3                                  2001:1::3/128       refused",
        "2001:1::4                                  2001::/23           refused",
        "2001:2::                                   2001:2::/48         refused",
        "2001:2:0:ffff:ffff:ffff:ffff:ffff          2001:2::/48         refused",
        "2001:2:1::                                 2001::/23           refused",
        "2001:3::                                   2001:3::/32         refused",
        "2001:3:ffff:ffff:ffff:ffff:ffff:ffff       2001:3::/32         refused",
        "2001:4::                                   2001::/23           refused",
        "2001:4:111:ffff:ffff:ffff:ffff:ffff        2001::/23           refused",
        "2001:4:112::                               2001:4:112::/48     refused",
        "2001:4:112:ffff:ffff:ffff:ffff:ffff        2001:4:112::/48     refused",
        "2001:4:113::                               2001::/23           refused",
        "2001:f:ffff:ffff:ffff:ffff:ffff:ffff       2001::/23           refused",
        "2001:10::                                  2001:10::/28        refused",
        "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff      2001:10::/28        refused",
        "2001:20::                                  2001:20::/28        refused",
        "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff      2001:20::/28        refused",
        "2001:30::                                  2001:30::/28        refused",
        "2001:3f:ffff:ffff:ffff:ffff:ffff:ffff      2001:30::/28        refused",
        "2001:40::                                  2001::/23           refused",
        "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff     2001::/23           refused",
        "2001:200::                                 2000::/3            allowed",
        "2001:4860:4860::8888                       2000::/3            allowed",
        "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff     2000::/3            allowed",
        "2001:db8::                                 2001:db8::/32       refused",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff     2001:db8::/32       refused",
        "2001:db9::                                 2000::/3            allowed",
        "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff    2000::/3            allowed",
        "2002::                                     2002::/16           refused",
        "2002:808:808::                             2002::/16           refused",
        "2002:a9fe:a9fe::                           2002::/16           refused",
        "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff    2002::/16           refused",
        "2003::                                     2000::/3            allowed",
        "2606:4700:4700::1111                       2000::/3            allowed",
        "2620:4f:7fff:ffff:ffff:ffff:ffff:ffff      2000::/3            allowed",
        "2620:4f:8000::                             2620:4f:8000::/48   refused",
        "2620:4f:8000:ffff:ffff:ffff:ffff:ffff      2620:4f:8000::/48   refused",
        "2620:4f:8001::                             2000::/3            allowed",
        "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff    2000::/3            allowed",
        "3fff::                                     3fff::/20           refused",
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff     3fff::/20           refused",
        "3fff:1000::                                2000::/3            allowed",
        "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    2000::/3            allowed",

        // Above global unicast.
        "4000::                                     ::/0                refused",
        "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    ::/0                refused",
        "5f00::                                     5f00::/16           refused",
        "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff    5f00::/16           refused",
        "5f01::                                     ::/0                refused",
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    ::/0                refused",
        "fc00::                                     fc00::/7            refused",
        "fd00:ec2::253                              fc00::/7            refused",
        "fd00:ec2::254                              fd00:ec2::254/128   refused",
        "fd00:ec2::255                              fc00::/7            refused",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    fc00::/7            refused",
        "fe00::                                     ::/0                refused",
        "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff    ::/0                refused",
        "fe80::                                     fe80::/10           refused",
        "fe80::1%2                                  fe80::/10           refused",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff    fe80::/10           refused",
        "fec0::                                     fec0::/10           refused",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    fec0::/10           refused",
        "ff00::                                     ff00::/8            refused",
        "ff02::1                                    ff00::/8            refused",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff    ff00::/8            refused",
    ];

    public static TheoryData<string, string, string> ExplicitCases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var line in Cases)
        {
            var (address, row, decision) = Split(line);
            data.Add(address, row, decision);
        }

        return data;
    }

    public static TheoryData<string> Rows()
    {
        var data = new TheoryData<string>();
        foreach (var block in SpecialPurposeAddresses.Blocks)
        {
            data.Add(block.Prefix.ToString());
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ExplicitCases))]
    public void EachAddressIsJudgedByItsRow(string address, string row, string decision)
    {
        var ip = IPAddress.Parse(address);
        Assert.Equal(row, SpecialPurposeAddresses.Find(ip).Prefix.ToString());

        var strict = WebhookAddressGuard.CheckAddress(ip, allowLoopback: false);
        var development = WebhookAddressGuard.CheckAddress(ip, allowLoopback: true);
        switch (decision)
        {
            case "allowed":
                Assert.Null(strict);
                Assert.Null(development);
                break;
            case "refused":
                Assert.NotNull(strict);
                Assert.NotNull(development);
                break;
            case "loopback":
                Assert.NotNull(strict);
                Assert.Null(development);
                break;
            default:
                Assert.Fail($"unknown decision {decision}");
                break;
        }
    }

    [Fact]
    public void EveryRowHasAnExplicitCase()
    {
        var judged = Cases.Select(line => Split(line).Row).ToHashSet();
        var rows = SpecialPurposeAddresses.Blocks.Select(b => b.Prefix.ToString()).ToList();
        Assert.Equal([], rows.Except(judged));
        Assert.Equal([], judged.Except(rows));
    }

    [Fact]
    public void EachPrefixIsOneRow() =>
        Assert.Equal(SpecialPurposeAddresses.Blocks.Count, SpecialPurposeAddresses.Blocks.Select(b => b.Prefix).Distinct().Count());

    [Theory]
    [MemberData(nameof(Rows))]
    public void OnlyGloballyReachableRowsAreAllowed(string prefix)
    {
        var block = Row(prefix);
        if (block.Webhook == WebhookReach.Allowed)
        {
            // The one exception: an IPv4-mapped address is the IPv4 address itself, judged as that address.
            Assert.True(block.GloballyReachable == true || block.Embeds == EmbeddedIPv4.Mapped, $"{prefix} is allowed but not globally reachable");
        }

        Assert.False(string.IsNullOrWhiteSpace(block.Name));
        Assert.Matches(@"^(RFC \d+|learn\.microsoft\.com/|docs\.aws\.amazon\.com/)", block.Reference);
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void EveryRowJudgesItsOwnAddresses(string prefix)
    {
        var block = Row(prefix);
        var (first, last) = Bounds(block.Prefix);
        var width = block.Prefix.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 4 : 16;
        var max = width == 4 ? uint.MaxValue : UInt128.MaxValue;

        // Its first and last addresses are its own or a more specific row's inside it; the addresses either side are not its.
        foreach (var edge in new[] { first, last })
        {
            var found = SpecialPurposeAddresses.Find(Address(edge, width));
            Assert.True(found == block || (found.Prefix.PrefixLength > block.Prefix.PrefixLength && block.Prefix.Contains(found.Prefix.BaseAddress)),
                $"{Address(edge, width)} found {found.Prefix} in {prefix}");
        }

        if (first > 0)
        {
            Assert.NotEqual(block, SpecialPurposeAddresses.Find(Address(first - 1, width)));
        }

        if (last < max)
        {
            Assert.NotEqual(block, SpecialPurposeAddresses.Find(Address(last + 1, width)));
        }

        // Some address decides by this row (no row is wholly shadowed by more specific ones), and the guard decides as its column says.
        var own = new[] { first, last, first + ((last - first) / 2) + 1, first + 1, last - 1 }
            .Where(n => n >= first && n <= last)
            .Select(n => Address(n, width))
            .FirstOrDefault(a => SpecialPurposeAddresses.Find(a) == block);
        Assert.NotNull(own);

        if (block.Embeds == EmbeddedIPv4.None)
        {
            var strict = WebhookAddressGuard.CheckAddress(own, allowLoopback: false);
            var development = WebhookAddressGuard.CheckAddress(own, allowLoopback: true);
            Assert.Equal(block.Webhook == WebhookReach.Allowed, strict is null);
            Assert.Equal(block.Webhook != WebhookReach.Refused, development is null);
            if (strict is not null)
            {
                Assert.Contains(block.Prefix.ToString(), strict, StringComparison.Ordinal);
                Assert.Contains(block.Reference, strict, StringComparison.Ordinal);
            }

            return;
        }

        // A row that embeds an IPv4 address: never allowed for a refused IPv4 address, allowed for a public one only if the row is.
        var toPrivate = WithEmbedded(block, IPAddress.Parse("10.0.0.1"));
        var toPublic = WithEmbedded(block, IPAddress.Parse("8.8.8.8"));
        Assert.Equal(block, SpecialPurposeAddresses.Find(toPrivate));
        Assert.Equal(block, SpecialPurposeAddresses.Find(toPublic));
        Assert.All(SpecialPurposeAddresses.EmbeddedIn(toPublic, block.Embeds), a => Assert.Equal(IPAddress.Parse("8.8.8.8"), a));

        var refusal = WebhookAddressGuard.CheckAddress(toPrivate, allowLoopback: true);
        Assert.NotNull(refusal);
        Assert.Contains("10.0.0.1", refusal, StringComparison.Ordinal);
        Assert.Contains("10.0.0.0/8", refusal, StringComparison.Ordinal);
        Assert.Equal(block.Webhook == WebhookReach.Allowed, WebhookAddressGuard.CheckAddress(toPublic, allowLoopback: false) is null);
    }

    [Fact]
    public void TeredoDecodesItsServerAndItsObfuscatedClient()
    {
        // Server 65.54.227.120; client 192.0.2.45 (port 40000), stored inverted as 3fff:fdd2 (and the port as 63bf).
        var address = IPAddress.Parse("2001:0:4136:e378:8000:63bf:3fff:fdd2");
        var block = SpecialPurposeAddresses.Find(address);
        Assert.Equal(EmbeddedIPv4.Teredo, block.Embeds);
        Assert.Equal(new[] { IPAddress.Parse("65.54.227.120"), IPAddress.Parse("192.0.2.45") }, SpecialPurposeAddresses.EmbeddedIn(address, block.Embeds));
    }

    [Theory]
    [InlineData("2002:a9fe:a9fe::", EmbeddedIPv4.SixToFour, "169.254.169.254")]
    [InlineData("2002:c0a8:101:1::1", EmbeddedIPv4.SixToFour, "192.168.1.1")]
    [InlineData("::ffff:a9fe:a9fe", EmbeddedIPv4.Mapped, "169.254.169.254")]
    [InlineData("::a00:1", EmbeddedIPv4.Last32Bits, "10.0.0.1")]
    [InlineData("64:ff9b::c0a8:1", EmbeddedIPv4.Last32Bits, "192.168.0.1")]
    [InlineData("64:ff9b:1::a9fe:a9fe", EmbeddedIPv4.Last32Bits, "169.254.169.254")]
    public void TransitionFormsDecodeTheIPv4AddressTheyCarry(string address, EmbeddedIPv4 embeds, string embedded)
    {
        var ip = IPAddress.Parse(address);
        Assert.Equal(embeds, SpecialPurposeAddresses.Find(ip).Embeds);
        Assert.Equal(new[] { IPAddress.Parse(embedded) }, SpecialPurposeAddresses.EmbeddedIn(ip, embeds));
    }

    private static (string Address, string Row, string Decision) Split(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, parts.Length);
        return (parts[0], parts[1], parts[2]);
    }

    private static AddressBlock Row(string prefix) => SpecialPurposeAddresses.Blocks.Single(b => b.Prefix.ToString() == prefix);

    private static (UInt128 First, UInt128 Last) Bounds(IPNetwork network)
    {
        var bits = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var first = Number(network.BaseAddress);
        var hostBits = bits - network.PrefixLength;
        var span = hostBits == 128 ? UInt128.MaxValue : (UInt128.One << hostBits) - 1;
        return (first, first + span);
    }

    private static UInt128 Number(IPAddress address)
    {
        UInt128 value = 0;
        foreach (var b in address.GetAddressBytes())
        {
            value = (value << 8) | b;
        }

        return value;
    }

    private static IPAddress Address(UInt128 value, int width)
    {
        var bytes = new byte[width];
        for (var i = width - 1; i >= 0; i--)
        {
            bytes[i] = (byte)(value & 0xff);
            value >>= 8;
        }

        return new IPAddress(bytes);
    }

    // The row's first address with the IPv4 address laid in where the row's form carries it (Teredo: as server and client).
    private static IPAddress WithEmbedded(AddressBlock block, IPAddress v4)
    {
        var bytes = block.Prefix.BaseAddress.GetAddressBytes();
        var four = v4.GetAddressBytes();
        switch (block.Embeds)
        {
            case EmbeddedIPv4.Mapped or EmbeddedIPv4.Last32Bits:
                four.CopyTo(bytes, 12);
                break;
            case EmbeddedIPv4.SixToFour:
                four.CopyTo(bytes, 2);
                break;
            case EmbeddedIPv4.Teredo:
                four.CopyTo(bytes, 4);
                four.Select(b => (byte)~b).ToArray().CopyTo(bytes, 12);
                break;
            default:
                Assert.Fail($"{block.Prefix} embeds nothing");
                break;
        }

        return new IPAddress(bytes);
    }
}
