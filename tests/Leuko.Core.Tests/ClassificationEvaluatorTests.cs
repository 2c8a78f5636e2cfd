using Leuko.Core.Classification;
using Leuko.Core.Evaluation;

namespace Leuko.Core.Tests;

public sealed class ClassificationEvaluatorTests
{
    [Fact]
    public void Accepted_cells_coverage_and_the_flags_by_reason_are_counted_apart()
    {
        var evaluator = new ClassificationEvaluator(["A", "B", "OTHER"], ["OTHER"]);
        evaluator.Add(0, 0);                                   // accepted, right
        evaluator.Add(0, 1);                                   // accepted, wrong
        evaluator.Add(1, 1, ReviewReasons.LowConfidence);
        evaluator.Add(1, 0, ReviewReasons.UnfamiliarStain);
        evaluator.Add(2, 2, ReviewReasons.OtherCell);
        evaluator.Add(2, 0);                                   // an other cell silently in the differential
        evaluator.Add(1, null);                                // no cell found: wrong, not flagged

        var m = evaluator.Metrics();

        Assert.Equal(7, m.Samples);
        Assert.Equal(1, m.Unsegmented);
        Assert.Equal(3.0 / 7, m.Accuracy, 6);
        Assert.Equal(3.0 / 7, m.Coverage, 6);
        Assert.Equal(1.0 / 3, m.AcceptedAccuracy!.Value, 6);
        Assert.Equal(0.5, m.OtherSilentlyInDifferential!.Value, 6);
        Assert.Equal(
            new Dictionary<string, int> { [ReviewReasons.LowConfidence] = 1, [ReviewReasons.OtherCell] = 1, [ReviewReasons.UnfamiliarStain] = 1 },
            m.FlaggedBy);
    }

    [Fact]
    public void A_group_counts_once_and_is_right_when_most_of_its_samples_are()
    {
        var evaluator = new ClassificationEvaluator(["A", "B"]);
        evaluator.Add(0, 0, group: "photo1");   // 2 of 3 right: right
        evaluator.Add(0, 0, group: "photo1");
        evaluator.Add(0, 1, group: "photo1");
        evaluator.Add(1, 1, group: "photo2");   // 1 of 2 right: a tie counts wrong
        evaluator.Add(1, null, group: "photo2");
        evaluator.Add(1, 1);                    // no group: a group of its own, right
        evaluator.Add(1, 0);                    // another of its own, wrong

        var g = evaluator.Metrics().Groups!;

        Assert.Equal(4, g.Count);
        Assert.Equal(2, g.Right);
        Assert.Equal(((2.0 / 3) + 0.5 + 1 + 0) / 4, g.MeanAccuracy, 9);
        Assert.Equal((1, 1), g.PerClass["A"]);
        Assert.Equal((1, 3), g.PerClass["B"]);
    }

    [Fact]
    public void Without_groups_there_are_no_group_scores()
    {
        var evaluator = new ClassificationEvaluator(["A", "B"]);
        evaluator.Add(0, 0);
        Assert.Null(evaluator.Metrics().Groups);
    }
}
