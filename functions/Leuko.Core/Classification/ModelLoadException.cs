namespace Leuko.Core.Classification;

/// <summary>The classifier's model is missing, corrupt or does not match its card; raised when the model is loaded.</summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);
