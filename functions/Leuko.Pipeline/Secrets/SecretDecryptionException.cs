namespace Leuko.Pipeline.Secrets;

/// <summary>
/// A sealed secret that cannot be opened: wrapped by a key-encryption key this host does not hold, or altered
/// (ciphertext, nonce, tag or wrapped key), or sealed for another record. Never retried: the row itself is at fault.
/// </summary>
public sealed class SecretDecryptionException(string message, Exception? inner = null) : Exception(message, inner);
