"""Would adapting the batch-normalisation statistics to a new microscope help? (AdaBN, Li et al. 2016/2018)

An experiment on a leave-one-source-out run (`train.py --hold-out SOURCE` writes `loso-SOURCE.pt`): the held-out
source's cells are classified as the run's model classifies them (single view, the prior correction of the other
kinds), then again after the model's batch-normalisation means and variances are re-estimated from N of that
source's cells (no labels used: what a laboratory's first N cells would give), for several N. Nothing here is
shipped: it measures whether such an adaptation is worth building.

    /usr/bin/python3 adapt_probe.py --run ../../out/training-w18/loso-e20/loso-kaggle.pt \
        --crops ../../out/training-w18/crops-64/kaggle-train --cells 100 300 1000 all
"""
import argparse
import copy

import numpy as np
import torch

from dataset import CLASSES, load_source, log
from model import LeukocyteCnn
from train import corrected, metrics, normalise, predict, to_input


def adapt(model, images, mean, std, batch=256):
    """A copy of `model` whose batch-norm statistics are those of `images` (cumulative average over the batches)."""
    adapted = copy.deepcopy(model)
    for m in adapted.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch counts alike
    adapted.train()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, "cpu")
            adapted(normalise(x, mean, std))  # dropout is on in train mode, but outputs are not used: only the statistics
    return adapted.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="loso-SOURCE.pt of a train.py --hold-out run")
    ap.add_argument("--crops", required=True, nargs="+", help="the held-out source's crop folders (dataset.tsv)")
    ap.add_argument("--cells", nargs="+", default=["100", "300", "1000", "all"], help="cells to adapt on ('all': every one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(2)
    run = torch.load(args.run, map_location="cpu")
    model = LeukocyteCnn(len(CLASSES))
    model.load_state_dict(run["state"])
    model.eval()
    mean, std, offsets = run["mean"].cpu(), run["std"].cpu(), run["logitOffsets"]
    imgs, labels, _, _ = load_source("held-out", args.crops, None)

    def report(name, m):
        logits = predict(m, imgs, mean, std, "cpu")
        plain, fixed = metrics(logits, labels), metrics(corrected(logits, offsets)[0], labels)
        recall = {c: round(v["recall"], 3) for c, v in fixed["perClass"].items() if v["support"]}
        log(f"{name}: accuracy {fixed['accuracy']:.4f} with the prior correction ({plain['accuracy']:.4f} without); recall {recall}")

    report("as trained", model)
    rng = np.random.default_rng(args.seed)
    for n in args.cells:
        pick = np.arange(len(imgs)) if n == "all" else rng.choice(len(imgs), min(int(n), len(imgs)), replace=False)
        report(f"batch norm adapted on {len(pick)} cells", adapt(model, imgs[pick], mean, std))


if __name__ == "__main__":
    main()
