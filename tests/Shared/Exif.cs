namespace Leuko.Tests;

/// <summary>Adds an EXIF orientation to encoded images, as cameras and phones write it, without touching their pixels.</summary>
public static class Exif
{
    /// <summary>A TIFF structure (big-endian) whose first directory holds one tag, Orientation (0x0112, SHORT).</summary>
    private static byte[] Tiff(int orientation) =>
    [
        (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, // header, first directory at 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0, // Orientation, SHORT, count 1, value
        0, 0, 0, 0, // no next directory
    ];

    /// <summary>The JPEG with an APP1 Exif segment right after its start-of-image marker.</summary>
    public static byte[] Jpeg(byte[] jpeg, int orientation)
    {
        byte[] payload = [.. "Exif\0\0"u8.ToArray(), .. Tiff(orientation)];
        int length = payload.Length + 2;
        return [.. jpeg[..2], 0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload, .. jpeg[2..]];
    }

    /// <summary>The PNG with an eXIf chunk after its IHDR chunk (signature 8 bytes, IHDR 25).</summary>
    public static byte[] Png(byte[] png, int orientation)
    {
        var data = Tiff(orientation);
        byte[] typeAndData = [.. "eXIf"u8.ToArray(), .. data];
        uint crc = Crc32(typeAndData);
        byte[] chunk = [0, 0, 0, (byte)data.Length, .. typeAndData, (byte)(crc >> 24), (byte)(crc >> 16), (byte)(crc >> 8), (byte)crc];
        return [.. png[..33], .. chunk, .. png[33..]];
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }

        return ~crc;
    }
}
