namespace Leuko.Pipeline.Secrets;

/// <summary>
/// A secret encrypted with envelope encryption (<see cref="EnvelopeEncryption"/>): AES-256-GCM under a random data key
/// of its own, that data key wrapped by the key-encryption key <paramref name="KekId"/>. Byte fields are base64. Nothing
/// here reveals the secret without the KEK.
/// </summary>
/// <param name="KekId">The id, with version, of the key-encryption key that wrapped <paramref name="WrappedKey"/>.</param>
/// <param name="WrappedKey">The 256-bit data key, wrapped.</param>
/// <param name="Nonce">AES-GCM's 96-bit nonce, random per secret.</param>
/// <param name="Ciphertext">The secret's UTF-8 bytes, encrypted.</param>
/// <param name="Tag">AES-GCM's 128-bit authentication tag: any change to the ciphertext, nonce or context fails it.</param>
public sealed record SealedSecret(string KekId, string WrappedKey, string Nonce, string Ciphertext, string Tag);
