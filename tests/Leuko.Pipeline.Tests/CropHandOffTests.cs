using Leuko.Pipeline.Stages;

namespace Leuko.Pipeline.Tests;

public sealed class CropHandOffTests
{
    [Fact]
    public void ACropIsTakenOnceAsItWasPut()
    {
        var handOff = new CropHandOff();
        handOff.Put("crops/a/v/0.png", [1, 2, 3]);

        Assert.Equal([1, 2, 3], handOff.Take("crops/a/v/0.png"));
        Assert.Null(handOff.Take("crops/a/v/0.png")); // a second reader (a redelivery) reads the blob
        Assert.Null(handOff.Take("crops/b/v/0.png"));
        Assert.Equal(0, handOff.Count);
    }

    [Fact]
    public void PastItsBoundTheOldestCropsGoFirstAndACropPutAgainCountsOnce()
    {
        var handOff = new CropHandOff(maxBytes: 30);
        handOff.Put("crops/a", new byte[10]);
        handOff.Put("crops/b", new byte[10]);
        handOff.Put("crops/b", new byte[10]); // written again (a replayed segmentation): held once
        handOff.Put("crops/c", new byte[10]);
        Assert.Equal(3, handOff.Count);

        handOff.Put("crops/d", new byte[10]);

        Assert.Null(handOff.Take("crops/a"));
        Assert.NotNull(handOff.Take("crops/b"));
        Assert.NotNull(handOff.Take("crops/c"));
        Assert.NotNull(handOff.Take("crops/d"));
        handOff.Put("crops/huge", new byte[31]); // larger than the bound: not held at all
        Assert.Equal(0, handOff.Count);
    }
}
