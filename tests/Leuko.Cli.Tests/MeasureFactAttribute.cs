namespace Leuko.Cli.Tests;

/// <summary>
/// A measurement, not a test: run only when LEUKO_MEASURE is set (it prints figures and asserts none of them), e.g.
/// <c>LEUKO_MEASURE=1 dotnet test tests/Leuko.Cli.Tests -c Release --filter ReviewMeasurement --logger "console;verbosity=detailed"</c>.
/// </summary>
public sealed class MeasureFactAttribute : FactAttribute
{
    public MeasureFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LEUKO_MEASURE")))
        {
            Skip = "a measurement: set LEUKO_MEASURE=1 to run it";
        }
    }
}
