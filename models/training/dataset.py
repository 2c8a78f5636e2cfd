"""The training data: the classes, and a source's crops as `leuko segment --dataset` (or `leuko export reviews`) writes
them (a folder of class folders and dataset.tsv, whose first three columns are crop, source and class). Needs only
NumPy and Pillow, so that anything that reads a training source can be tested without PyTorch.
"""
import os
import time

import numpy as np
from PIL import Image


# The five-part differential, then the cells a laboratory reports apart from it ("other cells seen"): each kind its own
# class, so that a report can say which kind was seen.
DIFFERENTIAL = ["BASOPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
OTHER = ["IMMATURE_GRANULOCYTE", "ERYTHROBLAST", "PLATELET"]
CLASSES = DIFFERENTIAL + OTHER

# A source's label under another name (merge_other): read as that class.
ALIASES = {}


def merge_other(name="OTHER"):
    """One class for every kind reported apart, instead of one each (`train.py --merge-other`, an experiment:
    models/README.md, "Classes"). Changes the lists in place, so that every module that imported them sees it."""
    ALIASES.update({kind: name for kind in OTHER})
    OTHER[:] = [name]
    CLASSES[:] = DIFFERENTIAL + OTHER


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def load_source(name, crops_dirs, groups_path):
    """Reads one source's crops (one or more folders): (images uint8 N,S,S,3 RGB; labels; groups; crop names)."""
    groups = {}
    if groups_path:
        with open(groups_path) as f:
            next(f)
            for line in f:
                frame, source = line.rstrip("\n").split("\t")
                groups[frame] = source
    images, labels, group_ids, names = [], [], [], []
    for crops_dir in crops_dirs:
        with open(os.path.join(crops_dir, "dataset.tsv")) as f:
            next(f)
            for line in f:
                crop, source, label = line.rstrip("\n").split("\t")[:3]
                label = label.upper()
                label = ALIASES.get(label, label)
                if label not in CLASSES:
                    continue
                img = np.asarray(Image.open(os.path.join(crops_dir, crop)).convert("RGB"))
                images.append(img)
                labels.append(CLASSES.index(label))
                group_ids.append(name + ":" + (groups.get(source) or source))
                names.append(name + ":" + source)
    log(f"{name}: {len(images)} crops, {len(set(group_ids))} source photographs")
    return np.stack(images), np.array(labels), group_ids, names


def load_fields(crops_dirs):
    """The field colours of each crop of `load_source` (same order): fields.tsv, as `leuko segment --dataset` writes it
    beside dataset.tsv (Leuko.Core.Segmentation.FieldColours): per crop the background's and the red cells' median
    B, G, R and their pixel counts, as float (N, 8): whiteB, whiteG, whiteR, whitePixels, redB, redG, redR, redPixels."""
    rows = []
    for crops_dir in crops_dirs:
        fields = {}
        with open(os.path.join(crops_dir, "fields.tsv")) as f:
            next(f)
            for line in f:
                cols = line.rstrip("\n").split("\t")
                fields[cols[0]] = [float(v) for v in cols[1:9]]
        with open(os.path.join(crops_dir, "dataset.tsv")) as f:
            next(f)
            for line in f:
                crop, _, label = line.rstrip("\n").split("\t")[:3]
                if ALIASES.get(label.upper(), label.upper()) in CLASSES:
                    rows.append(fields[crop])
    return np.array(rows, dtype=np.float64)
