using Leuko.Pipeline;
using Leuko.Pipeline.Storage;
using Microsoft.AspNetCore.Http;

namespace Leuko.Functions.Tests;

/// <summary>
/// The function app's review functions, called as the worker calls them: the page itself (anonymous, from this
/// origin only), who is calling, and a reclassification by the reviewer, refused to a client without the role.
/// </summary>
public sealed class ReviewFunctionsTests : IDisposable
{
    private readonly ApiRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task TheFunctionAppServesTheReviewPageAndItsFilesWithoutAKey()
    {
        var page = await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.ReviewPage(r, null)), "GET", key: null);
        Assert.Equal((200, "text/html"), (page.Status, page.ContentType));
        Assert.Contains("<script src=\"/api/review/review.js\"></script>", page.Text);
        var script = await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.ReviewPage(r, "review.js")), "GET", key: null);
        Assert.Equal((200, "text/javascript"), (script.Status, script.ContentType));
        Assert.Contains("x-functions-key", script.Text);
        Assert.Equal(200, (await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.ReviewPage(r, "review.css")), "GET", key: null)).Status);
        Assert.Equal(404, (await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.ReviewPage(r, "../host.json")), "GET", key: null)).Status);
    }

    [Fact]
    public async Task WhoAmISaysWhichClientCallsAndWhetherItMayReview()
    {
        var reviewer = (await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.WhoAmI(r)), "GET", _rig.Keys["reviewer"])).Json;
        Assert.Equal(_rig.Name("reviewer"), reviewer["name"]!.GetValue<string>());
        Assert.Equal(["read", "review"], reviewer["roles"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.True(reviewer["canReview"]!.GetValue<bool>());
        Assert.False((await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.WhoAmI(r)), "GET", _rig.Keys["lims"])).Json["canReview"]!.GetValue<bool>());
        Assert.Equal(401, (await ApiRig.CallAsync(r => Task.FromResult(_rig.Functions.WhoAmI(r)), "GET", key: null)).Status);
    }

    [Fact]
    public async Task TheReviewerReclassifiesACellAndSignsOffAndTheLimsMayNot()
    {
        var cells = new[] { new CellRow("img1", 0, "NEUTROPHIL", 0.6, new Dictionary<string, double> { ["NEUTROPHIL"] = 0.6 }, true, new Box(1, 1, 9, 9), 50, "", "crops/img1/v/0.png", BlobETag: "\"v1\"") };
        await _rig.Results.UpsertCellsAsync("img1", cells, default);
        await _rig.Results.TryWriteImageAsync(new ImageRow("img1", "uploads/a.jpg", "a.jpg", null, ImageStatus.Completed, null, 100, 100, 1, 1,
            new Dictionary<string, int> { ["NEUTROPHIL"] = 1 }, "m", 1, 1, null, "\"v1\"", DateTimeOffset.UtcNow), default);
        const string body = "{\"class\": \"LYMPHOCYTE\"}";

        Assert.Equal(403, (await ApiRig.CallAsync(r => _rig.Functions.ReclassifyCell(r, "img1", "0"), "POST", _rig.Keys["lims"], body)).Status);
        var moved = (await ApiRig.CallAsync(r => _rig.Functions.ReclassifyCell(r, "img1", "0"), "POST", _rig.Keys["reviewer"], body)).Json;
        Assert.Equal(("LYMPHOCYTE", _rig.Name("reviewer")), (moved["cell"]!["reviewedClass"]!.GetValue<string>(), moved["cell"]!["reviewedBy"]!.GetValue<string>()));
        Assert.Equal(1, moved["image"]!["reviewedDifferential"]!["LYMPHOCYTE"]!["count"]!.GetValue<int>());
        Assert.Equal(1, moved["image"]!["differential"]!["NEUTROPHIL"]!["count"]!.GetValue<int>());

        Assert.Equal(403, (await ApiRig.CallAsync(r => _rig.Functions.SignOffImage(r, "img1"), "POST", _rig.Keys["lims"])).Status);
        Assert.Equal(200, (await ApiRig.CallAsync(r => _rig.Functions.SignOffImage(r, "img1"), "POST", _rig.Keys["reviewer"])).Status);
        var late = await ApiRig.CallAsync(r => _rig.Functions.ReclassifyCell(r, "img1", "0"), "POST", _rig.Keys["reviewer"], "{\"class\": \"MONOCYTE\"}");
        Assert.Contains("its cells can no longer be changed", late.Problem(409)["detail"]!.GetValue<string>());
        var list = (await ApiRig.CallAsync(r => _rig.Functions.ListReviews(r), "GET", _rig.Keys["lims"])).Json;
        Assert.Equal(_rig.Name("reviewer"), list["images"]![0]!["signedOffBy"]!.GetValue<string>());
    }
}
