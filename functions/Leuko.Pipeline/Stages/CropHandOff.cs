namespace Leuko.Pipeline.Stages;

/// <summary>
/// The crops segmentation has just written, kept in memory for classification in the same process (<c>leuko serve</c>
/// and a function app replica run both stages): classification takes a crop from here instead of reading its blob
/// back, a storage request less per cell. A crop blob never changes once written (its name holds the upload version,
/// and its pixels follow from that version), so a crop taken from here has its blob's pixels (held as BMP, which
/// decodes without the PNG blob's inflating; both are lossless); one that is not here
/// (another process segmented the image, the message is a redelivery, or the crop was dropped to stay within the
/// bound) is read from storage. At most <paramref name="maxBytes"/> are held; the oldest go first. Thread-safe.
/// </summary>
public sealed class CropHandOff(long maxBytes = CropHandOff.DefaultMaxBytes)
{
    /// <summary>64 MiB: hundreds of crops (held uncompressed, 3 bytes a pixel of the crop window), more than the classification queue holds in a burst on one machine; a crop dropped is read from its blob.</summary>
    public const long DefaultMaxBytes = 64L * 1024 * 1024;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<(string Blob, byte[] Content)>> _crops = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Blob, byte[] Content)> _order = new();
    private long _bytes;

    /// <summary>Crops held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _crops.Count;
            }
        }
    }

    /// <summary>Holds the pixels of the crop blob <paramref name="blob"/> (<c>crops/NAME</c>), written to storage just before, as an encoded image.</summary>
    public void Put(string blob, byte[] content)
    {
        lock (_lock)
        {
            Remove(blob);
            _crops[blob] = _order.AddLast((blob, content));
            _bytes += content.Length;
            while (_bytes > maxBytes && _order.First is { } oldest)
            {
                Remove(oldest.Value.Blob);
            }
        }
    }

    /// <summary>The crop's content, no longer held; null when it is not here (read its blob).</summary>
    public byte[]? Take(string blob)
    {
        lock (_lock)
        {
            if (!_crops.TryGetValue(blob, out var node))
            {
                return null;
            }

            Remove(blob);
            return node.Value.Content;
        }
    }

    private void Remove(string blob)
    {
        if (_crops.Remove(blob, out var node))
        {
            _order.Remove(node);
            _bytes -= node.Value.Content.Length;
        }
    }
}
