namespace Leuko.Core.Evaluation;

/// <summary>Per-class precision, recall, F1 and the number of samples of that class.</summary>
public sealed record ClassScores(double Precision, double Recall, double F1, int Support);

/// <summary>
/// Scores by group: where several samples show one cell (the Kaggle frames are augmentations of a few hundred
/// photographs), the number of distinct cells, not of frames, is what an accuracy is measured on.
/// </summary>
/// <param name="Count">Groups (a group's samples all of one class; one seen with two classes counts once per class).</param>
/// <param name="Right">Groups more than half of whose samples are right (a tie counts wrong).</param>
/// <param name="MeanAccuracy">The mean over groups of each group's share of samples right.</param>
/// <param name="PerClass">For each class with groups: groups right by majority, and groups.</param>
public sealed record GroupScores(int Count, int Right, double MeanAccuracy, IReadOnlyDictionary<string, (int Right, int Total)> PerClass);

/// <summary>Classification metrics over labelled samples; unsegmented samples count as wrong.</summary>
/// <param name="Coverage">Share of samples accepted without review.</param>
/// <param name="AcceptedAccuracy">Accuracy of the accepted samples (the review flag's promise); null when none was accepted.</param>
/// <param name="OtherSamples">Samples whose truth is a kind outside the differential.</param>
/// <param name="OtherSilentlyInDifferential">Share of those given a differential class without review; null when there are none.</param>
/// <param name="FlaggedBy">Samples flagged for review, by reason (Leuko.Core.Classification.ReviewReasons).</param>
/// <param name="Groups">Scores by group; null where no sample was given one.</param>
public sealed record ClassificationMetrics(
    int Samples, int Unsegmented, double Accuracy, double MacroPrecision, double MacroRecall, double MacroF1,
    IReadOnlyList<string> Classes, IReadOnlyDictionary<string, ClassScores> PerClass, int[][] Confusion,
    double Coverage, double? AcceptedAccuracy, int OtherSamples, double? OtherSilentlyInDifferential,
    IReadOnlyDictionary<string, int> FlaggedBy, GroupScores? Groups = null);

/// <summary>
/// Accumulates (truth, prediction, review reason) triples; a prediction of null is a sample where no cell was found, a
/// reason of null a cell accepted without review, a group of null a sample that is its own group.
/// <paramref name="others"/> are the classes reported apart from the differential.
/// </summary>
public sealed class ClassificationEvaluator(IReadOnlyList<string> classes, IReadOnlyCollection<string>? others = null)
{
    private readonly int[][] _confusion = classes.Select(_ => new int[classes.Count]).ToArray();
    private readonly int[] _unsegmented = new int[classes.Count];
    private readonly HashSet<int> _others = (others ?? []).Select(o => classes.ToList().IndexOf(o)).Where(i => i >= 0).ToHashSet();
    private readonly SortedDictionary<string, int> _flaggedBy = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Group, int Truth), (int Right, int Total)> _groups = [];
    private int _accepted, _acceptedCorrect, _otherSamples, _otherSilent, _ungrouped;

    public IReadOnlyList<string> Classes { get; } = classes;

    public void Add(int truth, int? predicted, string? reviewReason = null, string? group = null)
    {
        if (group is null)
        {
            group = $"\0{_ungrouped++}"; // a name no group file can hold: its own group
        }

        var (right, total) = _groups.GetValueOrDefault((group, truth));
        _groups[(group, truth)] = (right + (predicted == truth ? 1 : 0), total + 1);

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
            _otherSamples, _otherSamples == 0 ? null : (double)_otherSilent / _otherSamples, new SortedDictionary<string, int>(_flaggedBy),
            _ungrouped == samples ? null : GroupMetrics());
    }

    private GroupScores GroupMetrics()
    {
        static bool Majority((int Right, int Total) g) => 2 * g.Right > g.Total;
        var perClass = _groups.GroupBy(kv => kv.Key.Truth).OrderBy(g => g.Key).ToDictionary(
            g => Classes[g.Key], g => (g.Count(kv => Majority(kv.Value)), g.Count()));
        return new GroupScores(
            _groups.Count, _groups.Values.Count(Majority), _groups.Values.Average(g => (double)g.Right / g.Total), perClass);
    }
}
