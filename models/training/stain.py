"""Is a crop's stain and camera like one the model was trained on? The image-level half of the review flag.

A CNN trained on two or three microscopes is confidently wrong on a fourth (the leave-one-source-out study in
models/README.md: cells it accepted were 67-89% correct), and its own feature distance hardly notices. What does notice
is colour: each microscope's stain, lamp and camera give its crops a colour signature that no cell class changes much.
The fingerprint of a crop (the model's input, 8-bit RGB, after the segmenter's resize) is nine CIELAB figures:

- the mean L*, a*, b* of its brightest fifth (plasma and glass: the lamp and the white balance),
- the mean L*, a*, b* of its darkest tenth (nuclear chromatin and granules: the haematoxylin/azure stain),
- the median L*, a*, b* of all its pixels (red cells and cytoplasm: the eosin stain and the field).

Pixels are ranked by L* with ties broken by position (row-major), so that the C# classifier
(Leuko.Core.Classification.StainFingerprint) computes the same figures; OpenCV's 8-bit Lab conversion in both.
Each training source gets a Gaussian (mean and covariance of its training crops' fingerprints, shrunk 5% towards the
mean variance); a crop's stain distance is its smallest Mahalanobis distance to a source divided by that source's
bound (the `quantile` of its own training crops), so a crop is familiar when the distance is at most 1.

    python3 stain.py --card ../leukocyte-cnn.json --parity ../leukocyte-cnn.parity.json \
        --source kaggle=DIR --groups kaggle=groups.tsv --source pbc=DIR,DIR --source deepbionet=DIR

adds the domain to an existing card, fitted on the training split that train.py draws (train.py does the same itself).
"""
import argparse
import json
import random
import sys

import cv2
import numpy as np

FEATURES = "lab-bright20-dark10-median"
SHRINKAGE = 0.05

# The field check: the same Gaussians over each image's field colours (fields.tsv beside the crops, written by
# `leuko segment --dataset`: the per-channel medians of its glass and of its red cells, C# FieldColours), six CIELAB
# figures, the microscope's signature whatever cell the crop shows. A field with fewer than FIELD_MIN_PIXELS of either
# is not measured (NaN: never flagged by this check).
FIELD_FEATURES = "field-lab-white-red"
FIELD_MIN_PIXELS = 200


def field_fingerprints(fields):
    """(N, 8) fields.tsv rows (whiteB, whiteG, whiteR, whitePixels, redB, redG, redR, redPixels) as (N, 6) CIELAB
    (OpenCV's 8-bit conversion of the rounded medians, as C# FieldColours.Fingerprint): background L*, a*, b*, then the
    red cells'; NaN rows where either has too few pixels."""
    bgr = np.clip(np.rint(np.concatenate([fields[:, 0:3], fields[:, 4:7]], 1)), 0, 255).astype(np.uint8).reshape(1, -1, 3)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).reshape(len(fields), 6).astype(np.float64)
    ok = (fields[:, 3] >= FIELD_MIN_PIXELS) & (fields[:, 7] >= FIELD_MIN_PIXELS)
    lab[~ok] = np.nan
    return lab


def field_distance(fps, domain):
    """`distance` for field fingerprints: 0 (familiar) where a field was not measured."""
    ok = ~np.isnan(fps).any(1)
    out = np.zeros(len(fps))
    if ok.any():
        out[ok] = distance(fps[ok], domain)
    return out


def fingerprints(images_rgb):
    """Fingerprints of uint8 RGB crops (N, S, S, 3): an (N, 9) float64 array."""
    out = np.empty((len(images_rgb), 9))
    for i, im in enumerate(images_rgb):
        lab = cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
        order = np.argsort(lab[:, 0], kind="stable")
        n = len(order)
        bright = lab[order[n - n // 5:]].mean(0)
        dark = lab[order[: n // 10]].mean(0)
        out[i] = np.concatenate([bright, dark, np.median(lab, 0)])
    return out


def fit_domain(train_fps, quantile, features=FEATURES):
    """One Gaussian per source from its training fingerprints, and its bound: {"features", "quantile", "sources": [...]}.
    Rows with NaN (fields not measured) are left out."""
    sources = []
    for name, f in train_fps.items():
        f = f[~np.isnan(f).any(1)]
        mean = f.mean(0)
        cov = np.cov(f.T)
        cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.eye(len(mean)) * np.trace(cov) / len(mean)
        precision = np.linalg.inv(cov)
        bound = float(np.quantile(_mahalanobis(f, mean, precision), quantile))
        sources.append({"name": name, "crops": int(len(f)), "mean": [round(float(v), 6) for v in mean],
                        "precision": [round(float(v), 9) for v in precision.flatten()], "bound": round(bound, 6)})
    return {"features": features, "quantile": quantile, "sources": sources}


def _mahalanobis(f, mean, precision):
    d = f - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, precision, d), 0))


def distance(fps, domain):
    """Each crop's stain distance: the smallest over sources of Mahalanobis distance / bound (familiar when <= 1)."""
    per_source = []
    for s in domain["sources"]:
        mean, precision = np.array(s["mean"]), np.array(s["precision"]).reshape(len(s["mean"]), -1)
        per_source.append(_mahalanobis(fps, mean, precision) / s["bound"])
    return np.min(per_source, axis=0)


def main():
    import train  # the split and the crop loader are train.py's, so the domain is fitted on the same training crops

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", required=True)
    ap.add_argument("--parity", required=True)
    ap.add_argument("--source", action="append", required=True)
    ap.add_argument("--groups", action="append")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--quantile", type=float, default=0.99)
    ap.add_argument("--field-quantile", type=float, default=0.995,
                    help="the field check's bound: this quantile of each source's training fields (fieldStainDomain)")
    args = ap.parse_args()
    dirs = {k: v.split(",") for k, v in train.parse_pairs(args.source, "--source").items()}
    groups = train.parse_pairs(args.groups, "--groups")
    sources = {n: train.load_source(n, d, groups.get(n)) for n, d in dirs.items()}
    rng = random.Random(args.seed)
    split = {n: train.grouped_split(s[1], s[2], args.val_fraction, rng) for n, s in sources.items()}
    fps = {n: fingerprints(s[0]) for n, s in sources.items()}
    domain = fit_domain({n: fps[n][split[n][0]] for n in sources}, args.quantile)
    domain["validationUnfamiliar"] = {n: round(float((distance(fps[n][split[n][1]], domain) > 1).mean()), 4) for n in sources}
    # Leave one source out: fitted on the others' training crops, the share of the left-out source's crops judged familiar.
    domain["leaveOneSourceOutFamiliar"] = {
        h: round(float((distance(fps[h], fit_domain({n: fps[n][split[n][0]] for n in sources if n != h}, args.quantile)) <= 1).mean()), 4)
        for h in sources}
    raw_fields = {n: train.load_fields(d) for n, d in dirs.items()}
    ffps = {n: field_fingerprints(f) for n, f in raw_fields.items()}
    field = fit_domain({n: ffps[n][split[n][0]] for n in sources}, args.field_quantile, FIELD_FEATURES)
    field["validationUnfamiliar"] = {n: round(float((field_distance(ffps[n][split[n][1]], field) > 1).mean()), 4) for n in sources}
    field["leaveOneSourceOutFamiliar"] = {
        h: round(float((field_distance(ffps[h], fit_domain({n: ffps[n][split[n][0]] for n in sources if n != h}, args.field_quantile, FIELD_FEATURES)) <= 1).mean()), 4)
        for h in sources}
    # both checks, as the classifier applies them (a cell is flagged when its crop or its field is unfamiliar)
    both = {}
    for h in sources:
        crop_dom = fit_domain({n: fps[n][split[n][0]] for n in sources if n != h}, args.quantile)
        field_dom = fit_domain({n: ffps[n][split[n][0]] for n in sources if n != h}, args.field_quantile, FIELD_FEATURES)
        both[h] = round(float(((distance(fps[h], crop_dom) <= 1) & (field_distance(ffps[h], field_dom) <= 1)).mean()), 4)
    field["leaveOneSourceOutFamiliarWithCropCheck"] = both
    field["validationUnfamiliarWithCropCheck"] = {n: round(float(((distance(fps[n][split[n][1]], domain) > 1)
                                                                 | (field_distance(ffps[n][split[n][1]], field) > 1)).mean()), 4) for n in sources}
    with open(args.card) as f:
        card = json.load(f)
    card["stainDomain"] = domain
    card["fieldStainDomain"] = field
    with open(args.card, "w") as f:
        json.dump(card, f, indent=2)
    with open(args.parity) as f:
        parity = json.load(f)
    parity["stain"] = parity_vectors(sources, split, domain)
    parity["field"] = field_parity_vectors(raw_fields, split, field)
    with open(args.parity, "w") as f:
        json.dump(parity, f)
    print(f"stain domain: validation unfamiliar {domain['validationUnfamiliar']}; "
          f"left-out sources familiar {domain['leaveOneSourceOutFamiliar']}")
    print(f"field stain domain: validation unfamiliar {field['validationUnfamiliar']} (with the crop check "
          f"{field['validationUnfamiliarWithCropCheck']}); left-out sources familiar {field['leaveOneSourceOutFamiliar']} "
          f"(with the crop check {both})")
    return 0


def parity_vectors(sources, split, domain, per_source=3):
    """A few validation crops of each source (uint8 RGB) with their fingerprints and distances, for the C# parity test."""
    crops = np.concatenate([s[0][np.where(split[n][1])[0][:per_source]] for n, s in sources.items()])
    fps = fingerprints(crops)
    return {"shape": list(crops.shape), "rgb": crops.flatten().tolist(), "fingerprints": fps.round(6).tolist(),
            "distance": distance(fps, domain).round(6).tolist()}


def field_parity_vectors(raw_fields, split, domain, per_source=3):
    """A few validation fields of each source (their fields.tsv rows) with their fingerprints and distances, and one
    field with too few red-cell pixels to be measured, for the C# parity test."""
    rows = np.concatenate([f[np.where(split[n][1])[0][:per_source]] for n, f in raw_fields.items()])
    unmeasured = rows[:1].copy()
    unmeasured[0, 7] = FIELD_MIN_PIXELS - 1
    rows = np.concatenate([rows, unmeasured])
    fps = field_fingerprints(rows)
    return {"fields": rows.tolist(), "fingerprints": [None if np.isnan(r).any() else r.tolist() for r in fps],
            "distance": field_distance(fps, domain).round(6).tolist()}


if __name__ == "__main__":
    sys.exit(main())
