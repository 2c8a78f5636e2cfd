using System.Text;

namespace Leuko.Cli;

/// <summary>
/// Text that came with the inputs (a file's or archive entry's name, a decoder's message) made safe for one line of a
/// terminal: a name may hold a line break or an escape sequence, which printed as it is would forge lines of the
/// output or drive the terminal. The results files keep the name as it is.
/// </summary>
public static class TerminalText
{
    /// <summary><paramref name="text"/> with each control character written as an escape (<c>\n</c>, <c>\r</c>, <c>\t</c>, <c>\u001b</c>).</summary>
    public static string OneLine(string? text)
    {
        if (string.IsNullOrEmpty(text) || !text.Any(char.IsControl))
        {
            return text ?? "";
        }

        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            escaped.Append(c switch
            {
                '\n' => @"\n",
                '\r' => @"\r",
                '\t' => @"\t",
                _ when char.IsControl(c) => $@"\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return escaped.ToString();
    }
}
