#!/usr/bin/python3
"""A Python reference implementation of `leuko analyze`: what a user might write instead of the C# CLI.

    /usr/bin/python3 leuko_reference.py INPUT_FOLDER --out OUT_FOLDER [--model models/leukocyte-cnn.onnx]

Per image, as `leuko analyze` does it (ported from functions/Leuko.Core and functions/Leuko.Pipeline): decode (EXIF
orientation applied, alpha composited over white, 16-bit scaled to 8), estimate the scale from the red cells
(isolated round cells, else the curvature of packed outlines, else the single-cell-frame default), segment (background
mask, nucleus mask, cell regions, erythrocyte mask), cut each cell's 18 um square crop, resize it to the model input,
classify it with OpenCV's DNN module (one view; the 8 symmetries for the cells the single view is not sure of, by the
card's sureConfidence), apply the card's prior correction (logitOffsets) and temperature, flag cells for review (other
kinds, possible other kinds, unfamiliar stain by crop and by field, low confidence, atypical by evidence and feature
distance), and write annotated/NAME.jpg (outlines, review boxes, labels) and results.json.

Dependencies: Debian's python3-opencv (4.6, with cv2.dnn), python3-numpy, python3-protobuf (to read the ONNX file),
python3-pil (EXIF orientation). Single process, OpenCV's default threading.

OpenCV 4.6's ONNX importer cannot load the model's distance head (ReduceSum with its axes as an input, opset 13), so
the graph is cut at the feature vector: cv2.dnn computes the logits and the 192 features, and the distance (the
smallest whitened distance to a class centre, over the feature count) is computed here with numpy from the graph's own
initializers, exactly as the exported head computes it.
"""
import argparse
import hashlib
import io
import json
import math
import os
import sys
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_min  # noqa: E402

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
MAX_PIXELS = 50_000_000
MIN_SIDE = 32

# ----------------------------------------------------------------------------------------------------------------
# Options (SegmentationOptions, ScaleOptions, RedCellMasks, RedCellScaleEstimator constants)
# ----------------------------------------------------------------------------------------------------------------
SMOOTHING_SIGMA = 0.12
NUCLEUS_BLUE_SHIFT = 20
NOISE_RADIUS = 0.16
LOBE_JOIN_RADIUS = 0.64
MIN_NUCLEUS_AREA = 19
MIN_BORDER_NUCLEUS_AREA = 35
CYTOPLASM_MARGIN = 0.25
LOBE_MERGE_OVERLAP = 0.1  # SegmentationOptions.LobeMergeOverlap
RED_CELL_RADIUS = 3.75
CROP_WINDOW = 18
FINEST_MICRONS_PER_PIXEL = 0.05  # SegmentationOptions.FinestMicronsPerPixel: finer images are segmented resampled to it
BLUE_RED_CELLS = 5

RED_CELL_DIAMETER_MICRONS = 7.5
MIN_RED_CELLS = 3
DEFAULT_FIELD_MICRONS = 36
MIN_CIRCULARITY = 0.75
MIN_SOLIDITY = 0.92
SIZE_TOLERANCE = 0.25
TRUSTED_RED_CELLS = 10
MIN_DIAMETER_PIXELS = 8
MIN_MPP, MAX_MPP = 0.01, 5

NOT_SMEAR_BELOW = 16
PLATELET_BLUE_SHIFT = NUCLEUS_BLUE_SHIFT / 2
MIN_CELL_RADIUS = 4
ARC_AGREEMENT = 0.08
MIN_ARC_SAMPLES = 20
FIELD_MIN_PIXELS = 200

ELLIPSE3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
RECT3 = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


class InvalidImage(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------------
# Decoding (ImageDecoder)
# ----------------------------------------------------------------------------------------------------------------
def decode(data):
    """8-bit BGR pixels turned as the EXIF orientation says, and the orientation applied."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            orientation = header.getexif().get(0x0112, 1) if header.format in ("JPEG", "PNG") else 1
    except Exception as e:  # PIL refuses what it cannot read
        raise InvalidImage(f"unsupported or corrupt image: {e}")
    if orientation not in range(1, 9):
        orientation = 1
    if width * height > MAX_PIXELS:
        raise InvalidImage(f"image too large: {width}x{height}")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InvalidImage(f"image too small: {width}x{height}")
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InvalidImage("corrupt image: the decoder could not read the pixels")
    if raw.ndim < 3 or raw.shape[2] < 3:
        raise InvalidImage("grayscale image: a colour photograph is needed")
    if raw.dtype == np.uint16:
        raw = cv2.convertScaleAbs(raw, alpha=1 / 257.0)
    elif raw.dtype != np.uint8:
        raise InvalidImage("unsupported sample type")
    if raw.shape[2] == 4:
        alpha = raw[:, :, 3:4].astype(np.float32) / 255
        raw = np.clip(np.rint(raw[:, :, :3].astype(np.float32) * alpha + 255 * (1 - alpha)), 0, 255).astype(np.uint8)
    image = np.ascontiguousarray(raw[:, :, :3])
    if orientation >= 5:
        image = cv2.transpose(image)
    if orientation in (2, 6):
        image = cv2.flip(image, 1)
    elif orientation in (3, 7):
        image = cv2.flip(image, -1)
    elif orientation in (4, 8):
        image = cv2.flip(image, 0)
    return image, orientation


# ----------------------------------------------------------------------------------------------------------------
# Histogram statistics over a mask (Histograms)
# ----------------------------------------------------------------------------------------------------------------
def histogram(gray, mask):
    return cv2.calcHist([gray], [0], mask, [256], [0, 256]).ravel()


def median(gray, mask=None):
    hist = histogram(gray, mask).astype(np.float64)
    cum = np.cumsum(hist)
    idx = int(np.searchsorted(cum, cum[-1] / 2.0, side="left"))
    return float(min(idx, 255))


def otsu(gray, mask):
    """Otsu's threshold over the masked pixels, as Histograms.Otsu computes it (float products, double sums)."""
    hist = histogram(gray, mask)
    total = float(hist.sum(dtype=np.float64))
    products = (np.arange(256, dtype=np.float32) * hist).astype(np.float64)
    total_sum = float(products.sum())
    weight_below = np.cumsum(hist.astype(np.float64))[:255]
    sum_below = np.cumsum(products)[:255]
    valid = (weight_below != 0) & (weight_below != total)
    if not valid.any():
        return 127.5
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = sum_below / weight_below
        mean_above = (total_sum - sum_below) / (total - weight_below)
        d = mean_below - mean_above
        between = weight_below * (total - weight_below) * (d * d)
    between[~valid] = -np.inf
    return float(np.argmax(between)) + 0.5


def disk(radius):
    r = max(1, int(round(radius)))  # Math.Round: half to even, as Python's round
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


# ----------------------------------------------------------------------------------------------------------------
# Red-cell masks, scale and field colours (RedCellMasks, RedCellScaleEstimator, FieldColours)
# ----------------------------------------------------------------------------------------------------------------
def fill_holes(mask):
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is not None:
        holes = [c for c, h in zip(contours, hierarchy[0]) if h[3] >= 0]
        if holes:
            cv2.drawContours(mask, holes, -1, 255, -1)


def red_cell_masks(bgr):
    smooth = cv2.GaussianBlur(bgr, (0, 0), 1.0)
    lab = cv2.cvtColor(smooth, cv2.COLOR_BGR2Lab)
    lightness = cv2.extractChannel(lab, 0)
    blue_yellow = cv2.extractChannel(lab, 2)
    b, g, r = cv2.split(smooth)
    brightest = cv2.max(cv2.max(b, g), r)
    _, smear = cv2.threshold(brightest, NOT_SMEAR_BELOW, 255, cv2.THRESH_BINARY)
    smear = cv2.erode(smear, RECT3, iterations=3, borderType=cv2.BORDER_CONSTANT, borderValue=255)
    _, nucleus = cv2.threshold(blue_yellow, median(blue_yellow, smear) - NUCLEUS_BLUE_SHIFT, 255, cv2.THRESH_BINARY_INV)
    nucleus &= smear
    candidates = cv2.subtract(smear, nucleus)
    _, red = cv2.threshold(lightness, otsu(lightness, candidates), 255, cv2.THRESH_BINARY_INV)
    red &= candidates
    fill_holes(red)
    red = cv2.morphologyEx(red, cv2.MORPH_OPEN, ELLIPSE3)
    cut = cv2.bitwise_not(smear) | nucleus
    cut = cv2.dilate(cut, RECT3, iterations=2)
    return red, cut, blue_yellow


def plausible(mpp):
    return mpp if MIN_MPP <= mpp <= MAX_MPP else None


def red_cell_diameters(red, cut, blue_yellow, contours):
    height, width = red.shape
    red_cell_by = cv2.mean(blue_yellow, red)[0]
    min_area = math.pi * (MIN_DIAMETER_PIXELS / 2) ** 2
    diameters = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if area < min_area:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        if x < 1 or y < 1 or x + w > width - 1 or y + h > height - 1:
            continue
        perimeter = cv2.arcLength(contour, True)
        circularity = 4 * math.pi * area / (perimeter * perimeter)
        solidity = area / max(1.0, cv2.contourArea(cv2.convexHull(contour)))
        if circularity < MIN_CIRCULARITY or solidity < MIN_SOLIDITY:
            continue
        points = contour[:, 0, :]
        if cut[points[:, 1], points[:, 0]].any():
            continue
        outline = np.zeros((h, w), np.uint8)
        cv2.drawContours(outline, [contour], 0, 255, -1, offset=(-x, -y))
        if cv2.mean(blue_yellow[y:y + h, x:x + w], outline)[0] < red_cell_by - PLATELET_BLUE_SHIFT:
            continue
        diameters.append(2 * math.sqrt(area / math.pi))
    return diameters


def packed_radius(cut, contours):
    """The dominant red-cell radius of packed outlines from their curvature (RedCellScaleEstimator.PackedRadius),
    vectorised over every point of every outline for each arc length k."""
    height, width = cut.shape
    long_enough = [c[:, 0, :] for c in contours if len(c) >= 24]
    if not long_enough:
        return None
    lengths = np.array([len(c) for c in long_enough])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    points = np.concatenate(long_enough).astype(np.int64)
    px, py = points[:, 0], points[:, 1]
    usable = (px > 1) & (py > 1) & (px < width - 2) & (py < height - 2)
    usable[usable] = cut[py[usable], px[usable]] == 0
    n_of = np.repeat(lengths, lengths)
    start_of = np.repeat(starts, lengths)
    local = np.arange(len(points)) - start_of
    fx, fy = px.astype(np.float64), py.astype(np.float64)
    positive, negative = [], []
    k = 3
    while 4 * k < lengths.max():
        sel = np.nonzero((4 * k < n_of) & usable)[0]
        if len(sel):
            n, s, i = n_of[sel], start_of[sel], local[sel]
            back2, ahead2 = s + (i - 2 * k) % n, s + (i + 2 * k) % n
            ok = usable[back2] & usable[ahead2]
            sel, n, s, i, back2, ahead2 = sel[ok], n[ok], s[ok], i[ok], back2[ok], ahead2[ok]
            back, ahead = s + (i - k) % n, s + (i + k) % n
            r1, turn1 = circumradius(fx, fy, back, sel, ahead)
            keep = (r1 >= MIN_CELL_RADIUS) & (2 * k < 1.2 * r1) & (4 * k > 0.6 * r1)
            sel, back2, ahead2, r1, turn1 = sel[keep], back2[keep], ahead2[keep], r1[keep], turn1[keep]
            r2, turn2 = circumradius(fx, fy, back2, sel, ahead2)
            agree = (np.sign(turn1) == np.sign(turn2)) & (np.abs(r1 - r2) < ARC_AGREEMENT * r1)
            positive.append(r1[agree & (turn1 > 0)])
            negative.append(r1[agree & ~(turn1 > 0)])
        k = int(math.ceil(k * math.sqrt(2)))
    positive = np.concatenate(positive) if positive else np.empty(0)
    negative = np.concatenate(negative) if negative else np.empty(0)
    radii = positive if len(positive) >= len(negative) else negative
    return None if len(radii) < MIN_ARC_SAMPLES else log_mode(radii)


def circumradius(fx, fy, a, b, c):
    ax, ay, bx, by, cx, cy = fx[a], fy[a], fx[b], fy[b], fx[c], fy[c]
    ab = np.sqrt((ax - bx) ** 2 + (ay - by) ** 2)
    bc = np.sqrt((bx - cx) ** 2 + (by - cy) ** 2)
    ca = np.sqrt((cx - ax) ** 2 + (cy - ay) ** 2)
    cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(cross == 0, np.inf, ab * bc * ca / (2 * np.abs(cross)))
    return r, cross


def log_mode(values):
    bin_width = 0.05
    low = math.log(MIN_CELL_RADIUS)
    bins = ((np.log(values) - low) / bin_width).astype(np.int64)
    hist = np.bincount(bins, minlength=int((math.log(values.max()) - low) / bin_width) + 1).astype(np.float64)
    smoothed = np.convolve(hist, [1, 2, 3, 2, 1])[2:2 + len(hist)]  # each bin with two either side, weighted 1 2 3 2 1
    best = int(np.argmax(smoothed))
    return math.exp(low + (best + 0.5) * bin_width)


def estimate_scale(bgr, red, cut, blue_yellow):
    """(micronsPerPixel, source, redCellsMeasured), as RedCellScaleEstimator.Estimate."""
    contours, _ = cv2.findContours(red, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    diameters = red_cell_diameters(red, cut, blue_yellow, contours)
    packed_cache = []

    def packed():
        if not packed_cache:
            radius = packed_radius(cut, contours)
            packed_cache.append(plausible(RED_CELL_DIAMETER_MICRONS / (2 * radius)) if radius is not None else None)
        return packed_cache[0]

    if len(diameters) >= MIN_RED_CELLS:
        ordered = sorted(diameters)
        half, seen, diameter = sum(d * d for d in ordered) / 2, 0.0, ordered[-1]
        for d in ordered:
            seen += d * d
            if seen >= half:
                diameter = d
                break
        alike = sum(1 for d in diameters if abs(d - diameter) <= SIZE_TOLERANCE * diameter)
        isolated = plausible(RED_CELL_DIAMETER_MICRONS / diameter)
        if alike >= MIN_RED_CELLS and alike >= len(diameters) / 2.0 and isolated is not None:
            if alike >= TRUSTED_RED_CELLS or packed() is None or abs(math.log(isolated / packed())) <= math.log(1 + SIZE_TOLERANCE):
                return isolated, "estimated", len(diameters)
    if packed() is not None:
        return packed(), "estimated", len(diameters)
    h, w = bgr.shape[:2]
    return min(max(DEFAULT_FIELD_MICRONS / max(1, w, h), MIN_MPP), MAX_MPP), "default", len(diameters)


def field_colours(bgr, red, cut):
    """(whiteBgr, whitePixels, redBgr, redPixels): per-channel medians of the glass and of the red cells."""
    red_mask = red != 0
    white_mask = ~red_mask & (cut == 0)

    def medians(mask):
        count = int(mask.sum())
        values = []
        for c in range(3):
            hist = cv2.calcHist([bgr], [c], mask.view(np.uint8) * 255, [256], [0, 256]).ravel().astype(np.float64)
            cum = np.cumsum(hist[:255])
            values.append(float(min(int(np.searchsorted(cum, count / 2.0, side="left")), 255)))
        return values, count

    white, white_count = medians(white_mask)
    reds, red_count = medians(red_mask)
    return white, white_count, reds, red_count


def field_fingerprint(field):
    white, white_count, reds, red_count = field
    if white_count < FIELD_MIN_PIXELS or red_count < FIELD_MIN_PIXELS:
        return None
    pixels = np.array([[white, reds]], np.float64).round().clip(0, 255).astype(np.uint8)
    lab = cv2.cvtColor(pixels, cv2.COLOR_BGR2Lab)
    return lab.reshape(-1).astype(np.float64)


# ----------------------------------------------------------------------------------------------------------------
# Segmentation (LeukocyteSegmenter)
# ----------------------------------------------------------------------------------------------------------------
def segment(bgr, erythrocytes=False):
    red, cut, blue_yellow_1 = red_cell_masks(bgr)
    mpp, source, red_cells = estimate_scale(bgr, red, cut, blue_yellow_1)
    field = field_colours(bgr, red, cut)
    if mpp >= FINEST_MICRONS_PER_PIXEL:
        return segment_at(bgr, mpp, erythrocytes), (mpp, source, red_cells), field
    # Finer than the method needs (C# SegmentResampled): on a copy at FINEST_MICRONS_PER_PIXEL, mapped back.
    height, width = bgr.shape[:2]
    factor = mpp / FINEST_MICRONS_PER_PIXEL
    small = cv2.resize(bgr, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
    sx, sy = width / small.shape[1], height / small.shape[0]
    cells = segment_at(small, mpp * sx, erythrocytes)
    for c in cells:
        x, y, w, h = c["box"]
        x0, y0 = math.floor(x * sx), math.floor(y * sy)
        c["box"] = (x0, y0, min(width, math.ceil((x + w) * sx)) - x0, min(height, math.ceil((y + h) * sy)) - y0)
        c["area"] = round(c["area"] * sx * sy)
        c["nucleusArea"] = round(c["nucleusArea"] * sx * sy)
        points = c["contour"].astype(np.float64)
        points[..., 0] = np.clip(np.round((points[..., 0] + 0.5) * sx - 0.5), 0, width - 1)
        points[..., 1] = np.clip(np.round((points[..., 1] + 0.5) * sy - 0.5), 0, height - 1)
        c["contour"] = points.astype(np.int32)
    return cells, (mpp, source, red_cells), field


def segment_at(bgr, mpp, erythrocytes):
    scale = 1 / mpp
    height, width = bgr.shape[:2]

    smooth = cv2.GaussianBlur(bgr, (0, 0), SMOOTHING_SIGMA * scale)
    lab = cv2.cvtColor(smooth, cv2.COLOR_BGR2Lab)
    # Background: neither saturated nor red (Otsu on HSV S and on CIELAB a*).
    saturation = cv2.extractChannel(cv2.cvtColor(smooth, cv2.COLOR_BGR2HSV), 1)
    _, saturated = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, reddish = cv2.threshold(cv2.extractChannel(lab, 1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    background = cv2.bitwise_not(saturated | reddish)

    # Nuclei: bluer than the field median, or than blue-grey red cells, by NUCLEUS_BLUE_SHIFT.
    blue_yellow = cv2.extractChannel(lab, 2)
    lightness = cv2.extractChannel(lab, 0)
    field_median = median(blue_yellow)
    _, not_nucleus = cv2.threshold(blue_yellow, field_median - NUCLEUS_BLUE_SHIFT, 255, cv2.THRESH_BINARY)
    _, dark = cv2.threshold(lightness, otsu(lightness, not_nucleus), 255, cv2.THRESH_BINARY_INV)
    dark &= not_nucleus
    red_cells_by = median(blue_yellow, dark) if cv2.countNonZero(dark) else field_median
    reference = red_cells_by if red_cells_by < field_median - BLUE_RED_CELLS else field_median
    _, nucleus = cv2.threshold(blue_yellow, reference - NUCLEUS_BLUE_SHIFT, 255, cv2.THRESH_BINARY_INV)
    nucleus = cv2.morphologyEx(nucleus, cv2.MORPH_OPEN, disk(NOISE_RADIUS * scale))
    nucleus = cv2.morphologyEx(nucleus, cv2.MORPH_CLOSE, disk(LOBE_JOIN_RADIUS * scale))

    leukocyte_mask = np.zeros((height, width), np.uint8)
    background_colour = cv2.mean(bgr, background)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(nucleus, connectivity=8)
    min_area = MIN_NUCLEUS_AREA * scale * scale
    min_border_area = MIN_BORDER_NUCLEUS_AREA * scale * scale
    side = max(8, int(round(CROP_WINDOW * scale)))
    regions = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < min_area:
            continue
        if (x == 0 or y == 0 or x + w >= width or y + h >= height) and area < min_border_area:
            continue
        region = cell_region(labels, [label], (x, y, w, h), area)
        if region is not None:
            regions.append(region)

    regions = merge_pieces(labels, regions)
    cells = []
    for region in regions:
        x0, y0, x1, y1 = region["roi"]
        roi = leukocyte_mask[y0:y1, x0:x1]
        np.bitwise_or(roi, region["mask"], out=roi)
        cells.append({"box": region["box"], "area": region["area"], "nucleusArea": region["nucleusArea"],
                      "contour": region["contour"], "crop": square_crop(bgr, region["box"], side, background_colour)})

    if erythrocytes:
        # The method's erythrocyte mask (the segmenter computes it; analyze's outputs do not use it).
        stained = cv2.bitwise_not(background)
        ery = cv2.subtract(stained, leukocyte_mask)
        ery = cv2.morphologyEx(ery, cv2.MORPH_OPEN, disk(NOISE_RADIUS * scale))
        contours, hierarchy = cv2.findContours(ery, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        max_pallor = math.pi * (RED_CELL_RADIUS * scale) ** 2 / 2
        if hierarchy is not None:
            holes = [c for c, hh in zip(contours, hierarchy[0]) if hh[3] >= 0 and cv2.contourArea(c) < max_pallor]
            if holes:
                cv2.drawContours(ery, holes, -1, 255, -1)
        ery = cv2.subtract(ery, leukocyte_mask)
        background = cv2.subtract(background, ery)

    cells.sort(key=lambda c: -c["area"])
    return cells


def cell_region(labels, members, nucleus_box, nucleus_area):
    x, y, w, h = nucleus_box
    margin = int(math.ceil(CYTOPLASM_MARGIN * math.sqrt(nucleus_area / math.pi)))
    by = margin + 1
    height, width = labels.shape
    x0, y0 = max(0, x - by), max(0, y - by)
    x1, y1 = min(width, x + w + by), min(height, y + h + by)
    nucleus = np.isin(labels[y0:y1, x0:x1], members).astype(np.uint8) * 255
    contours, _ = cv2.findContours(nucleus, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    grown = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(grown, hull, 255)
    if margin > 0:
        grown = cv2.dilate(grown, disk(margin))
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    areas = [cv2.contourArea(c) for c in contours]
    contour = contours[int(np.argmax(areas))]
    region = np.zeros_like(grown)
    cv2.drawContours(region, [contour], 0, 255, -1)
    shifted = contour + np.array([x0, y0], np.int32)
    return {"labels": list(members), "nucleusBox": nucleus_box, "nucleusArea": nucleus_area, "roi": (x0, y0, x1, y1),
            "mask": region, "box": tuple(int(v) for v in cv2.boundingRect(shifted)),
            "area": int(cv2.countNonZero(region)), "contour": shifted}


def overlap(a, b):
    """The share of the smaller region that the other covers (C# CellRegion.Overlap)."""
    ax0, ay0, ax1, ay1 = a["roi"]
    bx0, by0, bx1, by1 = b["roi"]
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    both = cv2.bitwise_and(a["mask"][y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0], b["mask"][y0 - by0:y1 - by0, x0 - bx0:x1 - bx0])
    return cv2.countNonZero(both) / max(1, min(a["area"], b["area"]))


def merge_pieces(labels, regions):
    """Nuclei whose regions overlap by more than LOBE_MERGE_OVERLAP of the smaller make one cell (C# CellRegions)."""
    group = list(range(len(regions)))

    def root(i):
        while group[i] != i:
            i = group[i]
        return i

    merged = False
    for i in range(len(regions)):
        for j in range(i + 1, len(regions)):
            if root(i) != root(j) and overlap(regions[i], regions[j]) > LOBE_MERGE_OVERLAP:
                group[root(j)] = root(i)
                merged = True
    if not merged:
        return regions
    members = {}
    for i in range(len(regions)):
        members.setdefault(root(i), []).append(i)
    cells = []
    for key, parts in members.items():  # in order of first appearance, as C#'s GroupBy
        if len(parts) == 1:
            cells.append(regions[parts[0]])
            continue
        boxes = [regions[i]["nucleusBox"] for i in parts]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        whole = cell_region(labels, [l for i in parts for l in regions[i]["labels"]], (x0, y0, x1 - x0, y1 - y0),
                            sum(regions[i]["nucleusArea"] for i in parts))
        if whole is not None:
            cells.append(whole)
    return cells


def square_crop(bgr, box, side, background_colour):
    height, width = bgr.shape[:2]
    bx, by, bw, bh = box
    x = bx + bw // 2 - side // 2
    y = by + bh // 2 - side // 2
    ix0, iy0 = max(x, 0), max(y, 0)
    ix1, iy1 = min(x + side, width), min(y + side, height)
    return cv2.copyMakeBorder(bgr[iy0:iy1, ix0:ix1], iy0 - y, y + side - iy1, ix0 - x, x + side - ix1,
                              cv2.BORDER_CONSTANT, value=background_colour)


# ----------------------------------------------------------------------------------------------------------------
# Classification (LeukocyteClassifier, StainFingerprint, StainDomain)
# ----------------------------------------------------------------------------------------------------------------
class Classifier:
    def __init__(self, model_path):
        card_path = os.path.splitext(model_path)[0] + ".json"
        with open(card_path) as f:
            self.card = card = json.load(f)
        with open(model_path, "rb") as f:
            onnx_bytes = f.read()
        if card.get("onnxSha256") and hashlib.sha256(onnx_bytes).hexdigest().lower() != card["onnxSha256"].lower():
            raise SystemExit(f"model '{model_path}' does not match its card (SHA-256)")
        inp = card["input"]
        if inp.get("colourNormalisation"):
            raise SystemExit("this reference does not implement the card's colourNormalisation")
        if inp.get("windowMicrons") not in (None, CROP_WINDOW):
            raise SystemExit("the card's window is not the segmenter's 18 um")
        self.classes = card["classes"]
        self.others = set(card.get("otherClasses") or [])
        self.size = inp["width"]
        self.rgb = inp["colourOrder"].upper() == "RGB"
        self.scale = np.float32(inp["scale"])
        self.mean = np.array(inp["mean"], np.float32).reshape(1, 3, 1, 1)
        self.std = np.array(inp["std"], np.float32).reshape(1, 3, 1, 1)
        self.temperature = card["output"]["softmaxTemperature"]
        self.tta = (card.get("testTimeAugmentation") or "").lower() == "dihedral8"
        self.sure = card.get("sureConfidence")
        self.offsets = np.array(card["logitOffsets"], np.float64).astype(np.float32) if card.get("logitOffsets") else None
        self.review_threshold = card["reviewThreshold"]
        self.min_evidence = card.get("minEvidence")
        self.max_distance = card.get("maxDistance")
        self.stain_domain = card.get("stainDomain")
        self.field_domain = card.get("fieldStainDomain")
        self.views_run = 0
        self.net, self.features_name, self.whiten, self.centres = self._load(onnx_bytes, card["output"])

    @staticmethod
    def _load(onnx_bytes, output):
        """cv2.dnn on the graph up to the logits and the feature vector; the distance head's matrices for numpy."""
        model = onnx_min.ModelProto()
        model.ParseFromString(onnx_bytes)
        graph = model.graph
        producer = {o: n for n in graph.node for o in n.output}
        distance = producer[output["distance"]] if output.get("distance") else None
        whiten = centres = None
        features_name = None
        if distance is not None:
            # logits = Gemm(features, ...); distance = ReduceMin(Div(ReduceSum(Pow(Sub(Unsqueeze(MatMul(features, whiten)), centres)))))
            features_name = producer[output["name"]].input[0]
            matmul = next(n for n in graph.node if n.op_type == "MatMul" and n.input[0] == features_name)
            sub = next(n for n in graph.node if n.op_type == "Sub")
            inits = {t.name: t for t in graph.initializer}

            def array(name):
                t = inits[name]
                return np.frombuffer(t.raw_data, np.float32).reshape(list(t.dims)).copy()

            whiten, centres = array(matmul.input[1]), array(sub.input[1]).reshape(-1, array(matmul.input[1]).shape[1])
        wanted = [output["name"]] + ([features_name] if features_name else [])
        needed, stack = set(), list(wanted)
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.name + "|" + node.output[0] not in needed:
                needed.add(node.name + "|" + node.output[0])
                stack.extend(node.input)
        nodes = [n for n in graph.node if n.name + "|" + n.output[0] in needed]
        used = {i for n in nodes for i in n.input}
        inits = [t for t in graph.initializer if t.name in used]
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.initializer[:]
        graph.initializer.extend(inits)
        logits_info = next(o for o in graph.output if o.name == output["name"])
        outputs = [logits_info]
        if features_name:
            features_info = onnx_min.ValueInfoProto()
            features_info.CopyFrom(logits_info)  # OpenCV wants a type on each output; it does not check the shape
            features_info.name = features_name
            outputs.append(features_info)
        kept = [onnx_min.ValueInfoProto.FromString(o.SerializeToString()) for o in outputs]
        del graph.output[:]
        graph.output.extend(kept)
        net = cv2.dnn.readNetFromONNX(np.frombuffer(model.SerializeToString(), np.uint8))
        return net, features_name, whiten, centres

    def run(self, batch):
        """(logits, distance) for an NCHW float32 batch."""
        self.views_run += len(batch)
        self.net.setInput(batch)
        if self.features_name is None:
            return self.net.forward(self.card["output"]["name"]).copy(), None
        logits, features = self.net.forward([self.card["output"]["name"], self.features_name])
        z = features @ self.whiten
        d = ((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(2) / np.float32(z.shape[1])
        return logits.copy(), d.min(1)

    def corrected(self, logits):
        return logits + self.offsets if self.offsets is not None else logits

    @staticmethod
    def softmax(logits, temperature):
        """As LeukocyteClassifier.Softmax: float differences, double exponentials, float results."""
        shifted = (logits - logits.max(axis=1, keepdims=True)).astype(np.float64) / temperature
        e = np.exp(shifted)
        return (e.astype(np.float32).astype(np.float64) / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def dihedral_mean(self, batch):
        views = [np.rot90(batch, t, axes=(2, 3)) for t in range(4)]
        mirrored = batch[:, :, :, ::-1]
        views += [np.rot90(mirrored, t, axes=(2, 3)) for t in range(4)]
        n = len(batch)
        logits, distance = self.run(np.ascontiguousarray(np.concatenate(views)))
        mean = np.zeros((n, logits.shape[1]), np.float32)
        mean_distance = np.zeros(n, np.float32) if distance is not None else None
        for v in range(8):
            mean += logits[v * n:(v + 1) * n] / np.float32(8)
            if distance is not None:
                mean_distance += distance[v * n:(v + 1) * n] / np.float32(8)
        return mean, mean_distance

    def infer(self, batch):
        if not self.tta:
            return self.run(batch)
        if self.sure is None:
            return self.dihedral_mean(batch)
        logits, distance = self.run(batch)
        unsure = np.nonzero(self.softmax(self.corrected(logits), 1).max(axis=1) < self.sure)[0]
        if len(unsure):
            mean, mean_distance = self.dihedral_mean(batch[unsure])
            logits[unsure] = mean
            if distance is not None:
                distance[unsure] = mean_distance
        return logits, distance

    def resize(self, crop):
        interpolation = cv2.INTER_AREA if crop.shape[1] > self.size else cv2.INTER_LINEAR
        return cv2.resize(crop, (self.size, self.size), interpolation=interpolation)

    def stain_distance(self, resized, field_fp):
        distance = 0.0
        if self.stain_domain is not None:
            distance = domain_distance(self.stain_domain, stain_fingerprint(resized))
        if self.field_domain is not None and field_fp is not None:
            distance = max(distance, domain_distance(self.field_domain, field_fp))
        return distance

    def classify(self, crops, field):
        """[(label, probabilities, reviewReason)] for the crops of one field."""
        if not crops:
            return []
        resized = np.stack([self.resize(c) for c in crops])
        field_fp = field_fingerprint(field) if self.field_domain is not None else None
        has_stain = self.stain_domain is not None or self.field_domain is not None
        stain = [self.stain_distance(r, field_fp) for r in resized] if has_stain else [None] * len(crops)
        pixels = resized[:, :, :, ::-1] if self.rgb else resized
        batch = np.ascontiguousarray(((pixels.transpose(0, 3, 1, 2).astype(np.float32) * self.scale) - self.mean) / self.std)
        logits, distance = self.infer(batch)
        corrected = self.corrected(logits)
        probabilities = self.softmax(corrected, self.temperature)
        top = corrected.max(axis=1, keepdims=True)
        evidence = top[:, 0].astype(np.float64) + np.log(np.exp((corrected - top).astype(np.float64)).sum(axis=1))
        results = []
        for i in range(len(crops)):
            label = self.classes[int(np.argmax(probabilities[i]))]
            uncorrected = self.classes[int(np.argmax(logits[i]))]
            confidence = float(probabilities[i].max())
            d = None if distance is None else float(distance[i])
            if label in self.others:
                reason = "other-cell"
            elif uncorrected in self.others:
                reason = "possible-other-cell"
            elif stain[i] is not None and stain[i] > 1:
                reason = "unfamiliar-stain"
            elif crops[i].shape[0] < self.size or crops[i].shape[1] < self.size:
                reason = "low-resolution"  # the crop has fewer pixels than the model takes
            elif confidence < self.review_threshold:
                reason = "low-confidence"
            elif (self.min_evidence is not None and evidence[i] < self.min_evidence) or \
                    (self.max_distance is not None and d is not None and d > self.max_distance):
                reason = "atypical"
            else:
                reason = None
            results.append((label, probabilities[i], reason))
        return results


def stain_fingerprint(resized):
    """Nine CIELAB figures: means of the brightest fifth and darkest tenth (by L*, ties by position), channel medians."""
    lab = cv2.cvtColor(resized, cv2.COLOR_BGR2Lab).reshape(-1, 3)
    n = len(lab)
    order = np.argsort(lab[:, 0], kind="stable")
    bright = lab[order[n - n // 5:]].mean(axis=0)
    dark = lab[order[:n // 10]].mean(axis=0)
    med = np.median(lab, axis=0)
    return np.concatenate([bright, dark, med]).astype(np.float64)


def domain_distance(domain, fingerprint):
    best = math.inf
    for source in domain["sources"]:
        d = fingerprint - np.asarray(source["mean"], np.float64)
        precision = np.asarray(source["precision"], np.float64).reshape(len(d), len(d))
        best = min(best, math.sqrt(max(float(d @ precision @ d), 0.0)) / source["bound"])
    return best


# ----------------------------------------------------------------------------------------------------------------
# Results (ImageResult, Differential, BinomialInterval, Annotator)
# ----------------------------------------------------------------------------------------------------------------
def cumulative_at_most(k, n, p):
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    log_p, log_q = math.log(p), math.log(1 - p)
    log_term = n * log_q
    top, total = log_term, 1.0
    for i in range(1, k + 1):
        log_term += math.log(n - i + 1) - math.log(i) + log_p - log_q
        if log_term > top:
            total = total * math.exp(top - log_term) + 1
            top = log_term
        else:
            total += math.exp(log_term - top)
    return min(1.0, math.exp(top + math.log(total)))


def solve(f):
    a, b = 0.0, 1.0
    while b - a > 1e-9:
        m = (a + b) / 2
        if f(m) > 0:
            a = m
        else:
            b = m
    return (a + b) / 2


def class_count(k, n):
    if n == 0:
        low = high = 0.0
    else:
        low = 0.0 if k == 0 else solve(lambda p: cumulative_at_most(k - 1, n, p) - 0.975)
        high = 1.0 if k == n else solve(lambda p: cumulative_at_most(k, n, p) - 0.025)
    return {"count": k, "percent": 0 if n == 0 else round(100.0 * k / n, 1),
            "percentLow": round(100 * low, 1), "percentHigh": round(100 * high, 1)}


def differential(labels, differential_classes, others):
    counted = [l for l in labels if l not in others]
    return {c: class_count(counted.count(c), len(counted)) for c in differential_classes}


COLOURS = {"EOSINOPHIL": "#E4572E", "LYMPHOCYTE": "#2E86DE", "MONOCYTE": "#8E44AD", "NEUTROPHIL": "#27AE60",
           "BASOPHIL": "#1B2631", "IMMATURE_GRANULOCYTE": "#D35400", "ERYTHROBLAST": "#C0392B", "PLATELET": "#7F8C8D"}
REVIEW_COLOUR = "#F1C40F"


def bgr_of(hex_colour):
    rgb = int(hex_colour[1:], 16)
    return rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF


def annotate(image, cells):
    canvas = image.copy()
    height, width = image.shape[:2]
    scale = math.sqrt(width * height / (640.0 * 480.0))
    thickness = max(2, int(round(2 * scale)))
    font_scale = max(0.45, 0.5 * scale)
    font_thickness = max(1, int(round(scale)))
    for cell in cells:
        colour = bgr_of(COLOURS.get(cell["class"], "#16A085"))
        outline = cv2.approxPolyDP(cell["contour"], 1.0, True)
        cv2.drawContours(canvas, [outline], 0, colour, thickness, cv2.LINE_AA)
        x, y, w, h = cell["box"]
        review = cell["needsReview"]
        if review:
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), bgr_of(REVIEW_COLOUR), thickness)
        text = f"{cell['class']} {math.floor(cell['confidence'] * 100 + 0.5):.0f}%{' ?' if review else ''}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thickness)
        tx = min(max(x, 0), max(0, width - tw - 4))
        ty = y - th - baseline - 4 if y - th - baseline - 4 >= 0 else min(height - th - baseline - 4, y + h + 2)
        ty = max(0, ty)
        cv2.rectangle(canvas, (tx, ty), (tx + tw + 4 - 1, ty + th + baseline + 4 - 1), bgr_of(REVIEW_COLOUR) if review else colour, -1)
        cv2.putText(canvas, text, (tx + 2, ty + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0) if review else (255, 255, 255), font_thickness, cv2.LINE_AA)
    return canvas


def analyse(path, name, classifier, out_dir, erythrocytes=False):
    card = classifier.card
    record = {"source": path, "status": "failed", "error": None, "width": None, "height": None, "annotated": None,
              "scale": None, "orientation": None, "cells": [],
              "differential": differential([], card["differentialClasses"], classifier.others),
              "otherCells": {c: 0 for c in card["otherClasses"]}}
    try:
        with open(path, "rb") as f:
            image, orientation = decode(f.read())
    except (InvalidImage, OSError) as e:
        record["error"] = str(e)
        return record
    cells, (mpp, source, red_cells), field = segment(image, erythrocytes)
    record.update(width=image.shape[1], height=image.shape[0], orientation=orientation,
                  scale={"micronsPerPixel": round(mpp, 4), "source": source, "redCells": red_cells})
    results = []
    if cells:
        classified = classifier.classify([c["crop"] for c in cells], field)
        for i, (cell, (label, probabilities, reason)) in enumerate(zip(cells, classified)):
            probs = {c: round(float(p), 4) for c, p in zip(classifier.classes, probabilities)}
            x, y, w, h = cell["box"]
            results.append({"index": i, "box": {"x": x, "y": y, "width": w, "height": h}, "class": label,
                            "confidence": probs[label], "probabilities": probs, "needsReview": reason is not None,
                            "area": cell["area"], "reviewReason": reason})
        labels = [r["class"] for r in results]
        record.update(status="completed", cells=results,
                      differential=differential(labels, card["differentialClasses"], classifier.others),
                      otherCells={c: labels.count(c) for c in card["otherClasses"]})
    else:
        record["status"] = "no-leukocytes"
    # Every decoded image gets its annotated copy, with or without cells, as analyze writes it.
    drawn = annotate(image, [dict(r, box=c["box"], contour=c["contour"]) for r, c in zip(results, cells)])
    relative = "annotated/" + os.path.splitext(name)[0] + ".jpg"
    target = os.path.join(out_dir, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
    with open(target, "wb") as f:
        f.write(jpeg.tobytes())
    record["annotated"] = relative
    return record


def inputs(paths):
    found = []
    for path in paths:
        if os.path.isdir(path):
            files = []
            for root, _, names in os.walk(path):
                files += [os.path.join(root, n) for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
            found += [(f, os.path.relpath(f, path)) for f in sorted(files)]
        elif os.path.isfile(path):
            found.append((path, os.path.basename(path)))
        else:
            raise SystemExit(f"no such file or folder: '{path}'")
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    ap.add_argument("--out", required=True, help="folder for results.json and annotated/")
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "models", "leukocyte-cnn.onnx"))
    ap.add_argument("--erythrocyte-mask", action="store_true",
                    help="also make the erythrocyte mask, as leuko segment --masks does (analyze does not)")
    args = ap.parse_args()
    start = time.monotonic()
    classifier = Classifier(args.model)
    card = classifier.card
    os.makedirs(args.out, exist_ok=True)
    images = []
    for path, name in inputs(args.inputs):
        images.append(analyse(path, name, classifier, args.out, args.erythrocyte_mask))
    seconds = time.monotonic() - start
    cells = [c for im in images for c in im["cells"]]
    labels = [c["class"] for c in cells]
    summary = {
        "images": len(images),
        "completed": sum(im["status"] == "completed" for im in images),
        "noLeukocytes": sum(im["status"] == "no-leukocytes" for im in images),
        "failed": sum(im["status"] == "failed" for im in images),
        "skipped": 0, "cells": len(cells), "needsReview": sum(c["needsReview"] for c in cells),
        "unfamiliarStain": sum(c["reviewReason"] == "unfamiliar-stain" for c in cells),
        "lowResolution": sum(c["reviewReason"] == "low-resolution" for c in cells),
        "differential": differential(labels, card["differentialClasses"], classifier.others),
        "otherCells": {c: labels.count(c) for c in card["otherClasses"]},
        "seconds": round(seconds, 3), "imagesPerSecond": round(len(images) / max(seconds, 1e-6), 2),
        "viewsRun": classifier.views_run,
    }
    document = {"schemaVersion": 2,
                "model": {"name": card["name"], "version": card["version"], "classes": card["classes"],
                          "differentialClasses": card["differentialClasses"], "otherClasses": card["otherClasses"],
                          "reviewThreshold": card["reviewThreshold"]},
                "images": images, "skipped": [], "summary": summary}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(document, f, indent=2)
    print(f"{summary['images']} images in {seconds:.1f} s ({summary['imagesPerSecond']:.1f}/s): {summary['completed']} with "
          f"leukocytes, {summary['noLeukocytes']} without, {summary['failed']} failed; {summary['cells']} cells "
          f"({summary['needsReview']} to review), {classifier.views_run} views run")


if __name__ == "__main__":
    main()
