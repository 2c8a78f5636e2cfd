using System.Net;

namespace Leuko.Pipeline.Webhooks;

/// <summary>One row of <see cref="SpecialPurposeAddresses.Blocks"/>: an address block and whether a webhook may reach it.</summary>
/// <param name="Prefix">The block.</param>
/// <param name="Name">Its name, as the registry (or the cloud vendor) gives it.</param>
/// <param name="Reference">The RFC that assigned it (or the vendor's documentation).</param>
/// <param name="GloballyReachable">
/// The registry's "Globally Reachable" column: true, false, or null where the registry says N/A (the transition forms).
/// For rows from outside the special-purpose registries: true for ordinary unicast space, false otherwise.
/// </param>
/// <param name="Webhook">Whether a webhook may be delivered there.</param>
/// <param name="Embeds">Where its addresses carry an IPv4 address, judged by the same table.</param>
public sealed record AddressBlock(
    IPNetwork Prefix,
    string Name,
    string Reference,
    bool? GloballyReachable,
    WebhookReach Webhook,
    EmbeddedIPv4 Embeds = EmbeddedIPv4.None);
