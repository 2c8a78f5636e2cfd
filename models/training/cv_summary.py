"""Pools the folds of cv.sh into one table: each source's end-to-end accuracy over every image validated once, its
per-class recall, the review flag's coverage and accepted accuracy, and Kaggle's photographs right (a photograph is
right when most of its frames are), with exact (Clopper-Pearson) 95% intervals and the spread between folds.

    python3 cv_summary.py out/training/cv          # reads fold*/SOURCE.json (leuko evaluate classification --json)

Prints a Markdown table and writes cv.json beside the folds.
"""
import glob
import json
import os
import sys

from scipy.stats import beta


def interval(k, n):
    """The exact 95% interval of k successes in n."""
    if n == 0:
        return (0.0, 0.0)
    low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return (round(float(low), 4), round(float(high), 4))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    folds = sorted(glob.glob(os.path.join(root, "fold*")))
    if not folds:
        sys.exit(f"cv_summary: no fold* folders under {root}")
    summary = {"folds": [os.path.basename(f) for f in folds], "sources": {}}
    for source in ("kaggle", "pbc", "deepbionet"):
        runs = [json.load(open(p)) for p in (os.path.join(f, f"{source}.json") for f in folds) if os.path.exists(p)]
        if not runs:
            continue
        classes = runs[0]["classes"]
        confusion = [[sum(r["confusion"][i][j] for r in runs) for j in range(len(classes))] for i in range(len(classes))]
        samples = sum(r["samples"] for r in runs)
        correct = sum(confusion[i][i] for i in range(len(classes)))
        accepted = sum(round(r["coverage"] * r["samples"]) for r in runs)
        accepted_right = sum(round((r["acceptedAccuracy"] or 0) * round(r["coverage"] * r["samples"])) for r in runs)
        support = {c: sum(r["perClass"][c]["support"] for r in runs) for c in classes}
        recall = {c: round(confusion[i][i] / support[c], 4) for i, c in enumerate(classes) if support[c]}
        entry = {
            "folds": len(runs), "images": samples, "unsegmented": sum(r["unsegmented"] for r in runs),
            "accuracy": round(correct / samples, 4), "accuracyInterval95": interval(correct, samples),
            "foldAccuracies": [r["accuracy"] for r in runs],
            "coverage": round(accepted / samples, 4), "accepted": accepted,
            "acceptedAccuracy": round(accepted_right / accepted, 4) if accepted else None,
            "acceptedAccuracyInterval95": interval(accepted_right, accepted) if accepted else None,
            "foldAcceptedAccuracies": [r["acceptedAccuracy"] for r in runs],
            "recall": recall, "support": {c: n for c, n in support.items() if n},
        }
        others = sum(r["otherSamples"] for r in runs)
        if others:
            silent = sum(round((r["otherSilentlyInDifferential"] or 0) * r["otherSamples"]) for r in runs)
            entry["otherSilentlyInDifferential"] = round(silent / others, 4)
        groups = [r["groups"] for r in runs if r.get("groups")]
        if groups:
            count = sum(g["count"] for g in groups)
            right = sum(g["right"] for g in groups)
            per_class = {}
            for g in groups:
                for c, v in g["perClass"].items():
                    a, b = per_class.get(c, (0, 0))
                    per_class[c] = (a + v["right"], b + v["total"])
            entry["photographs"] = {"count": count, "right": right, "accuracy": round(right / count, 4),
                                    "interval95": interval(right, count), "foldAccuracies": [g["accuracy"] for g in groups],
                                    "perClass": {c: {"right": a, "total": b} for c, (a, b) in per_class.items()}}
        summary["sources"][source] = entry

    with open(os.path.join(root, "cv.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"| source | folds | images | accuracy (95% interval) | folds' accuracies | accepted (coverage) | accepted correct (95% interval) | by photograph |")
    print("|---|---|---|---|---|---|---|---|")
    for source, e in summary["sources"].items():
        photos = e.get("photographs")
        by_photo = (f"{photos['right']} of {photos['count']}, {photos['accuracy']:.4f} ({photos['interval95'][0]:.3f}-{photos['interval95'][1]:.3f})"
                    if photos else "n/a (each image its own cell)")
        accepted = (f"{e['acceptedAccuracy']:.2%} ({e['acceptedAccuracyInterval95'][0]:.1%}-{e['acceptedAccuracyInterval95'][1]:.1%})"
                    if e["accepted"] else "n/a")
        print(f"| {source} | {e['folds']} | {e['images']} | {e['accuracy']:.4f} ({e['accuracyInterval95'][0]:.3f}-{e['accuracyInterval95'][1]:.3f}) | "
              f"{', '.join(f'{a:.3f}' for a in e['foldAccuracies'])} | {e['coverage']:.1%} | {accepted} | {by_photo} |")
    for source, e in summary["sources"].items():
        print(f"{source} recall: " + ", ".join(f"{c.lower()} {r:.3f} ({e['support'][c]})" for c, r in e["recall"].items()))
        if "photographs" in e:
            print(f"{source} photographs right by class: " + ", ".join(
                f"{c.lower()} {v['right']}/{v['total']}" for c, v in e["photographs"]["perClass"].items()))
    print(f"wrote {os.path.join(root, 'cv.json')}")


if __name__ == "__main__":
    main()
