using OpenCvSharp;

namespace Leuko.Pipeline;

/// <summary>Draws each cell's outline in its class colour, labelled with class and confidence; cells to review get an amber tag.</summary>
public static class Annotator
{
    /// <summary>Colour of cells a person should review, as #RRGGBB.</summary>
    public const string ReviewColour = "#F1C40F";

    private static readonly Dictionary<string, string> Known = new(StringComparer.Ordinal)
    {
        ["EOSINOPHIL"] = "#E4572E",
        ["LYMPHOCYTE"] = "#2E86DE",
        ["MONOCYTE"] = "#8E44AD",
        ["NEUTROPHIL"] = "#27AE60",
        ["BASOPHIL"] = "#1B2631",
        ["IMMATURE_GRANULOCYTE"] = "#D35400",
        ["ERYTHROBLAST"] = "#C0392B",
        ["PLATELET"] = "#7F8C8D",
    };

    private static readonly string[] Fallback = ["#16A085", "#D35400", "#7F8C8D", "#C0392B", "#2C3E50"];

    /// <summary>The colour of a class as #RRGGBB: fixed for the five leukocyte classes and the other-cell kinds, from a palette for classes of other models.</summary>
    public static string ColourOf(string label, IReadOnlyList<string> classes)
    {
        if (Known.TryGetValue(label, out var colour))
        {
            return colour;
        }

        int index = Math.Max(0, classes.ToList().IndexOf(label));
        return Fallback[index % Fallback.Length];
    }

    /// <summary>A copy of <paramref name="image"/> with every cell drawn.</summary>
    public static Mat Draw(Mat image, IReadOnlyList<CellResult> cells, IReadOnlyList<Point[]> contours, IReadOnlyList<string> classes)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (cells.Count != contours.Count)
        {
            throw new ArgumentException($"{cells.Count} cells but {contours.Count} contours");
        }

        var canvas = image.Clone();
        double scale = Math.Sqrt((double)image.Width * image.Height / (640.0 * 480.0));
        int thickness = Math.Max(2, (int)Math.Round(2 * scale));
        double fontScale = Math.Max(0.45, 0.5 * scale);
        int fontThickness = Math.Max(1, (int)Math.Round(scale));
        for (int i = 0; i < cells.Count; i++)
        {
            var cell = cells[i];
            var colour = ToScalar(ColourOf(cell.Class, classes));
            Cv2.DrawContours(canvas, [contours[i]], 0, colour, thickness, LineTypes.AntiAlias);
            if (cell.NeedsReview)
            {
                Cv2.Rectangle(canvas, new Rect(cell.Box.X, cell.Box.Y, cell.Box.Width, cell.Box.Height), ToScalar(ReviewColour), thickness);
            }

            var text = $"{cell.Class} {cell.Confidence * 100:0}%{(cell.NeedsReview ? " ?" : "")}";
            var size = Cv2.GetTextSize(text, HersheyFonts.HersheySimplex, fontScale, fontThickness, out int baseline);
            int x = Math.Clamp(cell.Box.X, 0, Math.Max(0, image.Width - size.Width - 4));
            int y = cell.Box.Y - size.Height - baseline - 4 >= 0 ? cell.Box.Y - size.Height - baseline - 4 : Math.Min(image.Height - size.Height - baseline - 4, cell.Box.Y + cell.Box.Height + 2);
            y = Math.Max(0, y);
            var tag = new Rect(x, y, size.Width + 4, size.Height + baseline + 4);
            Cv2.Rectangle(canvas, tag, cell.NeedsReview ? ToScalar(ReviewColour) : colour, -1);
            var ink = cell.NeedsReview ? Scalar.Black : Scalar.White;
            Cv2.PutText(canvas, text, new Point(x + 2, y + size.Height + 2), HersheyFonts.HersheySimplex, fontScale, ink, fontThickness, LineTypes.AntiAlias);
        }

        return canvas;
    }

    private static Scalar ToScalar(string hex)
    {
        int rgb = Convert.ToInt32(hex[1..], 16);
        return new Scalar(rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF);
    }
}
