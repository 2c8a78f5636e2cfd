using System.CommandLine;
using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Leuko.Azure.Storage;
using Leuko.Pipeline.Reviews;
using Leuko.Pipeline.Storage;

namespace Leuko.Cli.Commands;

/// <summary>
/// <c>leuko export reviews</c>: the cells technologists reviewed, as a class-per-folder dataset in the layout
/// <c>leuko segment --dataset</c> writes (<c>dataset.tsv</c>: crop, source, class, leukocytes, micronsPerPixel,
/// scaleSource), with the original and reviewed class, the reviewer and the time beside: the training data a
/// laboratory gathers for its own microscope (<c>models/training/train.py --source lab=DIR</c> reads it).
/// </summary>
internal static class ExportCommand
{
    /// <summary>The columns of <c>dataset.tsv</c>: <see cref="DatasetCrops"/>'s six, then the review's.</summary>
    internal const string Header = "crop\tsource\tclass\tleukocytes\tmicronsPerPixel\tscaleSource\toriginalClass\treviewedClass\treviewer\treviewedAt";

    public static Command Create()
    {
        var storage = new Option<string>("--storage")
        {
            Description = "Storage connection string of the pipeline's tables and blobs (where leuko serve or the function app keep them).",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "Folder to write: one folder per reviewed class, and dataset.tsv.", Required = true };
        var sourcePrefix = new Option<string?>("--source-prefix")
        {
            Description = "Only images whose source starts with this (e.g. uploads/scope2/: one microscope's uploads).",
        };
        var reviews = new Command("reviews", "Write the reviewed cells (every cell of a signed-off image, and each cell a reviewer moved) as a class-per-folder dataset.")
        {
            storage, output, sourcePrefix,
        };
        reviews.SetAction((parse, ct) => RunAsync(
            parse.GetRequiredValue(storage), parse.GetRequiredValue(output), parse.GetValue(sourcePrefix),
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct));
        return new Command("export", "Export what the pipeline holds.") { reviews };
    }

    internal static async Task<int> RunAsync(
        string connectionString, string outputPath, string? sourcePrefix, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        if (OutputFolder.Create(outputPath, stderr) is not { } output)
        {
            return ExitCodes.BadUsage;
        }

        if (await UploadCommand.ConnectAsync(connectionString, stderr, cancellationToken) is not { } blobService)
        {
            return ExitCodes.BadUsage;
        }

        var tables = new TableServiceClient(connectionString);
        var results = new TableResultStore(tables);
        var reviewStore = new TableReviewStore(tables);
        var blobs = new AzureBlobStore(blobService);
        IReadOnlyList<ReviewState> states;
        try
        {
            states = await reviewStore.ListStatesAsync(ReviewState.Image, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            states = []; // no review table: nothing was ever reviewed
        }

        int images = 0, signed = 0, cellsWritten = 0;
        var missing = new List<string>();
        await using (var index = new StreamWriter(Path.Combine(output.FullName, "dataset.tsv")))
        {
            index.WriteLine(Header);
            foreach (var state in states.OrderBy(s => s.SubjectId, StringComparer.Ordinal))
            {
                // A review of an earlier version of the upload is not of the cells the image has now.
                if (await results.GetImageAsync(state.SubjectId, cancellationToken) is not { BlobETag: { } version } row || version != state.BlobETag ||
                    (sourcePrefix is not null && !row.Source.StartsWith(sourcePrefix, StringComparison.Ordinal)))
                {
                    continue;
                }

                var reviewed = (await reviewStore.GetCellReviewsAsync(row.ImageId, version, cancellationToken)).ToDictionary(r => r.Index);
                var cells = (await results.GetCellsAsync(row.ImageId, version, cancellationToken))
                    .Where(c => state.IsSignedOff || reviewed.ContainsKey(c.Index)).ToList();
                images++;
                signed += state.IsSignedOff ? 1 : 0;
                foreach (var cell in cells)
                {
                    var review = reviewed.GetValueOrDefault(cell.Index);
                    var label = review?.ReviewedClass ?? cell.Class;
                    if (cell.CropBlob.Split('/', 2) is not [var container, var name] || await blobs.GetAsync(container, name, cancellationToken) is not { } blob)
                    {
                        missing.Add($"{row.Source} cell {cell.Index}");
                        continue;
                    }

                    var crop = $"{label}/{row.ImageId}-{cell.Index.ToString("D5", CultureInfo.InvariantCulture)}{Path.GetExtension(name)}";
                    Directory.CreateDirectory(Path.Combine(output.FullName, label));
                    await File.WriteAllBytesAsync(Path.Combine(output.FullName, crop), blob.Content.ToArray(), cancellationToken);
                    index.WriteLine(string.Join('\t',
                        crop, Field(row.Source), label, row.Cells.ToString(CultureInfo.InvariantCulture),
                        row.Scale is { } scale ? scale.MicronsPerPixel.ToString("0.####", CultureInfo.InvariantCulture) : "", row.Scale?.Source ?? "",
                        cell.Class, label, review?.Reviewer ?? state.SignedOffBy ?? "", (review?.At ?? state.SignedOffAt)?.ToString("O", CultureInfo.InvariantCulture) ?? ""));
                    cellsWritten++;
                }
            }
        }

        foreach (var cell in missing.Take(20))
        {
            stderr.WriteLine($"failed: {cell}: its crop is no longer in storage");
        }

        stdout.WriteLine($"{cellsWritten} reviewed cells of {images} images ({signed} signed off) written to {output.FullName}; index: {Path.Combine(output.FullName, "dataset.tsv")}");
        return missing.Count > 0 ? ExitCodes.SomeFailed : ExitCodes.Success;
    }

    // A source is free text: a tab or line break in it would break the TSV's columns.
    private static string Field(string text) => text.Replace('\t', ' ').Replace('\r', ' ').Replace('\n', ' ');
}
