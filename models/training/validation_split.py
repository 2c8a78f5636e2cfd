"""Lays out the grouped validation split of train.py as class folders of links to the original frames, for
`leuko evaluate classification --data` (end to end in C#: segmentation, target cell, classifier).

    python3 validation_split.py --kaggle-crops C1 --kaggle-groups groups.tsv --pbc-crops C2 --data ../shared/data --out DIR

Recomputes the split exactly as train.py does (same function, seed and order). Kaggle frames of the validation
photographs that the segmenter could not crop are included: end to end they count as wrong.
"""
import argparse
import os
import random

import train


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kaggle-crops", required=True)
    ap.add_argument("--kaggle-groups", required=True)
    ap.add_argument("--pbc-crops", required=True)
    ap.add_argument("--data", required=True, help="folder holding kaggle-train/ and pbc-dev/")
    ap.add_argument("--out", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    chosen = {}
    for name, crops, groups in (("kaggle", args.kaggle_crops, args.kaggle_groups), ("pbc", args.pbc_crops, None)):
        _, labels, group_ids, names = train.load_source(name, crops, groups)
        _, val = train.grouped_split(labels, group_ids, args.val_fraction, rng)
        chosen[name] = {g for g, v in zip(group_ids, val) if v}

    links = 0
    with open(args.kaggle_groups) as f:
        next(f)
        for line in f:
            frame, photograph = line.rstrip("\n").split("\t")
            if "kaggle:" + photograph in chosen["kaggle"]:
                links += link(os.path.join(args.data, "kaggle-train", frame), os.path.join(args.out, "kaggle", frame))
    for group in chosen["pbc"]:
        frame = group.split(":", 1)[1]
        links += link(os.path.join(args.data, "pbc-dev", frame), os.path.join(args.out, "pbc", frame))
    print(f"{links} links under {args.out}/kaggle and {args.out}/pbc")


def link(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.symlink(os.path.abspath(source), target)
    return 1


if __name__ == "__main__":
    main()
