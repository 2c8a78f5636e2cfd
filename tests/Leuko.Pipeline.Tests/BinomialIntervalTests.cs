namespace Leuko.Pipeline.Tests;

public class BinomialIntervalTests
{
    /// <summary>Clopper-Pearson bounds from SciPy's beta quantiles (beta.ppf(0.025, k, n-k+1), beta.ppf(0.975, k+1, n-k)).</summary>
    [Theory]
    [InlineData(10, 100, 4.9005, 17.6223)] // Rümke's table: 5-18
    [InlineData(0, 100, 0, 3.6217)]
    [InlineData(100, 100, 96.3783, 100)]
    [InlineData(50, 100, 39.8321, 60.1679)]
    [InlineData(1, 3, 0.8404, 90.5701)]
    [InlineData(2, 4, 6.7586, 93.2414)]
    [InlineData(0, 1, 0, 97.5)]
    [InlineData(1, 1, 2.5, 100)]
    [InlineData(3, 200, 0.3104, 4.3208)]
    [InlineData(37, 5000, 0.5215, 1.0186)]
    [InlineData(2500, 5000, 48.6044, 51.3956)] // thousands of cells: summed in log space, no underflow
    public void MatchesTheExactInterval(int k, int n, double low, double high)
    {
        var (l, h) = BinomialInterval.Percent(k, n);
        Assert.Equal(low, l, 3);
        Assert.Equal(high, h, 3);
    }

    [Fact]
    public void NoCellsGiveNoInterval() => Assert.Equal((0.0, 0.0), BinomialInterval.Percent(0, 0));

    [Fact]
    public void MoreSuccessesThanTrialsAreAnError() => Assert.Throws<ArgumentOutOfRangeException>(() => BinomialInterval.Percent(3, 2));

    [Fact]
    public void TheDifferentialCarriesEachSharesInterval()
    {
        var d = Differential.Count([.. Enumerable.Repeat("NEUTROPHIL", 90), .. Enumerable.Repeat("LYMPHOCYTE", 10)], ["LYMPHOCYTE", "NEUTROPHIL"]);
        Assert.Equal(new ClassCount(10, 10, 4.9, 17.6), d["LYMPHOCYTE"]);
        Assert.Equal(new ClassCount(90, 90, 82.4, 95.1), d["NEUTROPHIL"]);
    }
}
