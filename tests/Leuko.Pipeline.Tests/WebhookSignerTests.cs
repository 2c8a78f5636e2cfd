using System.Security.Cryptography;
using System.Text;
using Leuko.Pipeline.Webhooks;

namespace Leuko.Pipeline.Tests;

public class WebhookSignerTests
{
    // The test vector of the Standard Webhooks reference libraries.
    private const string SpecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string SpecId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long SpecTimestamp = 1614265330;
    private const string SpecBody = "{\"test\": 2432232314}";
    private const string SpecSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    private static readonly DateTimeOffset SpecNow = DateTimeOffset.FromUnixTimeSeconds(SpecTimestamp);
    private static readonly TimeSpan Tolerance = TimeSpan.FromMinutes(5);

    [Fact]
    public void SignMatchesTheSpecificationTestVector()
    {
        // Computed straight from the spec text: HMAC-SHA256 keyed by base64-decoded secret over "id.timestamp.body".
        var key = Convert.FromBase64String(SpecSecret["whsec_".Length..]);
        var independent = "v1," + Convert.ToBase64String(
            HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(SpecId + "." + SpecTimestamp.ToString(System.Globalization.CultureInfo.InvariantCulture) + "." + SpecBody)));

        Assert.Equal(SpecSignature, independent);
        Assert.Equal(SpecSignature, WebhookSigner.Sign(SpecSecret, SpecId, SpecTimestamp, SpecBody));
        Assert.True(WebhookSigner.Verify(SpecSecret, SpecId, SpecTimestamp, SpecBody, SpecSignature, SpecNow, Tolerance));
    }

    [Fact]
    public void HeaderNamesAreTheSpecifications()
    {
        Assert.Equal("webhook-id", WebhookSigner.WebhookId);
        Assert.Equal("webhook-timestamp", WebhookSigner.WebhookTimestamp);
        Assert.Equal("webhook-signature", WebhookSigner.WebhookSignature);
    }

    [Fact]
    public void HeaderCarriesOneSignaturePerSecret()
    {
        var secrets = new[] { WebhookSigner.NewSecret(), SpecSecret, WebhookSigner.NewSecret() };
        var header = WebhookSigner.SignatureHeader(secrets, SpecId, SpecTimestamp, SpecBody);

        var signatures = header.Split(' ');
        Assert.Equal(secrets.Length, signatures.Length);
        for (var i = 0; i < secrets.Length; i++)
        {
            Assert.Equal(WebhookSigner.Sign(secrets[i], SpecId, SpecTimestamp, SpecBody), signatures[i]);
            Assert.True(WebhookSigner.Verify(secrets[i], SpecId, SpecTimestamp, SpecBody, header, SpecNow, Tolerance));
        }

        Assert.Equal(SpecSignature, signatures[1]);
        Assert.Equal(string.Empty, WebhookSigner.SignatureHeader([], SpecId, SpecTimestamp, SpecBody));
    }

    [Fact]
    public void VerifyRejectsAModifiedBody() =>
        Assert.False(WebhookSigner.Verify(SpecSecret, SpecId, SpecTimestamp, "{\"test\": 2432232315}", SpecSignature, SpecNow, Tolerance));

    [Fact]
    public void VerifyRejectsAnotherIdOrTimestamp()
    {
        Assert.False(WebhookSigner.Verify(SpecSecret, "msg_other", SpecTimestamp, SpecBody, SpecSignature, SpecNow, Tolerance));
        Assert.False(WebhookSigner.Verify(SpecSecret, SpecId, SpecTimestamp + 1, SpecBody, SpecSignature, SpecNow, Tolerance));
    }

    [Fact]
    public void VerifyRejectsAWrongSecret() =>
        Assert.False(WebhookSigner.Verify(WebhookSigner.NewSecret(), SpecId, SpecTimestamp, SpecBody, SpecSignature, SpecNow, Tolerance));

    [Theory]
    [InlineData(-301, false)]
    [InlineData(-300, true)]
    [InlineData(0, true)]
    [InlineData(300, true)]
    [InlineData(301, false)]
    public void VerifyRejectsATimestampOutsideTolerance(int nowOffsetSeconds, bool valid) =>
        Assert.Equal(valid, WebhookSigner.Verify(
            SpecSecret, SpecId, SpecTimestamp, SpecBody, SpecSignature, SpecNow.AddSeconds(nowOffsetSeconds), Tolerance));

    [Theory]
    [InlineData(long.MinValue)]
    [InlineData(long.MaxValue)]
    public void VerifyRejectsExtremeTimestamps(long timestamp)
    {
        var signature = WebhookSigner.Sign(SpecSecret, SpecId, timestamp, SpecBody);
        Assert.False(WebhookSigner.Verify(SpecSecret, SpecId, timestamp, SpecBody, signature, SpecNow, Tolerance));
    }

    [Theory]
    [InlineData("")]
    [InlineData("v1")]
    [InlineData("v1,")]
    [InlineData("v1,not base64!")]
    [InlineData("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]
    [InlineData("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]
    [InlineData("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE")]
    [InlineData("v1,AAAA")]
    public void VerifyRejectsMalformedSignatures(string header) =>
        Assert.False(WebhookSigner.Verify(SpecSecret, SpecId, SpecTimestamp, SpecBody, header, SpecNow, Tolerance));

    [Fact]
    public void VerifyFindsTheMatchAmongOthers()
    {
        var header = $"v1a,x v1,AAAA {WebhookSigner.Sign(WebhookSigner.NewSecret(), SpecId, SpecTimestamp, SpecBody)}  {SpecSignature}";
        Assert.True(WebhookSigner.Verify(SpecSecret, SpecId, SpecTimestamp, SpecBody, header, SpecNow, Tolerance));
    }

    [Fact]
    public void NewSecretRoundTrips()
    {
        var secret = WebhookSigner.NewSecret();

        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(32, Convert.FromBase64String(secret["whsec_".Length..]).Length);
        Assert.NotEqual(secret, WebhookSigner.NewSecret());

        var signature = WebhookSigner.Sign(secret, SpecId, SpecTimestamp, SpecBody);
        Assert.True(WebhookSigner.Verify(secret, SpecId, SpecTimestamp, SpecBody, signature, SpecNow, Tolerance));
    }

    [Theory]
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    [InlineData("whsec_not base64!")]
    [InlineData("whsec_")]
    [InlineData("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    public void BadSecretsThrow(string secret)
    {
        Assert.Throws<ArgumentException>(() => WebhookSigner.Sign(secret, SpecId, SpecTimestamp, SpecBody));
        Assert.Throws<ArgumentException>(() => WebhookSigner.Verify(secret, SpecId, SpecTimestamp, SpecBody, SpecSignature, SpecNow, Tolerance));
    }
}
