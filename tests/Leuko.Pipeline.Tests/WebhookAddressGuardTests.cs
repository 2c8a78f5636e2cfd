using System.Net;
using System.Net.Sockets;
using System.Text;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Tests;

public class WebhookAddressGuardTests
{
    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("93.184.216.34")]
    [InlineData("172.15.255.255")]
    [InlineData("172.32.0.1")]
    [InlineData("100.63.255.255")]
    [InlineData("100.128.0.1")]
    [InlineData("169.253.1.1")]
    [InlineData("223.255.255.255")]
    [InlineData("2001:4860:4860::8888")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("::ffff:8.8.8.8")]
    public void PublicAddressesAreAllowed(string address)
    {
        Assert.Null(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: false));
        Assert.Null(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: true));
    }

    [Theory]
    [InlineData("10.0.0.1")]
    [InlineData("10.255.255.255")]
    [InlineData("172.16.0.1")]
    [InlineData("172.31.255.255")]
    [InlineData("192.168.1.1")]
    [InlineData("fc00::1")]
    [InlineData("fd12:3456:789a::1")]
    [InlineData("169.254.0.1")]
    [InlineData("169.254.169.254")]
    [InlineData("168.63.129.16")]
    [InlineData("fd00:ec2::254")]
    [InlineData("fe80::1")]
    [InlineData("febf::1")]
    [InlineData("0.0.0.0")]
    [InlineData("0.1.2.3")]
    [InlineData("::")]
    [InlineData("100.64.0.1")]
    [InlineData("100.127.255.255")]
    [InlineData("224.0.0.1")]
    [InlineData("239.255.255.250")]
    [InlineData("ff02::1")]
    [InlineData("255.255.255.255")]
    [InlineData("240.0.0.1")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("::ffff:169.254.169.254")]
    [InlineData("::ffff:192.168.0.1")]
    [InlineData("::ffff:0.0.0.0")]
    [InlineData("64:ff9b::a9fe:a9fe")]
    public void InternalAddressesAreRefusedEvenWithLoopbackAllowed(string address)
    {
        Assert.NotNull(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: false));
        Assert.NotNull(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: true));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.1.2.3")]
    [InlineData("::1")]
    [InlineData("::ffff:127.0.0.1")]
    public void LoopbackIsAllowedOnlyWhenAsked(string address)
    {
        Assert.NotNull(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: false));
        Assert.Null(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: true));
    }

    [Fact]
    public void MetadataAddressesSayWhy()
    {
        Assert.Contains("metadata", WebhookAddressGuard.CheckAddress(IPAddress.Parse("169.254.169.254"), false), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("metadata", WebhookAddressGuard.CheckAddress(IPAddress.Parse("fd00:ec2::254"), false), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("wire server", WebhookAddressGuard.CheckAddress(IPAddress.Parse("168.63.129.16"), false), StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    // The issue's examples: IPv6 transition forms that reach private or metadata addresses, and special-purpose IPv4 and IPv6 ranges.
    [InlineData("2002:a9fe:a9fe::", "169.254.169.254")] // 6to4 of the metadata service
    [InlineData("2002:a00:1::1", "10.0.0.1")] // 6to4 of a private address
    [InlineData("2002:7f00:1::", "127.0.0.1")] // 6to4 of loopback: refused even where loopback is allowed
    [InlineData("2001:0:a9fe:a9fe::", "169.254.169.254")] // Teredo, the metadata service as its server
    [InlineData("2001:0:808:808::5601:5601", "169.254.169.254")] // Teredo, the metadata service as its (inverted) client
    [InlineData("2001:0:808:808::f5ff:fffe", "10.0.0.1")] // Teredo, a private client
    [InlineData("64:ff9b:1::a9fe:a9fe", "169.254.169.254")] // local-use NAT64
    [InlineData("64:ff9b::a9fe:a9fe", "169.254.169.254")] // well-known NAT64
    [InlineData("::a9fe:a9fe", "169.254.169.254")] // IPv4-compatible
    [InlineData("::ffff:a9fe:a9fe", "169.254.169.254")] // IPv4-mapped
    [InlineData("192.0.0.1", "192.0.0.0/29")]
    [InlineData("192.0.0.192", "192.0.0.0/24")]
    [InlineData("198.18.0.1", "198.18.0.0/15")]
    [InlineData("198.19.255.255", "198.18.0.0/15")]
    [InlineData("100::1", "100::/64")]
    [InlineData("100::ffff:ffff:ffff:ffff", "100::/64")]
    public void TheIssuesAddressesAreRefusedSayingWhereTheyLead(string address, string named)
    {
        var reason = WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: true);
        Assert.NotNull(reason);
        Assert.Contains(named, reason, StringComparison.Ordinal);
        Assert.NotNull(WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: false));
    }

    [Theory]
    // 6to4 and Teredo are refused whatever public address they carry; NAT64's well-known prefix and IPv4-mapped follow their IPv4 address.
    [InlineData("2002:808:808::1", false)]
    [InlineData("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false)]
    [InlineData("64:ff9b:1::808:808", false)]
    [InlineData("::808:808", false)]
    [InlineData("64:ff9b::808:808", true)]
    [InlineData("::ffff:808:808", true)]
    public void TransitionFormsOfAPublicAddress(string address, bool allowed)
    {
        var reason = WebhookAddressGuard.CheckAddress(IPAddress.Parse(address), allowLoopback: false);
        Assert.True(allowed == (reason is null), $"{address}: {reason ?? "allowed"}");
    }

    [Fact]
    public void ARefusalNamesTheRowAndItsRfc()
    {
        Assert.Equal("Private-Use, 10.0.0.0/8 (RFC 1918): not globally reachable.",
            WebhookAddressGuard.CheckAddress(IPAddress.Parse("10.1.2.3"), allowLoopback: false));
        Assert.Equal("6to4, 2002::/16 (RFC 3056), for 169.254.169.254: Cloud instance metadata service (Azure IMDS, AWS, Google Cloud), "
                     + "169.254.169.254/32 (learn.microsoft.com/azure/virtual-machines/instance-metadata-service): not globally reachable.",
            WebhookAddressGuard.CheckAddress(IPAddress.Parse("2002:a9fe:a9fe::"), allowLoopback: false));
        Assert.Equal("6to4, 2002::/16 (RFC 3056), for 8.8.8.8: a transition address, reached through a relay the network picks.",
            WebhookAddressGuard.CheckAddress(IPAddress.Parse("2002:808:808::"), allowLoopback: false));
        Assert.Equal("Port Control Protocol Anycast, 192.0.0.9/32 (RFC 7723): an anycast service or identifier block, never a subscriber's own receiver.",
            WebhookAddressGuard.CheckAddress(IPAddress.Parse("192.0.0.9"), allowLoopback: false));
    }

    [Theory]
    [InlineData("https://example.com/hook", false, true)]
    [InlineData("https://example.com:8443/hook?x=1", false, true)]
    [InlineData("https://8.8.8.8/hook", false, true)]
    [InlineData("http://example.com/hook", false, false)]
    [InlineData("http://example.com/hook", true, false)]
    [InlineData("http://8.8.8.8/hook", true, false)]
    [InlineData("http://127.0.0.1:5000/hook", false, false)]
    [InlineData("http://127.0.0.1:5000/hook", true, true)]
    [InlineData("http://localhost:5000/hook", false, false)]
    [InlineData("http://localhost:5000/hook", true, true)]
    [InlineData("http://[::1]:5000/hook", true, true)]
    [InlineData("http://[::1]:5000/hook", false, false)]
    [InlineData("https://127.0.0.1/hook", false, false)]
    [InlineData("https://127.0.0.1/hook", true, true)]
    [InlineData("https://10.0.0.1/hook", true, false)]
    [InlineData("https://169.254.169.254/latest/meta-data", true, false)]
    [InlineData("https://user:pass@example.com/hook", false, false)]
    [InlineData("https://user@example.com/hook", false, false)]
    [InlineData("http://user:pass@127.0.0.1/hook", true, false)]
    [InlineData("/hook", false, false)]
    [InlineData("hook", false, false)]
    [InlineData("example.com/hook", false, false)]
    [InlineData("", false, false)]
    [InlineData("ftp://example.com/hook", false, false)]
    [InlineData("file:///etc/passwd", true, false)]
    [InlineData("https://[2002:a9fe:a9fe::]/hook", true, false)]
    [InlineData("https://[2001:0:808:808::5601:5601]/hook", true, false)]
    [InlineData("https://[64:ff9b:1::a9fe:a9fe]/hook", true, false)]
    [InlineData("https://[::ffff:a9fe:a9fe]/hook", true, false)]
    [InlineData("https://[::ffff:8.8.8.8]/hook", false, true)]
    [InlineData("https://[64:ff9b::808:808]/hook", false, true)]
    [InlineData("https://[fe80::1%25eth0]/hook", true, false)]
    [InlineData("https://192.0.0.170/hook", false, false)]
    [InlineData("https://198.18.0.1/hook", false, false)]
    [InlineData("https://2130706433/hook", false, false)] // 127.0.0.1 as one number
    [InlineData("https://0x7f.0.0.1/hook", false, false)]
    [InlineData("https://0251.0376.0251.0376/hook", false, false)] // 169.254.169.254 in octal
    [InlineData("http://[::ffff:127.0.0.1]:5000/hook", true, true)]
    [InlineData("http://[2002:7f00:1::]:5000/hook", true, false)]
    public void UrlRules(string url, bool allowLoopback, bool accepted)
    {
        var reason = WebhookAddressGuard.CheckUrl(url, allowLoopback);
        Assert.True(accepted == (reason is null), $"{url}: {reason ?? "accepted"}");
    }

    [Fact]
    public async Task LocalhostIsRefusedUnlessLoopbackIsAllowed()
    {
        Assert.NotNull(await WebhookAddressGuard.CheckHostAsync("localhost", allowLoopback: false, CancellationToken.None));
        Assert.Null(await WebhookAddressGuard.CheckHostAsync("localhost", allowLoopback: true, CancellationToken.None));
    }

    [Theory]
    [InlineData("10.0.0.1", false)]
    [InlineData("169.254.169.254", false)]
    [InlineData("[::1]", false)]
    [InlineData("8.8.8.8", true)]
    [InlineData("[2001:4860:4860::8888]", true)]
    public async Task IpLiteralsAreJudgedWithoutResolving(string host, bool accepted) =>
        Assert.Equal(accepted, await WebhookAddressGuard.CheckHostAsync(host, allowLoopback: false, CancellationToken.None) is null);

    [Fact]
    public async Task HandlerRefusesLoopbackBeforeConnecting()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            using var client = new HttpClient(WebhookAddressGuard.CreateHandler(allowLoopback: false, TimeSpan.FromSeconds(60)))
            {
                Timeout = TimeSpan.FromSeconds(90),
            };

            var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri($"http://127.0.0.1:{port}/hook")));
            Assert.Contains("Webhook delivery refused", error.ToString(), StringComparison.Ordinal);

            // A name that resolves to loopback is refused the same way, at connect time.
            await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri($"http://localhost:{port}/hook")));

            Assert.False(listener.Pending());
        }
        finally
        {
            listener.Stop();
        }
    }

    [Theory]
    [InlineData("[2002:7f00:1::]")] // 6to4 of loopback
    [InlineData("[64:ff9b::7f00:1]")] // NAT64 of loopback
    [InlineData("[2001:0:808:808::80ff:fffe]")] // Teredo, client 127.0.0.1 (inverted)
    [InlineData("192.0.0.9")]
    public async Task HandlerRefusesTransitionFormsAtConnectTime(string host)
    {
        // Loopback allowed, as in development: the forms that only lead to it are refused all the same, by the same table, before any connection.
        using var client = new HttpClient(WebhookAddressGuard.CreateHandler(allowLoopback: true, TimeSpan.FromSeconds(60)))
        {
            Timeout = TimeSpan.FromSeconds(90),
        };

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync(new Uri($"http://{host}:5000/hook")));
        Assert.Contains("Webhook delivery refused", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HandlerConnectsToLoopbackWhenAllowed()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            using var client = new HttpClient(WebhookAddressGuard.CreateHandler(allowLoopback: true, TimeSpan.FromSeconds(60)))
            {
                Timeout = TimeSpan.FromSeconds(90),
            };

            var request = client.GetAsync(new Uri($"http://127.0.0.1:{port}/hook"));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            using var accepted = await listener.AcceptTcpClientAsync(timeout.Token);
            await using var stream = accepted.GetStream();
            await ReadHeadersAsync(stream, timeout.Token);
            await stream.WriteAsync("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), timeout.Token);

            using var response = await request;
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        }
        finally
        {
            listener.Stop();
        }
    }

    private static async Task ReadHeadersAsync(Stream stream, CancellationToken ct)
    {
        var received = new StringBuilder();
        var buffer = new byte[1024];
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, ct);
            if (read == 0)
            {
                break;
            }

            received.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
    }
}
