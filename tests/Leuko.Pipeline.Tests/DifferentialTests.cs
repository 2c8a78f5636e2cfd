namespace Leuko.Pipeline.Tests;

public class DifferentialTests
{
    private static readonly string[] Classes = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"];

    [Fact]
    public void CountsAndPercentagesEveryClassInOrder()
    {
        var d = Differential.Count(["NEUTROPHIL", "NEUTROPHIL", "LYMPHOCYTE"], Classes);
        Assert.Equal(Classes, d.Keys);
        Assert.Equal(new ClassCount(0, 0, 0, 70.8), d["EOSINOPHIL"]);
        Assert.Equal(new ClassCount(1, 33.3, 0.8, 90.6), d["LYMPHOCYTE"]);
        Assert.Equal(new ClassCount(0, 0, 0, 70.8), d["MONOCYTE"]);
        Assert.Equal(new ClassCount(2, 66.7, 9.4, 99.2), d["NEUTROPHIL"]);
    }

    [Fact]
    public void NoCellsGiveZeroPercent() =>
        Assert.All(Differential.Count([], Classes).Values, c => Assert.Equal(new ClassCount(0, 0, 0, 0), c));

    [Fact]
    public void AnUnknownClassIsAnError() =>
        Assert.Throws<ArgumentException>(() => Differential.Count(["BASOPHIL"], Classes));

    [Fact]
    public void OtherCellsAreCountedApartFromTheFivePartDifferential()
    {
        var classes = new CellClasses(
            ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"],
            ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"],
            ["IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"]);
        string[] labels = ["NEUTROPHIL", "ERYTHROBLAST", "LYMPHOCYTE", "ERYTHROBLAST", "BASOPHIL", "NEUTROPHIL"];

        var d = classes.Count(labels);
        Assert.Equal(classes.Differential, d.Keys);
        Assert.Equal(new ClassCount(1, 25, 0.6, 80.6), d["BASOPHIL"]); // 1 of the 4 leukocytes counted, not of the 6 cells
        Assert.Equal(new ClassCount(2, 50, 6.8, 93.2), d["NEUTROPHIL"]);
        var others = classes.CountOthers(labels);
        Assert.Equal(classes.Others, others.Keys);
        Assert.Equal(2, others["ERYTHROBLAST"]);
        Assert.Equal(0, others["PLATELET"]);
        var (fromCounts, othersFromCounts) = classes.FromCounts(
            new Dictionary<string, int> { ["NEUTROPHIL"] = 2, ["LYMPHOCYTE"] = 1, ["BASOPHIL"] = 1, ["ERYTHROBLAST"] = 2 });
        Assert.Equal(d, fromCounts);
        Assert.Equal(others, othersFromCounts);
    }
}
