using System.CommandLine;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Leuko.Azure.Hosting;
using Leuko.Cli.Analysis;
using Leuko.Core.Imaging;
using Leuko.Pipeline.Stages;
using Leuko.Pipeline.Storage;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko upload</c>: sends images and zip archives to the cloud pipeline's containers (Azurite or an account), as
/// the pipeline tells them apart: by content, not by name. Prints each image's or batch's id and the API URL to poll.
/// </summary>
internal static class UploadCommand
{
    private static readonly HashSet<string> Extensions = new(Leuko.Core.Imaging.ImageFormats.Extensions.Append(".zip"), StringComparer.OrdinalIgnoreCase);

    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs")
        {
            Description = "Image files, folders (searched recursively for images and zip archives) and zip archives.",
            Arity = ArgumentArity.OneOrMore,
        };
        var storage = new Option<string>("--storage")
        {
            Description = "Storage connection string, e.g. UseDevelopmentStorage=true for Azurite.",
            Required = true,
        };
        var prefix = new Option<string?>("--prefix")
        {
            Description = "A folder for the blob names: --prefix ward-3 uploads field1.jpg as uploads/ward-3/field1.jpg.",
        };
        var server = new Option<string>("--server")
        {
            Description = "Where leuko serve (or the function app) answers, for the URLs printed.",
            DefaultValueFactory = _ => ServeCommand.DefaultUrls,
        };
        var micronsPerPixel = ScaleOption.Create();
        micronsPerPixel.Description = $"The scale of these images in µm per pixel, sent as each blob's {Containers.MicronsPerPixelKey} metadata " +
                                      "(an archive's applies to each of its images); default: the pipeline's (Leuko:MicronsPerPixel, else each image's own estimate).";
        var command = new Command("upload", "Upload images to uploads/ and zip archives to archives/ (told apart by content) for leuko serve or the function app; prints each id and the URL to poll.")
        {
            inputs, storage, prefix, server, micronsPerPixel,
        };
        command.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(inputs), parse.GetRequiredValue(storage), parse.GetValue(prefix), parse.GetRequiredValue(server),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct, parse.GetValue(micronsPerPixel)));
        return command;
    }

    internal static async Task<int> RunAsync(
        string[] paths, string connectionString, string? prefix, string server, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken,
        double? micronsPerPixel = null)
    {
        var metadata = micronsPerPixel is { } mpp
            ? new Dictionary<string, string> { [Containers.MicronsPerPixelKey] = mpp.ToString("R", System.Globalization.CultureInfo.InvariantCulture) }
            : null;
        IReadOnlyList<InputFile> files;
        try
        {
            files = InputFiles.Expand(paths, Extensions);
        }
        catch (FileNotFoundException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ExitCodes.BadUsage;
        }

        if (files.Count == 0)
        {
            stderr.WriteLine($"error: no images or zip archives found in {string.Join(", ", paths)} (images are {Leuko.Core.Imaging.ImageFormats.Names})");
            return ExitCodes.BadUsage;
        }

        if (await ConnectAsync(connectionString, stderr, cancellationToken) is not { } service)
        {
            return ExitCodes.BadUsage;
        }

        var folder = string.IsNullOrWhiteSpace(prefix) ? "" : prefix.Trim('/') + "/";
        var progress = new Progress("upload", files.Count, stderr);
        var output = new Lock();
        int failed = 0;
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (file, ct) =>
        {
            bool archive = AnalysisPlan.IsArchive(file.Path);
            var (container, name) = (archive ? Containers.Archives : Containers.Uploads, folder + file.Name);
            try
            {
                if (!archive)
                {
                    ImageFile.Check(ImageFile.Target(file.Path).Length); // an empty file or a pipe is not sent; nor one no image can be
                }

                await service.GetBlobContainerClient(container).GetBlobClient(name).UploadAsync(file.Path, new BlobUploadOptions { Metadata = metadata }, ct);
                var (kind, id) = archive ? ("batch", PipelineIds.Batch(name)) : ("image", PipelineIds.Image(name));
                var path = archive ? LeukoApi.BatchPath(id) : LeukoApi.ImagePath(id);
                lock (output)
                {
                    stdout.WriteLine($"{TerminalText.OneLine($"{container}/{name}")}\t{kind} {id}\t{server.TrimEnd('/')}{path}"); // one line of three columns, whatever the name holds
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or RequestFailedException or AggregateException or InvalidImageException)
            {
                Interlocked.Increment(ref failed);
                lock (output)
                {
                    stderr.WriteLine($"failed: {TerminalText.OneLine(file.Path)}: {(e is FileNotFoundException ? InputFiles.Gone : e.Message.Split('\n')[0].Trim())}");
                }
            }

            lock (output)
            {
                progress.Advance();
            }
        });

        return failed > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
    }

    /// <summary>
    /// The blob service of <paramref name="connectionString"/>, reached once (the upload containers are created if
    /// absent) so that a wrong address or key is one clear error, not one per file; null (the error written) if not.
    /// </summary>
    internal static async Task<BlobServiceClient?> ConnectAsync(string connectionString, TextWriter stderr, CancellationToken cancellationToken)
    {
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = 2;
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(30);
        if (Parse(connectionString, stderr, options) is not { } service)
        {
            return null;
        }

        try
        {
            foreach (var container in new[] { Containers.Uploads, Containers.Archives })
            {
                await service.GetBlobContainerClient(container).CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            }
        }
        catch (Exception e) when (IsUnreachable(e))
        {
            stderr.WriteLine(Unreachable(service.Uri, e));
            return null;
        }

        return service;
    }

    /// <summary>What the storage client throws when the account does not answer or refuses (after its retries).</summary>
    internal static bool IsUnreachable(Exception e) => e is RequestFailedException or AggregateException or HttpRequestException;

    /// <summary>The one line that says so: the last attempt's reason, its first line.</summary>
    internal static string Unreachable(Uri account, Exception e)
    {
        var reason = e is AggregateException a ? a.InnerExceptions[^1].Message : e.Message;
        return $"error: cannot reach the storage at {account}: {reason.Split('\n')[0].Trim()}";
    }

    /// <summary>The blob service a connection string names, without reaching it; null (the error written) when it is not one.</summary>
    internal static BlobServiceClient? Parse(string connectionString, TextWriter stderr, BlobClientOptions? options = null)
    {
        try
        {
            return new BlobServiceClient(connectionString, options);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            stderr.WriteLine($"error: --storage is not a storage connection string ({e.Message})");
            return null;
        }
    }
}
