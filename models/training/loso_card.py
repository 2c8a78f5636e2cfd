"""Writes the leave-one-source-out reports of train.py --hold-out into the shipped model card, as its
"leaveOneSourceOut" table: for each source, the accuracy of the same recipe trained without it and measured on all of it.
With the card's prior correction of the other kinds (logitOffsets, otherShare): a report train.py made with it has both
accuracies; for an older one they are computed from its loso-SOURCE.cells.tsv (the served logits per class), with the
offsets of its own training draws (the card's draws per epoch of the sources it was trained on).

    python3 loso_card.py --card ../leukocyte-cnn.json --reports DIR    (DIR holds loso-SOURCE.json)
"""
import argparse
import glob
import json
import os

import numpy as np
import torch

import train
from dataset import CLASSES


def corrected_accuracy(card, report, cells_path):
    """(accuracy with the prior correction, without, per-class recall with) from a report's cells, or None."""
    if not card.get("logitOffsets") or not os.path.exists(cells_path):
        return None
    with open(cells_path) as f:
        header = next(f).rstrip("\n").split("\t")
        if f"logit:{CLASSES[0]}" not in header:
            return None
        rows = [line.rstrip("\n").split("\t") for line in f]
    logits = torch.tensor([[float(r[header.index(f"logit:{c}")]) for c in CLASSES] for r in rows])
    labels = np.array([CLASSES.index(r[header.index("label")]) for r in rows])
    draws = {c: 0.0 for c in CLASSES}
    for source in report["trainedOn"]:
        data, n = card["training"]["data"][source], card["training"]["drawsPerEpoch"][source]
        for c, count in data["perClass"].items():
            draws[c] += n * count / data["crops"]
    offsets = train.logit_offsets(draws, card["otherShare"])
    fixed, raw = train.corrected(logits, offsets)
    pred = fixed.argmax(1).numpy()
    recall = {c: round(float((pred[labels == i] == i).mean()), 4) for i, c in enumerate(CLASSES) if (labels == i).any()}
    trained = np.isin(labels, [CLASSES.index(c) for c in report["classesTrained"]])
    return (round(float((pred == labels).mean()), 4), round(float((raw == labels).mean()), 4), recall, offsets,
            round(float((pred[trained] == labels[trained]).mean()), 4) if trained.any() else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--card", required=True)
    ap.add_argument("--reports", required=True)
    args = ap.parse_args()
    with open(args.card) as f:
        card = json.load(f)
    table = {}
    for path in sorted(glob.glob(os.path.join(args.reports, "loso-*.json"))):
        with open(path) as f:
            r = json.load(f)
        table[r["heldOut"]] = {
            "trainedOn": r["trainedOn"],
            "cells": r["heldOutAll"]["samples"],
            "accuracy": r["heldOutAll"]["accuracy"],
            "macroRecall": r["heldOutAll"]["macroRecall"],
            "accuracyOnTrainedClasses": r["heldOutTrainedClasses"]["accuracy"],
            "classesPresent": r["classesPresent"],
            "classesTrained": r["classesTrained"],
            "review": r["heldOutReview"],
            **({"reviewWithoutDistance": r["heldOutReviewWithoutDistance"], "flaggedAsAtypical": r["heldOutFlaggedAsAtypical"]}
               if "heldOutReviewWithoutDistance" in r else {}),
            **({"reviewWithoutStain": r["heldOutReviewWithoutStain"], "unfamiliarStain": r["heldOutUnfamiliarStain"]}
               if "heldOutReviewWithoutStain" in r else {}),
            **({"unfamiliarCropStain": r["heldOutUnfamiliarCropStain"]} if "heldOutUnfamiliarCropStain" in r else {}),
            "epochs": len(r["history"]), "chosenEpoch": r["chosenEpoch"],
            "perClass": {c: v for c, v in r["heldOutAll"]["perClass"].items() if v["support"]},
            "seconds": r["seconds"],
        }
        if "heldOutAllUncorrected" in r:
            table[r["heldOut"]]["accuracyWithoutPriorCorrection"] = r["heldOutAllUncorrected"]["accuracy"]
        elif (fixed := corrected_accuracy(card, r, path.replace(".json", ".cells.tsv"))) is not None:
            # a report from before the prior correction: its accuracy is the uncorrected one
            table[r["heldOut"]].update({"accuracy": fixed[0], "accuracyWithoutPriorCorrection": fixed[1], "accuracyOnTrainedClasses": fixed[4],
                                        "recallWithPriorCorrection": fixed[2], "logitOffsets": fixed[3]})
    if not table:
        raise SystemExit(f"loso_card: no loso-*.json in {args.reports}")
    card["leaveOneSourceOut"] = table
    with open(args.card, "w") as f:
        json.dump(card, f, indent=2)
    for name, row in table.items():
        print(f"{name}: accuracy {row['accuracy']:.4f} (without the prior correction {row.get('accuracyWithoutPriorCorrection')}) on {row['cells']} "
              f"cells (trained classes {row['accuracyOnTrainedClasses']:.4f}); "
              f"review {row['review']}")


if __name__ == "__main__":
    main()
