namespace Leuko.Pipeline;

/// <summary>The differential count: cells per class and their percentage, the figure a haematologist reads.</summary>
public static class Differential
{
    /// <summary>
    /// Counts <paramref name="labels"/> per class. Every class in <paramref name="classes"/> appears (with 0 when absent),
    /// in that order; percentages (and their 95% intervals) are rounded to 0.1 and are 0 when there are no cells. Labels in
    /// <paramref name="apart"/> (cells a laboratory reports apart from the differential: immature granulocytes,
    /// erythroblasts, platelets) are left out of it; see <see cref="OtherCells"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, ClassCount> Count(
        IEnumerable<string> labels, IReadOnlyList<string> classes, IReadOnlyCollection<string>? apart = null)
    {
        var counts = classes.ToDictionary(c => c, _ => 0, StringComparer.Ordinal);
        int total = 0;
        foreach (var label in labels)
        {
            if (apart is not null && apart.Contains(label))
            {
                continue;
            }

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
            result[c] = ClassCount.Of(counts[c], total);
        }

        return result;
    }

    /// <summary>The cells reported apart from the differential ("other cells seen: 3 erythroblasts"): every kind of <paramref name="others"/>, in order, with its count.</summary>
    public static IReadOnlyDictionary<string, int> OtherCells(IEnumerable<string> labels, IReadOnlyList<string> others)
    {
        var counts = others.ToDictionary(c => c, _ => 0, StringComparer.Ordinal);
        foreach (var label in labels)
        {
            if (counts.TryGetValue(label, out int n))
            {
                counts[label] = n + 1;
            }
        }

        return counts;
    }
}
