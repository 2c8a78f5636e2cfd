using Leuko.Pipeline.Stages;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Leuko.Azure.Hosting;

/// <summary>
/// Runs the <see cref="PipelineSweeper"/> on a timer in every host (the function app and <c>leuko serve</c>): a pass at
/// start, then every quarter of <c>Leuko:StuckAfter</c> (at least a second, at most five minutes). Several hosts may
/// sweep at once: the sweeper's writes are conditional.
/// </summary>
public sealed class SweeperService(PipelineSweeper sweeper, ILogger<SweeperService> logger, TimeProvider? time = null) : BackgroundService
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public static TimeSpan PeriodOf(TimeSpan stuckAfter) =>
        TimeSpan.FromTicks(Math.Clamp(stuckAfter.Ticks / 4, TimeSpan.TicksPerSecond, TimeSpan.FromMinutes(5).Ticks));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(PeriodOf(sweeper.StuckAfter), _time);
        do
        {
            try
            {
                int failed = await sweeper.SweepOnceAsync(stoppingToken);
                if (failed > 0)
                {
                    logger.LogWarning("sweeper: {Count} stuck images or batches failed", failed);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "sweep failed; trying again at the next period");
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
