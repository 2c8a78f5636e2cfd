namespace Leuko.Pipeline.Secrets;

/// <summary>
/// The key-encryption key (KEK) of envelope encryption: it wraps each secret's random data key and unwraps it again.
/// Azure Key Vault in the cloud (<c>Leuko:SecretsKeyUri</c>), a local key file in development (<c>Leuko:SecretsKeyFile</c>).
/// The KEK itself never leaves it; only wrapped data keys are stored, each with the id (and version) of the KEK that
/// wrapped it, so that a rotated KEK still unwraps what its earlier versions wrapped.
/// </summary>
public interface IKeyEncryptionKey
{
    /// <summary>What wraps new data keys, for the start-up log (a file path or a key URI, never key material).</summary>
    string Description { get; }

    /// <summary>Wraps a data key with the KEK's current version.</summary>
    Task<WrappedKey> WrapAsync(ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default);

    /// <summary>Unwraps a data key with the KEK version that wrapped it (<see cref="WrappedKey.KekId"/>).</summary>
    /// <exception cref="SecretDecryptionException">This KEK does not hold that version, or the wrapped key was altered.</exception>
    Task<byte[]> UnwrapAsync(WrappedKey wrapped, CancellationToken cancellationToken = default);
}
