"""Prints the model card's figures as the Markdown tables of models/README.md: grouped validation and review per
source, per-class recall, and the leave-one-source-out table.

    python3 card_tables.py ../leukocyte-cnn.json
"""
import json
import sys


def pct(v):
    return "n/a" if v is None else f"{v:.1%}"


def pct2(v):
    return "n/a" if v is None else f"{v:.2%}"


def main():
    card = json.load(open(sys.argv[1]))
    print("| source | cells | accuracy | macro recall | accepted (coverage) | accepted correct | other kinds silently in the five |")
    print("|---|---|---|---|---|---|---|")
    for name, m in card["validation"].items():
        r = card["validationReview"][name]
        print(f"| {name} | {m['samples']} | {m['accuracy']:.4f} | {m['macroRecall']:.4f} | {pct(r['coverage'])} | "
              f"{pct(r['acceptedAccuracy'])} | {pct(r['otherSilentlyInDifferential'])} |")
    print()
    classes = card["classes"]
    print("| source | " + " | ".join(c.lower() for c in classes) + " |")
    print("|---|" + "---|" * len(classes))
    for name, m in card["validation"].items():
        cells = []
        for c in classes:
            v = m["perClass"][c]
            cells.append(f"{v['recall']:.3f} ({v['support']})" if v["support"] else "")
        print(f"| {name} recall | " + " | ".join(cells) + " |")
    loso = card.get("leaveOneSourceOut")
    if loso:
        print()
        print("| left out | trained on | epochs (chosen) | cells | accuracy, with the prior correction | without it "
              "| on the classes trained | unfamiliar stain (crop check alone) | accepted (coverage) | accepted correct "
              "| without the stain checks: accepted, correct | without them and the distance bound: accepted, correct |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, r in loso.items():
            def pair(key):
                v = r.get(key)
                return f"{pct(v['coverage'])}, {pct(v['acceptedAccuracy'])}" if v else "n/a"
            epochs = f"{r['epochs']} ({r['chosenEpoch']})" if "epochs" in r else "n/a"
            without = r.get("accuracyWithoutPriorCorrection")
            print(f"| {name} | {', '.join(r['trainedOn'])} | {epochs} | {r['cells']} | **{r['accuracy']:.4f}** | "
                  f"{'n/a' if without is None else f'{without:.4f}'} | {r['accuracyOnTrainedClasses']:.4f} | "
                  f"{pct2(r.get('unfamiliarStain'))} ({pct(r.get('unfamiliarCropStain'))}) | "
                  f"{pct(r['review']['coverage'])} | {pct(r['review']['acceptedAccuracy'])} | "
                  f"{pair('reviewWithoutStain')} | {pair('reviewWithoutDistance')} |")

if __name__ == "__main__":
    main()
