namespace Leuko.Pipeline.Webhooks;

/// <summary>
/// Who is asking for subscriptions: an API client sees and changes only those it created; an admin sees all
/// (and alone those made before subscriptions had owners).
/// </summary>
public sealed record WebhookCaller(string Client, bool IsAdmin)
{
    public bool Sees(WebhookSubscription subscription) => IsAdmin || subscription.Owner == Client;
}
