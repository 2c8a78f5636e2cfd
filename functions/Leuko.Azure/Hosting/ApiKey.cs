namespace Leuko.Azure.Hosting;

/// <summary>A named key from an API keys file.</summary>
public sealed record ApiKey(string Name, string Value);
