namespace Leuko.Cli.Analysis;

/// <summary>
/// Puts images back in input order as they finish, in any order, and hands each on (to the result files and the
/// run's totals) as soon as every image before it has been handed on. Only the out-of-order window is held: the
/// reader enters it before reading an image (<see cref="EnterAsync"/>), and an image leaves it when it is handed on,
/// so at most <c>window</c> images are read, being analysed, or waiting for an earlier one, however long the run.
/// </summary>
internal sealed class OrderedResults(int window, Action<ImageRecord> handOn) : IDisposable
{
    private readonly SemaphoreSlim _window = new(window, window);
    private readonly Dictionary<int, ImageRecord> _waiting = [];
    private readonly Lock _lock = new();
    private int _next;

    /// <summary>Waits for room in the window, before the image of the next index is read.</summary>
    public Task EnterAsync(CancellationToken cancellationToken) => _window.WaitAsync(cancellationToken);

    /// <summary>The image of input position <paramref name="index"/> is done: hands it on, with any it was holding up.</summary>
    public void Add(int index, ImageRecord image)
    {
        lock (_lock)
        {
            if (index < _next || !_waiting.TryAdd(index, image))
            {
                throw new InvalidOperationException($"image {index} was added twice");
            }

            while (_waiting.Remove(_next, out var next))
            {
                handOn(next);
                _next++;
                _window.Release();
            }
        }
    }

    public void Dispose() => _window.Dispose();
}
