namespace Leuko.Pipeline.Reviews;

/// <summary>What a review announces: an image or a batch signed off, with its reviewed differential (webhooks <c>image.reviewed</c>, <c>batch.reviewed</c>).</summary>
public interface IReviewEvents
{
    Task SignedOffAsync(ReviewSignedOff review, CancellationToken cancellationToken);
}

/// <summary>No one listens (tests of the review alone).</summary>
public sealed class NoReviewEvents : IReviewEvents
{
    public static NoReviewEvents Instance { get; } = new();

    public Task SignedOffAsync(ReviewSignedOff review, CancellationToken cancellationToken) => Task.CompletedTask;
}
