namespace Leuko.Pipeline.Tests;

public class DifferentialTests
{
    private static readonly string[] Classes = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"];

    [Fact]
    public void CountsAndPercentagesEveryClassInOrder()
    {
        var d = Differential.Count(["NEUTROPHIL", "NEUTROPHIL", "LYMPHOCYTE"], Classes);
        Assert.Equal(Classes, d.Keys);
        Assert.Equal(new ClassCount(0, 0), d["EOSINOPHIL"]);
        Assert.Equal(new ClassCount(1, 33.3), d["LYMPHOCYTE"]);
        Assert.Equal(new ClassCount(0, 0), d["MONOCYTE"]);
        Assert.Equal(new ClassCount(2, 66.7), d["NEUTROPHIL"]);
    }

    [Fact]
    public void NoCellsGiveZeroPercent() =>
        Assert.All(Differential.Count([], Classes).Values, c => Assert.Equal(new ClassCount(0, 0), c));

    [Fact]
    public void AnUnknownClassIsAnError() =>
        Assert.Throws<ArgumentException>(() => Differential.Count(["BASOPHIL"], Classes));
}
