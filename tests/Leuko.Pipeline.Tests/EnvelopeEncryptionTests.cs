using System.Text;
using Leuko.Pipeline.Secrets;
using Leuko.Tests;
using Microsoft.Extensions.Time.Testing;

namespace Leuko.Pipeline.Tests;

/// <summary>Envelope encryption with the local key file: AES-256-GCM per secret, its data key wrapped by the file's key.</summary>
public sealed class EnvelopeEncryptionTests
{
    private const string Secret = "whsec_c2VjcmV0LWtleS1ieXRlcy1vZi10aGUtd2ViaG9vay0xMjM0NTY=";

    private static EnvelopeEncryption Envelope(string keyFile, TimeProvider? time = null) => new(LocalKeyEncryptionKey.Open(keyFile), time: time);

    [Fact]
    public async Task ASealedSecretOpensToItselfAndHoldsNoTraceOfIt()
    {
        var envelope = Envelope(TestSecrets.NewKeyFile());
        var sealedSecret = await envelope.SealAsync(Secret, "wh_1");

        Assert.Equal(Secret, await envelope.OpenAsync(sealedSecret, "wh_1"));
        Assert.StartsWith("local:", sealedSecret.KekId);
        Assert.Equal(12, Convert.FromBase64String(sealedSecret.Nonce).Length);
        Assert.Equal(16, Convert.FromBase64String(sealedSecret.Tag).Length);
        Assert.Equal(12 + 32 + 16, Convert.FromBase64String(sealedSecret.WrappedKey).Length); // nonce, 256-bit data key, tag
        var stored = string.Join("|", sealedSecret.KekId, sealedSecret.WrappedKey, sealedSecret.Nonce, sealedSecret.Ciphertext, sealedSecret.Tag);
        foreach (var form in SecretForms.Of(Secret))
        {
            Assert.DoesNotContain(form, stored, StringComparison.OrdinalIgnoreCase);
        }

        // A fresh data key and nonce each time: the same secret never seals to the same bytes.
        var again = await envelope.SealAsync(Secret, "wh_1");
        Assert.NotEqual(sealedSecret.Ciphertext, again.Ciphertext);
        Assert.NotEqual(sealedSecret.WrappedKey, again.WrappedKey);
    }

    [Fact]
    public async Task AnotherKeyFileRefusesToOpenItAndSaysWhy()
    {
        var sealedSecret = await Envelope(TestSecrets.NewKeyFile()).SealAsync(Secret, "wh_1");
        var otherFile = TestSecrets.NewKeyFile();

        var e = await Assert.ThrowsAsync<SecretDecryptionException>(() => Envelope(otherFile).OpenAsync(sealedSecret, "wh_1"));
        Assert.Contains($"wrapped by key {sealedSecret.KekId}, which the key file {otherFile} does not hold", e.Message);
    }

    [Fact]
    public async Task AKeyOfTheSameIdThatDiffersRefusesToUnwrap()
    {
        // The wrapped key names the file's key, but the bytes were wrapped by another: GCM's tag catches it.
        var file = TestSecrets.NewKeyFile();
        var envelope = Envelope(file);
        var sealedSecret = await envelope.SealAsync(Secret, "wh_1");
        var foreign = await Envelope(TestSecrets.NewKeyFile()).SealAsync(Secret, "wh_1");

        var e = await Assert.ThrowsAsync<SecretDecryptionException>(() => Envelope(file).OpenAsync(sealedSecret with { WrappedKey = foreign.WrappedKey }, "wh_1"));
        Assert.Contains("the wrapped key was altered", e.Message);
    }

    [Theory]
    [InlineData("Ciphertext")]
    [InlineData("Nonce")]
    [InlineData("Tag")]
    [InlineData("WrappedKey")]
    public async Task AlteringAnyStoredPartIsDetected(string part)
    {
        var envelope = Envelope(TestSecrets.NewKeyFile());
        var sealedSecret = await envelope.SealAsync(Secret, "wh_1");
        var altered = part switch
        {
            "Ciphertext" => sealedSecret with { Ciphertext = FlipOneBit(sealedSecret.Ciphertext) },
            "Nonce" => sealedSecret with { Nonce = FlipOneBit(sealedSecret.Nonce) },
            "Tag" => sealedSecret with { Tag = FlipOneBit(sealedSecret.Tag) },
            _ => sealedSecret with { WrappedKey = FlipOneBit(sealedSecret.WrappedKey) },
        };

        var e = await Assert.ThrowsAsync<SecretDecryptionException>(() => envelope.OpenAsync(altered, "wh_1"));
        Assert.Contains("altered", e.Message);
        Assert.Equal(Secret, await envelope.OpenAsync(sealedSecret, "wh_1")); // the untouched one still opens
    }

    [Fact]
    public async Task ASecretCopiedOntoAnotherRecordDoesNotOpen()
    {
        var envelope = Envelope(TestSecrets.NewKeyFile());
        var sealedSecret = await envelope.SealAsync(Secret, "webhook-subscription:wh_1");

        var e = await Assert.ThrowsAsync<SecretDecryptionException>(() => envelope.OpenAsync(sealedSecret, "webhook-subscription:wh_2"));
        Assert.Contains("sealed for another record", e.Message);
    }

    [Fact]
    public async Task AfterTheKeyIsRotatedOldSecretsStillOpenAndNewOnesUseTheNewKey()
    {
        var file = TestSecrets.NewKeyFile();
        var before = LocalKeyEncryptionKey.Open(file);
        var old = await new EnvelopeEncryption(before).SealAsync(Secret, "wh_1");

        // Rotation as the README says: append a key to the file, restart.
        File.AppendAllText(file, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n");
        var after = LocalKeyEncryptionKey.Open(file);
        var envelope = new EnvelopeEncryption(after);
        var renewed = await envelope.SealAsync(Secret + "2", "wh_1");

        Assert.NotEqual(before.CurrentId, after.CurrentId);
        Assert.Equal(before.CurrentId, old.KekId);
        Assert.Equal(after.CurrentId, renewed.KekId);
        Assert.Equal(Secret, await envelope.OpenAsync(old, "wh_1"));
        Assert.Equal(Secret + "2", await envelope.OpenAsync(renewed, "wh_1"));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void AMissingKeyFileIsCreatedReadableByItsOwnerOnly()
    {
        var file = TestSecrets.NewKeyFile();
        var key = LocalKeyEncryptionKey.Open(file);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(file)!));
        var keys = File.ReadAllLines(file).Where(l => !l.StartsWith('#')).ToList();
        Assert.Equal(32, Convert.FromBase64String(Assert.Single(keys)).Length);
        Assert.Equal(key.CurrentId, LocalKeyEncryptionKey.Open(file).CurrentId); // opened again: the same key, not a new one
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(file)!)); // no temporary file left
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void AKeyFileOthersCanReadIsRefused()
    {
        var file = TestSecrets.NewKeyFile();
        LocalKeyEncryptionKey.Open(file);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var e = Assert.Throws<InvalidOperationException>(() => LocalKeyEncryptionKey.Open(file));
        Assert.Contains($"(mode 644): chmod 600 {file}", e.Message);
    }

    [Fact]
    public void AKeyFileWithALineThatIsNoKeyIsRefused()
    {
        var file = TestSecrets.NewKeyFile();
        LocalKeyEncryptionKey.Open(file);
        File.AppendAllText(file, Convert.ToBase64String(new byte[16]) + "\n");

        var e = Assert.Throws<InvalidOperationException>(() => LocalKeyEncryptionKey.Open(file));
        Assert.Contains("line 3 of the webhook secrets key file", e.Message);
    }

    [Fact]
    public async Task UnwrappedDataKeysAreKeptForABoundedTime()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var kek = new CountingKey(LocalKeyEncryptionKey.Open(TestSecrets.NewKeyFile()));
        var envelope = new EnvelopeEncryption(kek, TimeSpan.FromMinutes(10), time);
        var sealedSecret = await envelope.SealAsync(Secret, "wh_1");

        await envelope.OpenAsync(sealedSecret, "wh_1");
        time.Advance(TimeSpan.FromMinutes(9));
        await envelope.OpenAsync(sealedSecret, "wh_1");
        Assert.Equal(1, kek.Unwraps); // the second delivery did not call the KEK

        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(Secret, await envelope.OpenAsync(sealedSecret, "wh_1"));
        Assert.Equal(2, kek.Unwraps); // past the bound, unwrapped again
    }

    private static string FlipOneBit(string base64)
    {
        var bytes = Convert.FromBase64String(base64);
        bytes[bytes.Length / 2] ^= 0x01;
        return Convert.ToBase64String(bytes);
    }

    /// <summary>The real local key, counting its unwraps.</summary>
    private sealed class CountingKey(IKeyEncryptionKey inner) : IKeyEncryptionKey
    {
        public int Unwraps { get; private set; }

        public string Description => inner.Description;

        public Task<WrappedKey> WrapAsync(ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default) => inner.WrapAsync(dataKey, cancellationToken);

        public Task<byte[]> UnwrapAsync(WrappedKey wrapped, CancellationToken cancellationToken = default)
        {
            Unwraps++;
            return inner.UnwrapAsync(wrapped, cancellationToken);
        }
    }
}
