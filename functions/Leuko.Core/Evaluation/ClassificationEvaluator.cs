namespace Leuko.Core.Evaluation;

/// <summary>Per-class precision, recall, F1 and the number of samples of that class.</summary>
public sealed record ClassScores(double Precision, double Recall, double F1, int Support);

/// <summary>Classification metrics over labelled samples; unsegmented samples count as wrong.</summary>
public sealed record ClassificationMetrics(
    int Samples, int Unsegmented, double Accuracy, double MacroPrecision, double MacroRecall, double MacroF1,
    IReadOnlyList<string> Classes, IReadOnlyDictionary<string, ClassScores> PerClass, int[][] Confusion);

/// <summary>Accumulates (truth, prediction) pairs; a prediction of null is a sample where no cell was found.</summary>
public sealed class ClassificationEvaluator(IReadOnlyList<string> classes)
{
    private readonly int[][] _confusion = classes.Select(_ => new int[classes.Count]).ToArray();
    private readonly int[] _unsegmented = new int[classes.Count];

    public IReadOnlyList<string> Classes { get; } = classes;

    public void Add(int truth, int? predicted)
    {
        if (predicted is { } p)
        {
            _confusion[truth][p]++;
        }
        else
        {
            _unsegmented[truth]++;
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
            Classes, perClass, _confusion.Select(r => r.ToArray()).ToArray());
    }
}
