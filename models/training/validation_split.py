"""Lays out the grouped validation split of train.py as class folders of links to the original images, for
`leuko evaluate classification --data` (end to end in C#: segmentation as leuko analyze does it, target cell, classifier).

    python3 validation_split.py --source kaggle=C1 --groups kaggle=groups.tsv --source pbc=C2,C3 --source deepbionet=C4 \\
        --data ../shared/data --out DIR

Give the --source and --groups arguments exactly as train.sh gives them to train.py: the split is recomputed with the same
function, seed and order. Images of validation groups that the segmenter could not crop are included: end to end they
count as wrong. Writes DIR/SOURCE/CLASS/... for each source.
"""
import argparse
import os
import random

import numpy as np

import train


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", action="append", required=True)
    ap.add_argument("--groups", action="append")
    ap.add_argument("--data", required=True, help="folder holding the original images (kaggle-train/, pbc-dev/, ...)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--fold", help="K/N, as train.py --fold was given")
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()

    dirs = {k: v.split(",") for k, v in train.parse_pairs(args.source, "--source").items()}
    groups = train.parse_pairs(args.groups, "--groups")
    rng = random.Random(args.seed)
    links = 0
    for name, crop_dirs in dirs.items():
        _, labels, group_ids, _ = train.load_source(name, crop_dirs, groups.get(name))
        _, val = train.grouped_split(labels, group_ids, args.val_fraction, rng, train.parse_fold(args.fold))
        chosen = {g for g, v in zip(group_ids, val) if v}
        for crops in crop_dirs:
            # The dataset folder the crops were cut from: the crop folder's name (kaggle-train, pbc-dev, ...).
            original = os.path.join(args.data, os.path.basename(os.path.normpath(crops)))
            frames = []
            for table, column in (("dataset.tsv", 1), ("unsegmented.tsv", 0)):
                with open(os.path.join(crops, table)) as f:
                    next(f)
                    frames += [line.rstrip("\n").split("\t")[column] for line in f]
            photo = {}
            if name in groups:
                with open(groups[name]) as f:
                    next(f)
                    photo = dict(line.rstrip("\n").split("\t") for line in f)
            for frame in frames:
                if frame.split("/")[0] not in train.CLASSES:
                    continue
                if f"{name}:{photo.get(frame, frame)}" in chosen:
                    links += link(os.path.join(original, frame), os.path.join(args.out, name, frame))
    print(f"{links} links under {args.out}/" + "{" + ",".join(dirs) + "}")


def link(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.symlink(os.path.abspath(source), target)
    return 1


if __name__ == "__main__":
    main()
