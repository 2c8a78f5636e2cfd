#!/usr/bin/python3
"""Compares two results.json files (leuko analyze's and leuko_reference.py's) cell by cell.

    /usr/bin/python3 compare.py A/results.json B/results.json [--list]

Images are matched by source path (give both programs the same input argument); within an image, cells by box (greedy, highest IoU first, IoU >= 0.5). Prints the
cells each found, how many matched, how many of those have the same class, the same needsReview and the same review
reason, the largest absolute difference of any probability, and each image's scale where they differ.
"""
import argparse
import json


def iou(a, b):
    ax1, ay1 = a["x"] + a["width"], a["y"] + a["height"]
    bx1, by1 = b["x"] + b["width"], b["y"] + b["height"]
    w = min(ax1, bx1) - max(a["x"], b["x"])
    h = min(ay1, by1) - max(a["y"], b["y"])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter)


def load(path):
    with open(path) as f:
        doc = json.load(f)
    return {im["source"]: im for im in doc["images"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a", help="results.json of leuko analyze")
    ap.add_argument("b", help="results.json of the reference")
    ap.add_argument("--list", action="store_true", help="list every disagreement")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    names = sorted(set(a) | set(b))
    cells_a = cells_b = matched = same_class = same_review = same_reason = 0
    exact_box = 0
    max_diff, max_diff_at = 0.0, None
    scale_differs, status_differs, only = [], [], []
    disagreements = []
    for name in names:
        if name not in a or name not in b:
            only.append(name)
            continue
        ia, ib = a[name], b[name]
        if ia["status"] != ib["status"]:
            status_differs.append((name, ia["status"], ib["status"]))
        sa, sb = ia.get("scale") or {}, ib.get("scale") or {}
        if sa.get("micronsPerPixel") != sb.get("micronsPerPixel") or sa.get("source") != sb.get("source"):
            scale_differs.append((name, sa, sb))
        ca, cb = ia["cells"], ib["cells"]
        cells_a += len(ca)
        cells_b += len(cb)
        pairs = sorted(((iou(x["box"], y["box"]), i, j) for i, x in enumerate(ca) for j, y in enumerate(cb)), reverse=True)
        used_a, used_b = set(), set()
        for overlap, i, j in pairs:
            if overlap < 0.5 or i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            x, y = ca[i], cb[j]
            matched += 1
            exact_box += x["box"] == y["box"]
            same_class += x["class"] == y["class"]
            same_review += x["needsReview"] == y["needsReview"]
            same_reason += x.get("reviewReason") == y.get("reviewReason")
            diff = max(abs(x["probabilities"][k] - y["probabilities"][k]) for k in x["probabilities"])
            if diff > max_diff:
                max_diff, max_diff_at = diff, (name, i)
            if x["class"] != y["class"] or x["needsReview"] != y["needsReview"] or x.get("reviewReason") != y.get("reviewReason"):
                disagreements.append(f"{name} cell {i}/{j}: {x['class']} {x['confidence']} {x.get('reviewReason')} vs "
                                     f"{y['class']} {y['confidence']} {y.get('reviewReason')} (IoU {overlap:.3f})")
        for i in set(range(len(ca))) - used_a:
            disagreements.append(f"{name}: only in A: cell {i} {ca[i]['box']} {ca[i]['class']}")
        for j in set(range(len(cb))) - used_b:
            disagreements.append(f"{name}: only in B: cell {j} {cb[j]['box']} {cb[j]['class']}")

    print(f"images: A {len(a)}, B {len(b)}, in one only {len(only)}, status differs {len(status_differs)}, scale differs {len(scale_differs)}")
    print(f"cells: A {cells_a}, B {cells_b}; matched (IoU >= 0.5) {matched}, identical box {exact_box}")
    print(f"same class {same_class}/{matched}, same needsReview {same_review}/{matched}, same reviewReason {same_reason}/{matched}")
    print(f"max abs probability difference {max_diff:.4f}" + (f" ({max_diff_at[0]} cell {max_diff_at[1]})" if max_diff_at else ""))
    if args.list:
        for name, sa, sb in scale_differs:
            print(f"scale {name}: {sa} vs {sb}")
        for s in status_differs:
            print("status", *s)
        for d in disagreements:
            print(d)
    elif disagreements:
        print(f"{len(disagreements)} disagreements (--list to show)")


if __name__ == "__main__":
    main()
