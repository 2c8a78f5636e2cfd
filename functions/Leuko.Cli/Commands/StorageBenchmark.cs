using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko bench storage</c>: what each kind of storage request the cloud path makes for an image costs, measured one
/// kind at a time against a storage account: the client's wall time per request and, where the storage is a local
/// process (Azurite) whose id is given, that process's CPU per request. It answers where the cloud path's time goes
/// on one machine, where Azurite shares the cores with <c>leuko serve</c> (<c>bench serve</c> measures the whole).
/// It works in a container, tables and a queue of its own, named <c>leukobench*</c>, and deletes them at the end.
/// </summary>
internal static class StorageBenchmark
{
    /// <summary>Requests in flight: as a busy host has them (two segmentations, classification, the watcher).</summary>
    private const int Concurrency = 4;

    /// <summary>Requests of each kind before it is measured (connections, JIT, the storage's own first-time work).</summary>
    private const int WarmUp = 20;

    /// <summary>A field as uploaded: the mean size of the 292 BCCD JPEGs (6,084,821 bytes).</summary>
    private const int UploadBytes = 20_839;

    /// <summary>A leukocyte's crop as the segmentation stage writes it: the mean PNG of 104 BCCD crops (213 px square).</summary>
    private const int CropBytes = 53_000;

    /// <summary>A classification message as the storage-queue transport sends it (manifest of one cell, in base64).</summary>
    private const int MessageChars = 4_000;

    public static Command Create()
    {
        var storage = new Option<string>("--storage")
        {
            Description = "Storage connection string of the account to measure, e.g. UseDevelopmentStorage=true.",
            Required = true,
        };
        var requests = new Option<int>("--requests")
        {
            Description = "Requests measured of each kind (after a warm-up of 20).",
            DefaultValueFactory = _ => 400,
        };
        requests.Validators.Add(r =>
        {
            if (r.TryGetValue<int>(out var v) && v is < 1 or > 100_000)
            {
                r.AddError("--requests must be between 1 and 100000");
            }
        });
        var serverPid = new Option<int?>("--server-pid")
        {
            Description = "Process id of the storage emulator on this machine (Azurite's node process): its CPU per request is printed too.",
        };
        var command = new Command(
            "storage",
            "Time per storage request of each kind the cloud path makes for an image (upload, download, crop, rows, cell, subscriptions, queue), and the storage process's CPU per request where it runs here.")
        {
            storage, requests, serverPid,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(storage), parse.GetValue(requests), parse.GetValue(serverPid),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return command;
    }

    internal static async Task<int> RunAsync(
        string connectionString, int requests, int? serverPid, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (serverPid is { } pid && ProcessCpu(pid) is null)
        {
            stderr.WriteLine($"error: --server-pid {pid}: no such process whose CPU time this machine shows");
            return ExitCodes.BadUsage;
        }

        // Few retries, as leuko upload has them: a storage that does not answer is said in seconds.
        var blobOptions = new BlobClientOptions();
        blobOptions.Retry.MaxRetries = 2;
        blobOptions.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        if (UploadCommand.Parse(connectionString, stderr, blobOptions) is not { } blobService)
        {
            return ExitCodes.BadUsage;
        }

        var name = $"leukobench{Guid.NewGuid().ToString("n")[..10]}";
        var container = blobService.GetBlobContainerClient(name);
        var tableService = new TableServiceClient(connectionString);
        var (images, cells, subscriptions) = (tableService.GetTableClient(name + "images"), tableService.GetTableClient(name + "cells"), tableService.GetTableClient(name + "hooks"));
        var queue = new QueueServiceClient(connectionString).GetQueueClient(name);
        var made = new List<Func<Task>>();
        try
        {
            try
            {
                await container.CreateAsync(cancellationToken: cancellationToken);
                made.Add(() => container.DeleteIfExistsAsync(cancellationToken: CancellationToken.None));
                foreach (var table in new[] { images, cells, subscriptions })
                {
                    await table.CreateAsync(cancellationToken);
                    made.Add(() => table.DeleteAsync(CancellationToken.None));
                }

                await queue.CreateAsync(cancellationToken: cancellationToken);
                made.Add(() => queue.DeleteIfExistsAsync(CancellationToken.None));
                for (int i = 0; i < 3; i++)
                {
                    await subscriptions.AddEntityAsync(new TableEntity("subscriptions", $"s{i}") { ["Url"] = $"https://receiver.example/hook/{i}", ["Types"] = "image.completed,image.failed,batch.completed", ["Enabled"] = true }, cancellationToken);
                }
            }
            catch (Exception e) when (UploadCommand.IsUnreachable(e))
            {
                stderr.WriteLine(UploadCommand.Unreachable(blobService.Uri, e));
                return ExitCodes.BadUsage;
            }

            stdout.WriteLine($"Storage benchmark: {requests} requests of each kind ({Concurrency} at once) to {blobService.AccountName}, {Environment.ProcessorCount} cores");
            stdout.WriteLine($"  {"request",-46}wall ms, mean (p50)" + (serverPid is null ? "" : "   storage process CPU ms"));
            var upload = BinaryData.FromBytes(RandomBytes(UploadBytes));
            var crop = BinaryData.FromBytes(RandomBytes(CropBytes));
            var message = new string('A', MessageChars);
            var rowETags = new ETag[requests + WarmUp];
            var receipts = new System.Collections.Concurrent.ConcurrentQueue<(string Id, string PopReceipt)>();
            double perImage = 0, perImageCpu = 0;

            async Task Kind(string what, Func<int, CancellationToken, Task> request, double timesPerImage = 1)
            {
                // Warm-up indices come after the measured ones, so that a kind that reads what another wrote finds it.
                for (int i = requests; i < requests + WarmUp; i++)
                {
                    await request(i, cancellationToken);
                }

                var walls = new double[requests];
                double? cpuBefore = serverPid is { } p ? ProcessCpu(p) : null;
                await Parallel.ForEachAsync(Enumerable.Range(0, requests), new ParallelOptions { MaxDegreeOfParallelism = Concurrency, CancellationToken = cancellationToken }, async (i, ct) =>
                {
                    long start = Stopwatch.GetTimestamp();
                    await request(i, ct);
                    walls[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                });
                double mean = walls.Average(), p50 = BenchCommand.Percentile(walls, 0.5);
                perImage += timesPerImage * mean;
                var line = $"  {what,-46}{mean,7:0.00} ({p50,5:0.00})";
                if (serverPid is { } q && cpuBefore is { } before && ProcessCpu(q) is { } after)
                {
                    double cpu = (after - before) / requests;
                    perImageCpu += timesPerImage * cpu;
                    line += $"{"",11}{cpu,7:0.00}";
                }

                stdout.WriteLine(line);
            }

            await Kind($"upload an image ({UploadBytes / 1000.0:0.0} KB)", (i, ct) => container.GetBlobClient($"uploads/{i}.jpg").UploadAsync(upload, overwrite: true, ct));
            await Kind("read the upload", (i, ct) => container.GetBlobClient($"uploads/{i}.jpg").DownloadContentAsync(ct));
            await Kind($"write a crop ({CropBytes / 1000.0:0.0} KB PNG)", (i, ct) => container.GetBlobClient($"crops/{i}.png").UploadAsync(crop, overwrite: true, ct));
            await Kind("insert the image row", async (i, ct) => rowETags[i] = (await images.AddEntityAsync(ImageRow(i, "classifying"), ct)).Headers.ETag ?? ETag.All);
            await Kind("replace the row if unchanged (If-Match)", (i, ct) => images.UpdateEntityAsync(ImageRow(i, "completed"), rowETags[i], TableUpdateMode.Replace, ct));
            await Kind("write a cell", (i, ct) => cells.UpsertEntityAsync(CellRow(i), TableUpdateMode.Replace, ct));
            await Kind("list the webhook subscriptions (3)", async (_, ct) =>
            {
                await foreach (var unused in subscriptions.QueryAsync<TableEntity>(e => e.PartitionKey == "subscriptions", cancellationToken: ct))
                {
                }
            });
            await Kind($"send a classification message ({MessageChars / 1000.0:0.0} KB)", (_, ct) => queue.SendMessageAsync(message, ct));
            await Kind("receive messages (32 a request; per message)", async (i, ct) =>
            {
                // One request for every 32 messages, as the transport receives them.
                if (i % 32 == 0)
                {
                    foreach (var m in (await queue.ReceiveMessagesAsync(32, TimeSpan.FromMinutes(5), ct)).Value)
                    {
                        receipts.Enqueue((m.MessageId, m.PopReceipt));
                    }
                }
            });
            await Kind("delete a message handled", async (_, ct) =>
            {
                if (!receipts.TryDequeue(out var m))
                {
                    foreach (var r in (await queue.ReceiveMessagesAsync(1, TimeSpan.FromMinutes(5), ct)).Value)
                    {
                        m = (r.MessageId, r.PopReceipt);
                    }
                }

                if (m.Id is not null)
                {
                    await queue.DeleteMessageAsync(m.Id, m.PopReceipt, ct);
                }
            });

            stdout.WriteLine($"  {"one of each (an image with one cell)",-46}{perImage,7:0.00}" + (serverPid is null ? "" : $"{"",19}{perImageCpu,7:0.00}"));
            return ExitCodes.Success;
        }
        finally
        {
            // What it made, whatever happened above.
            foreach (var delete in made)
            {
                await DeleteQuietly(delete);
            }
        }
    }

    private static async Task DeleteQuietly(Func<Task> delete)
    {
        try
        {
            await delete();
        }
        catch (Exception e) when (UploadCommand.IsUnreachable(e))
        {
        }
    }

    /// <summary>An images-table row of the size the pipeline writes (ids, source, counts of eight classes, timings, scale).</summary>
    private static TableEntity ImageRow(int i, string status) => new($"{i:x24}", "image")
    {
        ["Source"] = $"uploads/bench/field-{i:00000}.jpg", ["Upload"] = $"bench/field-{i:00000}.jpg", ["Status"] = status, ["Width"] = 640, ["Height"] = 480,
        ["Cells"] = 1, ["NeedsReview"] = 0, ["Counts"] = """{"BASOPHIL":0,"EOSINOPHIL":0,"LYMPHOCYTE":0,"MONOCYTE":0,"NEUTROPHIL":1,"IMMATURE_GRANULOCYTE":0,"ERYTHROBLAST":0,"PLATELET":0}""",
        ["ModelVersion"] = "leukocyte-cnn 2026.12.01-e17", ["SegmentMs"] = 23.4, ["ClassifyMs"] = 18.1, ["TraceParent"] = $"00-{i:x32}-{i:x16}-01",
        ["BlobETag"] = $"\"0x8DE{i:X12}\"", ["Updated"] = DateTimeOffset.UtcNow, ["MicronsPerPixel"] = 0.083, ["ScaleSource"] = "estimated", ["RedCells"] = 41, ["Orientation"] = 1,
    };

    /// <summary>A cells-table row of the size the pipeline writes (class, eight probabilities, box, outline of ~40 points).</summary>
    private static TableEntity CellRow(int i) => new($"{i:x24}", "0x8DE-0000")
    {
        ["Class"] = "NEUTROPHIL", ["Confidence"] = 0.991,
        ["Probabilities"] = """{"BASOPHIL":0.001,"EOSINOPHIL":0.004,"LYMPHOCYTE":0.001,"MONOCYTE":0.002,"NEUTROPHIL":0.991,"IMMATURE_GRANULOCYTE":0.001,"ERYTHROBLAST":0.0,"PLATELET":0.0}""",
        ["NeedsReview"] = false, ["X"] = 212, ["Y"] = 160, ["Width"] = 118, ["Height"] = 121, ["Area"] = 10_214,
        ["Contour"] = string.Join(' ', Enumerable.Range(0, 40).Select(k => string.Create(CultureInfo.InvariantCulture, $"{271 + (int)(59 * Math.Cos(k * Math.PI / 20))},{220 + (int)(60 * Math.Sin(k * Math.PI / 20))}"))),
        ["CropBlob"] = $"crops/{i:x24}/0.png", ["BlobETag"] = "\"0x8DE0000\"",
    };

    /// <summary>Incompressible bytes, as a JPEG's or a PNG's are.</summary>
    private static byte[] RandomBytes(int length) => System.Security.Cryptography.RandomNumberGenerator.GetBytes(length);

    /// <summary>A process's CPU time so far in milliseconds (user and system, as the runtime reads it), or null where there is none.</summary>
    private static double? ProcessCpu(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.TotalProcessorTime.TotalMilliseconds;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
