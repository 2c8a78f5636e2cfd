namespace Leuko.Core.Imaging;

/// <summary>An input that is not an image the pipeline can analyse; the message says why, for the user.</summary>
public sealed class InvalidImageException(string message) : Exception(message);
