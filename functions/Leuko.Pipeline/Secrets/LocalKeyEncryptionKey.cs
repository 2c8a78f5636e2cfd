using System.Security.Cryptography;
using System.Text;

namespace Leuko.Pipeline.Secrets;

/// <summary>
/// Key-encryption keys in a local file, for Azurite and <c>leuko serve</c>: one base64 256-bit key a line (lines
/// starting with <c>#</c> are comments). The last key wraps new data keys; every key in the file unwraps, so rotating
/// is appending a key (<c>head -c 32 /dev/urandom | base64 &gt;&gt; FILE</c>) and restarting. Data keys are wrapped
/// with AES-256-GCM under the key, its id (<c>local:</c> and the first 16 hex digits of the key's SHA-256) authenticated
/// with them. A missing file is created with one new key, readable by its owner only (0600); a file that other users
/// can read or write is refused.
/// </summary>
public sealed class LocalKeyEncryptionKey : IKeyEncryptionKey
{
    /// <summary>The file's first line when this class creates it.</summary>
    private const string Header =
        "# LeukoFunctions: key-encryption keys of the webhook signing secrets, one base64 256-bit key a line. The last wraps new secrets; keep the others, they unwrap older ones.";

    private const int KeyBytes = 32;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly IReadOnlyList<(string Id, byte[] Key)> _keys;

    private LocalKeyEncryptionKey(string path, IReadOnlyList<(string Id, byte[] Key)> keys)
    {
        Path = path;
        _keys = keys;
    }

    /// <summary>The default key file: <c>leuko/webhook-secrets.key</c> in the user's configuration folder (<c>$XDG_CONFIG_HOME</c>, else <c>~/.config</c>).</summary>
    public static string DefaultPath
    {
        get
        {
            // DoNotVerify: the folder may not exist yet (a fresh machine has no ~/.config); it is created with the file.
            var config = Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData, Environment.SpecialFolderOption.DoNotVerify);
            return string.IsNullOrEmpty(config)
                ? throw new InvalidOperationException("no configuration folder for the default webhook secrets key file (HOME is not set): set Leuko:SecretsKeyFile")
                : System.IO.Path.Combine(config, "leuko", "webhook-secrets.key");
        }
    }

    public string Path { get; }

    /// <summary>The id of the key that wraps new data keys.</summary>
    public string CurrentId => _keys[^1].Id;

    public string Description => $"the local key file {Path} (key {CurrentId})";

    /// <summary>Reads the key file, creating it (0600, with one new key) when it does not exist.</summary>
    /// <exception cref="InvalidOperationException">The file is readable by others, holds no key, or a line is not a base64 256-bit key.</exception>
    public static LocalKeyEncryptionKey Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path))
        {
            Create(path);
        }

        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
                                        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
            if ((mode & others) != 0)
            {
                throw new InvalidOperationException(
                    $"the webhook secrets key file {path} can be read or written by other users (mode {Convert.ToString((int)mode, 8)}): chmod 600 {path}");
            }
        }

        var keys = new List<(string, byte[])>();
        var lineNumber = 0;
        foreach (var line in File.ReadAllLines(path))
        {
            lineNumber++;
            var text = line.Trim();
            if (text.Length == 0 || text.StartsWith('#'))
            {
                continue;
            }

            var key = new byte[KeyBytes];
            if (!Convert.TryFromBase64String(text, key, out var written) || written != KeyBytes)
            {
                throw new InvalidOperationException($"line {lineNumber} of the webhook secrets key file {path} is not a base64 256-bit key (32 bytes)");
            }

            keys.Add((IdOf(key), key));
        }

        return keys.Count > 0
            ? new LocalKeyEncryptionKey(path, keys)
            : throw new InvalidOperationException($"the webhook secrets key file {path} holds no key: add one with `head -c 32 /dev/urandom | base64 >> {path}`");
    }

    /// <summary>A new file with one key, written under another name and moved into place only if none appeared meanwhile (two hosts starting at once agree on one key).</summary>
    private static void Create(string path)
    {
        var folder = System.IO.Path.GetDirectoryName(path)!;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
        }
        else
        {
            Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var temporary = path + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var writer = new StreamWriter(temporary, Encoding.ASCII, options))
            {
                writer.WriteLine(Header);
                writer.WriteLine(Convert.ToBase64String(RandomNumberGenerator.GetBytes(KeyBytes)));
            }

            File.Move(temporary, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another host created it first: use that one.
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary><c>local:</c> and the first 16 hex digits of the key's SHA-256: names the key without revealing it.</summary>
    private static string IdOf(byte[] key) => "local:" + Convert.ToHexStringLower(SHA256.HashData(key))[..16];

    public Task<WrappedKey> WrapAsync(ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default)
    {
        var (id, key) = _keys[^1];
        var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var wrapped = new byte[NonceBytes + dataKey.Length + TagBytes];
        nonce.CopyTo(wrapped, 0);
        using var aes = new AesGcm(key, TagBytes);
        aes.Encrypt(nonce, dataKey.Span, wrapped.AsSpan(NonceBytes, dataKey.Length), wrapped.AsSpan(NonceBytes + dataKey.Length), Encoding.UTF8.GetBytes(id));
        return Task.FromResult(new WrappedKey(id, wrapped));
    }

    public Task<byte[]> UnwrapAsync(WrappedKey wrapped, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wrapped);
        var match = _keys.Where(k => k.Id == wrapped.KekId).Select(k => k.Key).FirstOrDefault();
        if (match is null)
        {
            throw new SecretDecryptionException(wrapped.KekId.StartsWith("local:", StringComparison.Ordinal)
                ? $"the data key was wrapped by key {wrapped.KekId}, which the key file {Path} does not hold (keys {string.Join(", ", _keys.Select(k => k.Id))}): " +
                  "was the file replaced? When rotating, append a key and keep the earlier ones"
                : $"the data key was wrapped by {wrapped.KekId}, not by a key of the local key file {Path}: set Leuko:SecretsKeyUri to that Key Vault key");
        }

        if (wrapped.Bytes.Length <= NonceBytes + TagBytes)
        {
            throw new SecretDecryptionException($"the data key wrapped by {wrapped.KekId} is too short to be one (the row was altered)");
        }

        var length = wrapped.Bytes.Length - NonceBytes - TagBytes;
        var dataKey = new byte[length];
        try
        {
            using var aes = new AesGcm(match, TagBytes);
            aes.Decrypt(wrapped.Bytes.AsSpan(0, NonceBytes), wrapped.Bytes.AsSpan(NonceBytes, length), wrapped.Bytes.AsSpan(NonceBytes + length), dataKey,
                Encoding.UTF8.GetBytes(wrapped.KekId));
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new SecretDecryptionException($"the data key wrapped by {wrapped.KekId} does not unwrap with that key: the wrapped key was altered", e);
        }

        return Task.FromResult(dataKey);
    }
}
