namespace Leuko.Core.Evaluation;

/// <summary>Per-class precision, recall, F1 and the number of samples of that class.</summary>
public sealed record ClassScores(double Precision, double Recall, double F1, int Support);

/// <summary>Classification metrics over labelled samples; unsegmented samples count as wrong.</summary>
/// <param name="Coverage">Share of samples accepted without review.</param>
/// <param name="AcceptedAccuracy">Accuracy of the accepted samples (the review flag's promise); null when none was accepted.</param>
/// <param name="OtherSamples">Samples whose truth is a kind outside the differential.</param>
/// <param name="OtherSilentlyInDifferential">Share of those given a differential class without review; null when there are none.</param>
/// <param name="FlaggedBy">Samples flagged for review, by reason (Leuko.Core.Classification.ReviewReasons).</param>
public sealed record ClassificationMetrics(
    int Samples, int Unsegmented, double Accuracy, double MacroPrecision, double MacroRecall, double MacroF1,
    IReadOnlyList<string> Classes, IReadOnlyDictionary<string, ClassScores> PerClass, int[][] Confusion,
    double Coverage, double? AcceptedAccuracy, int OtherSamples, double? OtherSilentlyInDifferential,
    IReadOnlyDictionary<string, int> FlaggedBy);

/// <summary>
/// Accumulates (truth, prediction, review reason) triples; a prediction of null is a sample where no cell was found, a
/// reason of null a cell accepted without review.
/// <paramref name="others"/> are the classes reported apart from the differential.
/// </summary>
public sealed class ClassificationEvaluator(IReadOnlyList<string> classes, IReadOnlyCollection<string>? others = null)
{
    private readonly int[][] _confusion = classes.Select(_ => new int[classes.Count]).ToArray();
    private readonly int[] _unsegmented = new int[classes.Count];
    private readonly HashSet<int> _others = (others ?? []).Select(o => classes.ToList().IndexOf(o)).Where(i => i >= 0).ToHashSet();
    private readonly SortedDictionary<string, int> _flaggedBy = new(StringComparer.Ordinal);
    private int _accepted, _acceptedCorrect, _otherSamples, _otherSilent;

    public IReadOnlyList<string> Classes { get; } = classes;

    public void Add(int truth, int? predicted, string? reviewReason = null)
    {
        bool accepted = predicted is not null && reviewReason is null;
        if (predicted is not null && reviewReason is not null)
        {
            _flaggedBy[reviewReason] = _flaggedBy.GetValueOrDefault(reviewReason) + 1;
        }

        if (predicted is { } p)
        {
            _confusion[truth][p]++;
        }
        else
        {
            _unsegmented[truth]++;
        }

        if (accepted)
        {
            _accepted++;
            _acceptedCorrect += predicted == truth ? 1 : 0;
        }

        if (_others.Contains(truth))
        {
            _otherSamples++;
            _otherSilent += accepted && !_others.Contains(predicted!.Value) ? 1 : 0;
        }
    }

    public ClassificationMetrics Metrics()
    {
        int n = Classes.Count;
        var perClass = new Dictionary<string, ClassScores>();
        int correct = 0, samples = 0;
        for (int c = 0; c < n; c++)
        {
            int tp = _confusion[c][c];
            int predicted = Enumerable.Range(0, n).Sum(r => _confusion[r][c]);
            int support = _confusion[c].Sum() + _unsegmented[c];
            double precision = predicted == 0 ? 0 : (double)tp / predicted;
            double recall = support == 0 ? 0 : (double)tp / support;
            double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass[Classes[c]] = new ClassScores(precision, recall, f1, support);
            correct += tp;
            samples += support;
        }

        var present = perClass.Values.Where(s => s.Support > 0).ToList();
        double Mean(Func<ClassScores, double> f) => present.Count == 0 ? 0 : present.Average(f);
        return new ClassificationMetrics(
            samples, _unsegmented.Sum(), samples == 0 ? 0 : (double)correct / samples,
            Mean(s => s.Precision), Mean(s => s.Recall), Mean(s => s.F1),
            Classes, perClass, _confusion.Select(r => r.ToArray()).ToArray(),
            samples == 0 ? 0 : (double)_accepted / samples, _accepted == 0 ? null : (double)_acceptedCorrect / _accepted,
            _otherSamples, _otherSamples == 0 ? null : (double)_otherSilent / _otherSamples, new SortedDictionary<string, int>(_flaggedBy));
    }
}
