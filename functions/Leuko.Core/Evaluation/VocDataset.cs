using System.Xml.Linq;
using OpenCvSharp;

namespace Leuko.Core.Evaluation;

/// <summary>One annotated field of a Pascal-VOC folder: the image path and its leukocyte (WBC) boxes.</summary>
public sealed record VocImage(string ImagePath, IReadOnlyList<Rect> Leukocytes);

/// <summary>Reads a Pascal-VOC folder (<c>JPEGImages/</c> and <c>Annotations/</c>), as BCCD is laid out.</summary>
public static class VocDataset
{
    /// <summary>The VOC class names that mean a leukocyte.</summary>
    public static readonly IReadOnlySet<string> LeukocyteNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "WBC" };

    public static IReadOnlyList<VocImage> Load(string root)
    {
        var annotations = Path.Combine(root, "Annotations");
        var images = Path.Combine(root, "JPEGImages");
        if (!Directory.Exists(annotations) || !Directory.Exists(images))
        {
            throw new DirectoryNotFoundException($"'{root}' is not a Pascal-VOC folder: it needs Annotations/ and JPEGImages/");
        }

        var result = new List<VocImage>();
        foreach (var xml in Directory.EnumerateFiles(annotations, "*.xml").Order(StringComparer.Ordinal))
        {
            XDocument doc;
            try
            {
                doc = XDocument.Load(xml);
            }
            catch (System.Xml.XmlException e)
            {
                throw new InvalidDataException($"'{xml}' is not a readable annotation: {e.Message}", e);
            }

            var fileName = doc.Root?.Element("filename")?.Value;
            var imagePath = fileName is { Length: > 0 } ? Path.Combine(images, fileName) : null;
            if (imagePath is null || !File.Exists(imagePath))
            {
                // Some VOC exports name the file without or with another extension: fall back to the annotation's stem.
                imagePath = Directory.EnumerateFiles(images, Path.GetFileNameWithoutExtension(xml) + ".*").FirstOrDefault()
                    ?? throw new FileNotFoundException($"no image for annotation '{xml}'");
            }

            var boxes = doc.Descendants("object")
                .Where(o => LeukocyteNames.Contains(o.Element("name")?.Value.Trim() ?? string.Empty))
                .Select(o => o.Element("bndbox") ?? throw new InvalidDataException($"object without bndbox in '{xml}'"))
                .Select(b => Rect.FromLTRB(
                    Coordinate(b, "xmin", xml), Coordinate(b, "ymin", xml), Coordinate(b, "xmax", xml), Coordinate(b, "ymax", xml)))
                .ToList();
            result.Add(new VocImage(imagePath, boxes));
        }

        return result;
    }

    private static int Coordinate(XElement box, string name, string file)
    {
        var text = box.Element(name)?.Value ?? throw new InvalidDataException($"bndbox without {name} in '{file}'");
        return double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value) &&
               double.IsFinite(value) && Math.Abs(value) < int.MaxValue
            ? (int)Math.Round(value)
            : throw new InvalidDataException($"bndbox {name} '{text.Trim()}' is not a pixel coordinate in '{file}'");
    }
}
