namespace Leuko.Pipeline;

/// <summary>The differential count: cells per class and their percentage, the figure a haematologist reads.</summary>
public static class Differential
{
    /// <summary>
    /// Counts <paramref name="labels"/> per class. Every class in <paramref name="classes"/> appears (with 0 when absent),
    /// in that order; percentages are rounded to 0.1 and are 0 when there are no cells.
    /// </summary>
    public static IReadOnlyDictionary<string, ClassCount> Count(IEnumerable<string> labels, IReadOnlyList<string> classes)
    {
        var counts = classes.ToDictionary(c => c, _ => 0, StringComparer.Ordinal);
        int total = 0;
        foreach (var label in labels)
        {
            if (!counts.TryGetValue(label, out int n))
            {
                throw new ArgumentException($"'{label}' is not one of the classes {string.Join(", ", classes)}", nameof(labels));
            }

            counts[label] = n + 1;
            total++;
        }

        var result = new Dictionary<string, ClassCount>(StringComparer.Ordinal);
        foreach (var c in classes)
        {
            result[c] = new ClassCount(counts[c], total == 0 ? 0 : Math.Round(100.0 * counts[c] / total, 1));
        }

        return result;
    }
}
