using Leuko.Pipeline.Storage;

namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// What the stages announce: an image became final; a batch has every image final; a batch failed as a whole. Each
/// is announced by the one writer whose conditional write made the row final, so once per image version and batch.
/// </summary>
public interface IPipelineEvents
{
    Task ImageFinalAsync(ImageRow image, CancellationToken cancellationToken);

    Task BatchCompletedAsync(BatchRow batch, IReadOnlyList<BatchMemberRow> members, CancellationToken cancellationToken);

    Task BatchFailedAsync(BatchRow batch, CancellationToken cancellationToken);
}

/// <summary>No one listens (leuko analyze, tests of the stages alone).</summary>
public sealed class NoPipelineEvents : IPipelineEvents
{
    public static NoPipelineEvents Instance { get; } = new();

    public Task ImageFinalAsync(ImageRow image, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task BatchCompletedAsync(BatchRow batch, IReadOnlyList<BatchMemberRow> members, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task BatchFailedAsync(BatchRow batch, CancellationToken cancellationToken) => Task.CompletedTask;
}
