using Leuko.Azure.Storage;
using static Leuko.Infra.Tests.Template;

namespace Leuko.Infra.Tests;

/// <summary>The storage account infra/ deploys has every table the stores write (the hosts create them too, but Bicep owns the account).</summary>
public class StorageTablesTests
{
    [Fact]
    public void EveryTableTheStoresUseIsDeployed()
    {
        var deployed = Module("storage")["variables"]!["tables"]!.AsArray().Select(Text).ToHashSet();
        string[] used =
        [
            TableResultStore.ImagesTable, TableResultStore.CellsTable, TableResultStore.BatchesTable, TableResultStore.BatchImagesTable,
            TableResultStore.ReceiptsTable, TableWebhookStore.WebhooksTable, TableWebhookStore.DeliveriesTable, TableReviewStore.ReviewsTable,
        ];

        Assert.All(used, table => Assert.True(deployed.Contains(table), $"table '{table}' is not in infra/modules/storage.bicep"));
    }
}
