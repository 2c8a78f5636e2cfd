namespace Leuko.Pipeline.Secrets;

/// <summary>A data key as a key-encryption key wrapped it, with that KEK's id including its version.</summary>
/// <param name="KekId">A Key Vault key's versioned URI, or <c>local:FINGERPRINT</c> for a key of the local key file.</param>
/// <param name="Bytes">The wrapped data key.</param>
public sealed record WrappedKey(string KekId, byte[] Bytes);
