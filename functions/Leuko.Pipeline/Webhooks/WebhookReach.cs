namespace Leuko.Pipeline.Webhooks;

/// <summary>Whether a webhook may be delivered to an address of an <see cref="AddressBlock"/>.</summary>
public enum WebhookReach
{
    /// <summary>Never: not globally reachable, a transition form, or a shared service no subscriber owns.</summary>
    Refused,

    /// <summary>Yes (for a block that embeds an IPv4 address, only when that address is allowed too).</summary>
    Allowed,

    /// <summary>Loopback: refused, except in development (<c>Leuko:AllowLoopbackWebhooks</c>, <c>--allow-loopback-webhooks</c>).</summary>
    Loopback,
}
