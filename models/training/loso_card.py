"""Writes the leave-one-source-out reports of train.py --hold-out into the shipped model card, as its
"leaveOneSourceOut" table: for each source, the accuracy of the same recipe trained without it and measured on all of it.

    python3 loso_card.py --card ../leukocyte-cnn.json --reports DIR    (DIR holds loso-SOURCE.json)
"""
import argparse
import glob
import json
import os


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
            "perClass": {c: v for c, v in r["heldOutAll"]["perClass"].items() if v["support"]},
            "seconds": r["seconds"],
        }
    if not table:
        raise SystemExit(f"loso_card: no loso-*.json in {args.reports}")
    card["leaveOneSourceOut"] = table
    with open(args.card, "w") as f:
        json.dump(card, f, indent=2)
    for name, row in table.items():
        print(f"{name}: accuracy {row['accuracy']:.4f} on {row['cells']} cells (trained classes {row['accuracyOnTrainedClasses']:.4f}); "
              f"review {row['review']}")


if __name__ == "__main__":
    main()
