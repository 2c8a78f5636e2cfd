#!/usr/bin/python3
"""CPU milliseconds per image by stage of leuko_reference.py (process CPU time, the same calls as a run), for the
first N images of a folder, to set beside `leuko bench analyze`'s one-thread stage profile.

    /usr/bin/python3 profile_stages.py INPUT_FOLDER [--images 100] [--threads N]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cv2  # noqa: E402
import leuko_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    ap.add_argument("--model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "leukocyte-cnn.onnx"))
    args = ap.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    classifier = ref.Classifier(args.model)
    files = ref.inputs([args.input])[: args.images]
    files = files[:1] + files  # as leuko bench analyze's profile: the first image once for warm-up, then the first N
    clock = time.process_time
    totals = dict(read=0.0, decode=0.0, scale=0.0, segment=0.0, classify=0.0, annotate=0.0)
    cells = 0
    views_before = 0
    out = tempfile.mkdtemp()
    for n, (path, name) in enumerate(files):
        t0 = clock()
        with open(path, "rb") as f:
            data = f.read()
        t1 = clock()
        image, _ = ref.decode(data)
        t2 = clock()
        red, cut, by = ref.red_cell_masks(image)
        ref.estimate_scale(image, red, cut, by)
        ref.field_colours(image, red, cut)
        t3 = clock()
        found, _, field = ref.segment(image)  # repeats the scale estimate: subtracted below
        t4 = clock()
        classified = classifier.classify([c["crop"] for c in found], field)
        t5 = clock()
        drawn = ref.annotate(image, [dict(box=c["box"], contour=c["contour"], **{"class": l, "confidence": float(p.max()),
                                                                                  "needsReview": r is not None})
                                     for c, (l, p, r) in zip(found, classified)])
        ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 90])
        with open(os.path.join(out, "a.jpg"), "wb") as f:
            f.write(jpeg.tobytes())
        t6 = clock()
        if n == 0:
            views_before = classifier.views_run
            continue  # warm-up
        cells += len(found)
        totals["read"] += t1 - t0
        totals["decode"] += t2 - t1
        totals["scale"] += t3 - t2
        totals["segment"] += (t4 - t3) - (t3 - t2)
        totals["classify"] += t5 - t4
        totals["annotate"] += t6 - t5
    images = len(files) - 1
    per = {k: 1000 * v / images for k, v in totals.items()}
    views = classifier.views_run - views_before
    print(f"CPU ms per image by stage, {images} images ({cells} cells), cv2 threads {cv2.getNumThreads()}: "
          + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + f"; total {sum(per.values()):.2f}")
    print(f"  classify: {1000 * totals['classify'] / max(cells, 1):.2f} CPU ms per cell, {views / max(cells, 1):.2f} views each, "
          f"{1000 * totals['classify'] / max(views, 1):.2f} ms per view")


if __name__ == "__main__":
    main()
