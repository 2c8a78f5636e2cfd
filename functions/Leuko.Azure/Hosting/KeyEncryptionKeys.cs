using Leuko.Azure.Secrets;
using Leuko.Pipeline.Secrets;

namespace Leuko.Azure.Hosting;

/// <summary>The key-encryption key of the webhook secrets, chosen from the options at start-up.</summary>
public static class KeyEncryptionKeys
{
    /// <summary>
    /// <see cref="PipelineOptions.SecretsKeyUri"/> set: that Key Vault key, reached with the app's credential. Else
    /// <see cref="PipelineOptions.SecretsKeyFile"/>, or, where storage is a connection string (Azurite, development), the
    /// default local key file. Else (in Azure, with a managed identity) none: a key file in a container is lost with it,
    /// and every secret with it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Neither works; the message says which setting to give.</exception>
    public static IKeyEncryptionKey From(PipelineOptions options, AzureClients clients)
    {
        if (!string.IsNullOrWhiteSpace(options.SecretsKeyUri))
        {
            return new KeyVaultKeyEncryptionKey(KeyVaultKeyEncryptionKey.ParseKeyUri(options.SecretsKeyUri), clients.Credential);
        }

        var file = !string.IsNullOrWhiteSpace(options.SecretsKeyFile) ? options.SecretsKeyFile
            : !string.IsNullOrWhiteSpace(options.Storage) ? LocalKeyEncryptionKey.DefaultPath
            : throw new InvalidOperationException(
                "no key for the webhook secrets: set Leuko:SecretsKeyUri to the Key Vault key's versionless URI " +
                "(https://VAULT.vault.azure.net/keys/webhook-secrets). A local key file (Leuko:SecretsKeyFile) is for development: " +
                "in a container it is lost on restart, and the secrets with it.");
        try
        {
            return LocalKeyEncryptionKey.Open(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"the webhook secrets key file {file} cannot be read or created: {e.Message} (set Leuko:SecretsKeyFile)", e);
        }
    }
}
