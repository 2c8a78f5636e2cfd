using Leuko.Azure.Hosting;
using Leuko.Azure.Secrets;
using Leuko.Pipeline.Secrets;
using Leuko.Tests;

namespace Leuko.Azure.Tests;

/// <summary>
/// Which key-encryption key a host takes from its options, and what it refuses. The Key Vault key is only chosen and
/// its URI checked here: nothing here reaches a Key Vault, so its wrap and unwrap are not exercised offline.
/// </summary>
public sealed class KeyEncryptionKeysTests
{
    private static PipelineOptions InAzure(string? keyUri) => new()
    {
        StorageAccountName = "stleukotest",
        ManagedIdentityClientId = "00000000-0000-0000-0000-000000000001",
        SecretsKeyUri = keyUri,
    };

    [Fact]
    public void WithAKeyUriTheKeyVaultKeyWrapsEvenWhereAKeyFileIsSet()
    {
        var options = InAzure("https://kv-leukotest.vault.azure.net/keys/webhook-secrets");
        options.SecretsKeyFile = TestSecrets.NewKeyFile();

        var kek = KeyEncryptionKeys.From(options, AzureClients.From(options));

        Assert.IsType<KeyVaultKeyEncryptionKey>(kek);
        Assert.Equal("the Key Vault key https://kv-leukotest.vault.azure.net/keys/webhook-secrets", kek.Description);
        Assert.False(File.Exists(options.SecretsKeyFile)); // the file was not even created
    }

    [Fact]
    public void InAzureWithoutAKeyUriTheHostRefusesToStartAndNamesTheSetting()
    {
        var options = InAzure(null);

        var e = Assert.Throws<InvalidOperationException>(() => KeyEncryptionKeys.From(options, AzureClients.From(options)));
        Assert.StartsWith("no key for the webhook secrets: set Leuko:SecretsKeyUri", e.Message);
    }

    [Fact]
    public void WithAConnectionStringTheKeyFileGivenIsUsed()
    {
        var options = new PipelineOptions { Storage = Azurite.ConnectionString, SecretsKeyFile = TestSecrets.NewKeyFile() };

        var kek = Assert.IsType<LocalKeyEncryptionKey>(KeyEncryptionKeys.From(options, AzureClients.From(options)));

        Assert.Equal(options.SecretsKeyFile, kek.Path);
        Assert.True(File.Exists(options.SecretsKeyFile));
    }

    [Fact]
    public void AKeyFileThatCannotBeCreatedFailsWithItsPath()
    {
        var options = new PipelineOptions { Storage = Azurite.ConnectionString, SecretsKeyFile = "/proc/leuko/webhook-secrets.key" };

        var e = Assert.Throws<InvalidOperationException>(() => KeyEncryptionKeys.From(options, AzureClients.From(options)));
        Assert.StartsWith("the webhook secrets key file /proc/leuko/webhook-secrets.key cannot be read or created", e.Message);
    }

    [Theory]
    [InlineData("https://kv-leukotest.vault.azure.net/keys/webhook-secrets/0123456789abcdef0123456789abcdef", "without the version")]
    [InlineData("http://kv-leukotest.vault.azure.net/keys/webhook-secrets", "versionless URI")]
    [InlineData("https://kv-leukotest.vault.azure.net/secrets/webhook-secrets", "versionless URI")]
    [InlineData("kv-leukotest", "versionless URI")]
    public void AKeyUriThatIsNotAVersionlessKeyIsRefused(string uri, string reason)
    {
        var options = InAzure(uri);

        var e = Assert.Throws<InvalidOperationException>(() => KeyEncryptionKeys.From(options, AzureClients.From(options)));
        Assert.StartsWith($"Leuko:SecretsKeyUri '{uri}' is not a Key Vault key's versionless URI", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Theory]
    [InlineData("https://kv-leukotest.vault.azure.net/keys/webhook-secrets", "https://vault.azure.net/.default")]
    [InlineData("https://kv-leukotest.vault.azure.cn/keys/webhook-secrets", "https://vault.azure.cn/.default")]
    [InlineData("https://hsm-leukotest.managedhsm.azure.net/keys/webhook-secrets", "https://managedhsm.azure.net/.default")]
    public void TheTokenIsAskedForTheVaultsOwnCloud(string uri, string scope) =>
        Assert.Equal(scope, KeyVaultKeyEncryptionKey.ScopeOf(new Uri(uri)));

    [Fact]
    public async Task TheKeyVaultKeyRefusesAWrappedKeyOfAnotherKeyWithoutCallingTheVault()
    {
        var options = InAzure("https://kv-leukotest.vault.azure.net/keys/webhook-secrets");
        var kek = KeyEncryptionKeys.From(options, AzureClients.From(options));

        var local = await Assert.ThrowsAsync<SecretDecryptionException>(() => kek.UnwrapAsync(new WrappedKey("local:0123456789abcdef", new byte[60])));
        var other = await Assert.ThrowsAsync<SecretDecryptionException>(
            () => kek.UnwrapAsync(new WrappedKey("https://kv-other.vault.azure.net/keys/webhook-secrets/0123", new byte[256])));

        Assert.Contains("wrapped by the local key local:0123456789abcdef", local.Message);
        Assert.Contains("not by a version of https://kv-leukotest.vault.azure.net/keys/webhook-secrets", other.Message);
    }
}
