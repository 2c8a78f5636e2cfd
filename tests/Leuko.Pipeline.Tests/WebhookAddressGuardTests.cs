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
