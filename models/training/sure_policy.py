"""Gives an existing model the single-view policy that train.py now chooses itself, from the C# classifier's own outputs.

A card's `sureConfidence` keeps a cell's single view when its softmax top probability (temperature 1) is at least that,
and runs the 8 views (dihedral8) for the others. Here, as in train.py:

- the value is the lowest of train.SURE_GRID at which, on every validation source, each cell kept at one view has the
  class the 8 views give it;
- the temperature, minEvidence, maxDistance and the review threshold are then fitted again on what the policy serves
  (train.py's fit_temperature and review_rule, the same quantiles), so that accepted cells are at least 98% correct on
  each source's validation under the policy, not under the 8-view average it replaces.

Input: `leuko evaluate classification --data out/validation/SOURCE --cells SOURCE.tsv` for each source (the cells as
`leuko analyze` segments them, with the single view's and the 8-view mean's logits and distances and the stain distance).

    python3 sure_policy.py --card ../leukocyte-cnn.json --cells kaggle=kaggle.tsv --cells pbc=pbc.tsv --cells deepbionet=deepbionet.tsv [--write]
"""
import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

import train
from dataset import CLASSES


def read_cells(path):
    labels, stain, plain_d, tta_d, plain, tta = [], [], [], [], [], []
    with open(path) as f:
        header = next(f).rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            labels.append(CLASSES.index(row["label"]))
            stain.append(float(row["stainDistance"]) if row["stainDistance"] else 0.0)
            plain_d.append(float(row["plainDistance"]))
            tta_d.append(float(row["dihedralDistance"]))
            plain.append([float(v) for v in row["plainLogits"].split(",")])
            tta.append([float(v) for v in row["dihedralLogits"].split(",")])
    return (np.array(labels), np.array(stain), np.array(plain_d), np.array(tta_d),
            torch.tensor(plain, dtype=torch.float32), torch.tensor(tta, dtype=torch.float32))


def class_draws(card):
    """Cells of each class drawn per training epoch, from the card: each source's draws spread over its classes as its
    crops are (the training split keeps each class's share)."""
    draws = {c: 0.0 for c in CLASSES}
    for source, n in card["training"]["drawsPerEpoch"].items():
        data = card["training"]["data"][source]
        for c, count in data["perClass"].items():
            draws[c] += n * count / data["crops"]
    return draws


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", required=True)
    ap.add_argument("--cells", action="append", required=True, help="SOURCE=TSV written by leuko evaluate classification --cells")
    ap.add_argument("--review-accuracy", type=float, default=0.98)
    ap.add_argument("--evidence-quantile", type=float, default=0.02)
    ap.add_argument("--distance-quantile", type=float, default=0.05)
    ap.add_argument("--other-share", type=float, default=None,
                    help="also give the card the prior correction of the other kinds (train.logit_offsets) for this expected "
                         "share of each in a smear, from its training draws per class; 0: remove it; default: keep the card's")
    ap.add_argument("--write", action="store_true", help="write the policy and the refitted review rule into the card")
    args = ap.parse_args()
    card = json.load(open(args.card))
    if card.get("testTimeAugmentation") != "dihedral8":
        sys.exit("sure_policy: the model does not average 8 views; there is nothing to save")
    cells = {k: read_cells(v) for k, v in train.parse_pairs(args.cells, "--cells").items()}
    names = list(cells)
    plain = {n: cells[n][4] for n in names}
    tta = {n: cells[n][5] for n in names}
    offsets = card.get("logitOffsets")
    if args.other_share is not None:
        offsets = train.logit_offsets(class_draws(card), args.other_share) if args.other_share > 0 else None
    sure = train.choose_sure_confidence(plain, tta, offsets)
    if sure is None:
        sys.exit("sure_policy: no value keeps every validation cell's class; the model stays at 8 views")
    served, dist, single, five, tta_served = {}, {}, {}, {}, {}
    for n in names:
        m = train.sure_mask(plain[n], sure, offsets)
        single[n] = m.numpy()
        served[n], raw = train.corrected(torch.where(m[:, None], plain[n], tta[n]), offsets)
        tta_served[n], _ = train.corrected(tta[n], offsets)
        five[n] = raw < len(train.DIFFERENTIAL)
        dist[n] = np.where(single[n], cells[n][2], cells[n][3])
    labels = np.concatenate([cells[n][0] for n in names])
    sources = np.concatenate([[n] * len(cells[n][0]) for n in names])
    logits = torch.cat([served[n] for n in names])
    distance = np.concatenate([dist[n] for n in names])
    # eligible for acceptance: a familiar stain, and not an other kind without the prior correction (possible-other-cell)
    familiar = np.concatenate([(cells[n][1] <= 1) & five[n] for n in names])
    max_distance = round(max(float(np.quantile(dist[n], 1 - args.distance_quantile)) for n in names), 6)
    temperature = round(train.fit_temperature(logits, labels), 4)  # as the card stores it, so C# computes the same probabilities
    evidence = torch.logsumexp(logits, 1).numpy()
    min_evidence = round(float(np.quantile(evidence, args.evidence_quantile)), 6)
    probs = F.softmax(logits / temperature, dim=1)
    threshold, cuts = train.review_rule(probs, evidence, distance, familiar, labels, sources, args.review_accuracy, min_evidence, max_distance)
    review = {n: train.review_figures(probs[sources == n], evidence[sources == n], distance[sources == n], familiar[sources == n],
                                      labels[sources == n], threshold, min_evidence, max_distance) for n in names}
    before = {n: card["validationReview"].get(n) for n in names}
    share = {n: round(float(single[n].mean()), 4) for n in names}
    same = {n: bool((served[n].argmax(1) == tta_served[n].argmax(1)).all()) for n in names}
    accuracy = {n: round(float((served[n].argmax(1).numpy() == cells[n][0]).mean()), 4) for n in names}
    print(json.dumps({"sureConfidence": sure, "singleViewShare": share, "classesAsDihedral8": same, "logitOffsets": offsets, "accuracy": accuracy,
                      "softmaxTemperature": temperature, "reviewThreshold": threshold, "perSourceCuts": cuts,
                      "minEvidence": min_evidence, "maxDistance": max_distance,
                      "validationReview": review, "validationReviewBefore": before}, indent=2))
    if args.write:
        card["sureConfidence"] = sure
        card["singleViewShare"] = share
        card["output"]["softmaxTemperature"] = temperature
        card["reviewThreshold"] = threshold
        card["minEvidence"] = min_evidence
        card["maxDistance"] = max_distance
        card["validationReview"] = review
        if offsets:
            card["logitOffsets"] = offsets
            if args.other_share is not None:
                card["otherShare"] = args.other_share
        else:
            card.pop("logitOffsets", None)
            card.pop("otherShare", None)
        # The policy's prose: the rule as train.py wrote it, then what this refit chose and measured (replacing any earlier refit's).
        rule = card["reviewPolicy"].split(" The threshold is the largest")[0]
        if offsets and "prior correction" not in rule:
            rule = rule.rstrip(".") + (", or would not be without the prior correction of the other kinds (logitOffsets: ln(share "
                                       "expected in a smear / training share) added to each other kind's logit; possible-other-cell).")
        card["reviewPolicy"] = (
            f"{rule} The threshold is the largest of the per-source thresholds at which accepted validation cells are "
            f"{args.review_accuracy:.0%} correct: "
            + "; ".join(f"{n} {r['coverage']:.1%} accepted, {r['acceptedAccuracy']:.2%} of them correct" for n, r in review.items()
                        if r["acceptedAccuracy"] is not None)
            + f". A cell keeps its single view when that view's softmax top probability is at least sureConfidence {sure} (the "
              f"lowest at which every validation cell so kept has the class the 8 views give it), and gets the 8-view mean "
              f"otherwise; temperature and thresholds fitted on that (sure_policy.py, on the C# classifier's outputs for the "
              f"validation cells as leuko analyze segments them).")
        with open(args.card, "w") as f:
            json.dump(card, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
