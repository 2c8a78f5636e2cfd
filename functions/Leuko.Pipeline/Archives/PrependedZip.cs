using System.Buffers.Binary;

namespace Leuko.Pipeline.Archives;

/// <summary>
/// A zip archive with bytes before it whose offsets were not moved: a self-extracting archive (a program with the zip
/// appended), or a zip appended to another file. Its end record says where the central directory starts counting from
/// the zip's first byte, not the file's, so .NET's reader finds no directory there; unzip, 7-Zip and Python's zipfile
/// read such archives by the shift between where the directory is and where the record says it is, and so does this.
/// </summary>
internal static class PrependedZip
{
    private const uint EndRecordSignature = 0x06054b50, CentralHeaderSignature = 0x02014b50, LocalHeaderSignature = 0x04034b50;

    /// <summary>
    /// The number of bytes before the zip in <paramref name="stream"/> (seekable), or 0 where there are none or the end
    /// record, the central directory or the first entry's local header is not where that shift would put them.
    /// Zip64 archives (whose end record defers to another) are not shifted.
    /// </summary>
    public static long Shift(Stream stream)
    {
        if (!stream.CanSeek || stream.Length < ImageArchive.EndRecordLength)
        {
            return 0;
        }

        // The end record is the last 22 bytes plus a comment of at most 65,535.
        int tailLength = (int)Math.Min(stream.Length, ImageArchive.EndRecordLength + ushort.MaxValue);
        var tail = new byte[tailLength];
        stream.Position = stream.Length - tailLength;
        stream.ReadExactly(tail);
        for (int at = tailLength - ImageArchive.EndRecordLength; at >= 0; at--)
        {
            var record = tail.AsSpan(at);
            if (BinaryPrimitives.ReadUInt32LittleEndian(record) != EndRecordSignature
                || at + ImageArchive.EndRecordLength + BinaryPrimitives.ReadUInt16LittleEndian(record[20..]) != tailLength)
            {
                continue; // not a record, or one whose comment does not end the file
            }

            uint size = BinaryPrimitives.ReadUInt32LittleEndian(record[12..]), offset = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
            if (size == uint.MaxValue || offset == uint.MaxValue)
            {
                return 0; // Zip64
            }

            long recordAt = stream.Length - tailLength + at;
            long shift = recordAt - size - offset;
            return shift > 0 && SignatureAt(stream, shift + offset) == CentralHeaderSignature && SignatureAt(stream, shift) == LocalHeaderSignature
                ? shift
                : 0;
        }

        return 0;
    }

    private static uint SignatureAt(Stream stream, long position)
    {
        if (position < 0 || position + 4 > stream.Length)
        {
            return 0;
        }

        Span<byte> signature = stackalloc byte[4];
        stream.Position = position;
        stream.ReadExactly(signature);
        return BinaryPrimitives.ReadUInt32LittleEndian(signature);
    }
}

/// <summary>A read-only, seekable view of a stream from <c>start</c> to its end: the zip within a file with bytes before it.</summary>
internal sealed class StreamTail(Stream inner, long start, bool leaveOpen) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => inner.Length - start;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        long wanted = start + _position;
        if (inner.Position != wanted)
        {
            inner.Position = wanted; // only where it moved: a blob read stream may drop its buffer on any seek
        }

        int read = inner.Read(buffer);
        _position += read;
        return read;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !leaveOpen)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
