namespace Leuko.Pipeline;

/// <summary>
/// The exact (Clopper-Pearson) confidence interval of a proportion: a differential of k cells of one class among n is
/// an estimate, and this is its uncertainty. Rümke's tables, haematology's reference for the differential count, are
/// this interval (k of 100 cells, 95%: 10 gives 4.9-17.6%, printed there as 5-18).
/// </summary>
public static class BinomialInterval
{
    /// <summary>
    /// The 95% interval, in percent, of <paramref name="k"/> successes in <paramref name="n"/> trials; (0, 0) when
    /// <paramref name="n"/> is 0. The lower bound is the p at which P(X ≥ k) = 2.5%, the upper the p at which
    /// P(X ≤ k) = 2.5%, found by bisection on the binomial distribution (exact to 1e-9 in p).
    /// </summary>
    public static (double Low, double High) Percent(int k, int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, n);
        if (n == 0)
        {
            return (0, 0);
        }

        const double tail = 0.025;
        // P(X ≤ k) falls as p rises: the upper bound is where it reaches the tail, the lower where P(X ≤ k-1) reaches 1 - tail.
        double low = k == 0 ? 0 : Solve(p => CumulativeAtMost(k - 1, n, p) - (1 - tail));
        double high = k == n ? 1 : Solve(p => CumulativeAtMost(k, n, p) - tail);
        return (100 * low, 100 * high);
    }

    /// <summary>The p in (0, 1) where the decreasing <paramref name="f"/> crosses 0.</summary>
    private static double Solve(Func<double, double> f)
    {
        double a = 0, b = 1;
        while (b - a > 1e-9)
        {
            double m = (a + b) / 2;
            if (f(m) > 0)
            {
                a = m;
            }
            else
            {
                b = m;
            }
        }

        return (a + b) / 2;
    }

    /// <summary>P(X ≤ k) for X ~ Binomial(n, p), summed in log space so that thousands of cells do not underflow.</summary>
    private static double CumulativeAtMost(int k, int n, double p)
    {
        if (k < 0)
        {
            return 0;
        }

        if (k >= n)
        {
            return 1;
        }

        double logP = Math.Log(p), logQ = Math.Log(1 - p);
        double logTerm = n * logQ; // log P(X = 0)
        double max = logTerm, sum = 1; // sum of exp(log P(X = i) - max)
        for (int i = 1; i <= k; i++)
        {
            logTerm += Math.Log(n - i + 1) - Math.Log(i) + logP - logQ;
            if (logTerm > max)
            {
                sum = sum * Math.Exp(max - logTerm) + 1;
                max = logTerm;
            }
            else
            {
                sum += Math.Exp(logTerm - max);
            }
        }

        return Math.Min(1, Math.Exp(max + Math.Log(sum)));
    }
}
