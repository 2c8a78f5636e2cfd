"""Train the leukocyte classifier on segmented crops and export it to ONNX with its model card.

Input: crop folders written by `leuko segment --dataset DIR --out OUT --size N` (dataset.tsv beside the crops),
so that training sees exactly the pixels the C# pipeline feeds the model. Validation is split by source photograph
(Kaggle frames: groups.tsv; PBC: each image is its own cell), stratified by class, never at random.

Runs on CPU with Debian's PyTorch 1.13 and on a GPU with PyTorch 2.x. Everything random is seeded.
"""
import argparse
import hashlib
import inspect
import json
import math
import os
import random
import sys
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model import LeukocyteCnn, layer_counts

CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def load_source(name, crops_dir, groups_path):
    """Reads one source's crops: (images uint8 N,S,S,3 RGB; labels; groups; crop names)."""
    groups = {}
    if groups_path:
        with open(groups_path) as f:
            next(f)
            for line in f:
                frame, source = line.rstrip("\n").split("\t")
                groups[frame] = source
    images, labels, group_ids, names = [], [], [], []
    with open(os.path.join(crops_dir, "dataset.tsv")) as f:
        next(f)
        for line in f:
            crop, source, label, _ = line.rstrip("\n").split("\t")
            label = label.upper()
            if label not in CLASSES:
                continue
            img = np.asarray(Image.open(os.path.join(crops_dir, crop)).convert("RGB"))
            images.append(img)
            labels.append(CLASSES.index(label))
            group_ids.append(name + ":" + (groups.get(source) or source))
            names.append(name + ":" + source)
    log(f"{name}: {len(images)} crops, {len(set(group_ids))} source photographs")
    return np.stack(images), np.array(labels), group_ids, names


def grouped_split(labels, groups, fraction, rng):
    """Validation = `fraction` of each class's source photographs (at least 2), drawn with `rng`."""
    by_class = defaultdict(set)
    for y, g in zip(labels, groups):
        by_class[y].add(g)
    val_groups = set()
    for y in sorted(by_class):
        gs = sorted(by_class[y])
        rng.shuffle(gs)
        val_groups.update(gs[: max(2, round(len(gs) * fraction))])
    val = np.array([g in val_groups for g in groups])
    return ~val, val


def augment(x, gen):
    """The paper's augmentations on a float batch in [0,1] (N,3,S,S): flips, 90-degree rotations, random shear,
    brightness and contrast."""
    n = x.shape[0]
    dev = x.device
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.to(dev)[:, None, None, None], x.flip(3), x)
    # Shear (and a little scale) by an affine grid; borders replicate the edge (background colour of the crop).
    shear = (torch.rand(n, 2, generator=gen) - 0.5) * 0.4
    scale = 1 + (torch.rand(n, generator=gen) - 0.5) * 0.2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 0, 1] = shear[:, 0]
    theta[:, 1, 0] = shear[:, 1]
    theta[:, 1, 1] = scale
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    brightness = ((torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.3).to(dev)
    contrast = (1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4).to(dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
    return x


def to_input(batch_uint8, mean, std, device):
    x = torch.from_numpy(batch_uint8).to(device).permute(0, 3, 1, 2).float() / 255.0
    return x, (mean, std)


def normalise(x, mean, std):
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def predict(model, images, mean, std, device, batch=256):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            out.append(model(normalise(x, mean, std)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, len(CLASSES))


DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


def predict_tta(model, images, mean, std, device, batch=128):
    """Mean logits over the 8 symmetries of the square (4 rotations, with and without a flip): a cell has no
    preferred orientation on the slide, so the model's answer should not have one either."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, _ = to_input(images[i : i + batch], mean, std, device)
            x = normalise(x, mean, std)
            views = [torch.rot90(x.flip(3) if flip else x, k, dims=(2, 3)) for k, flip in DIHEDRAL]
            out.append(torch.stack([model(v).float() for v in views]).mean(0).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(CLASSES))


def metrics(logits, labels):
    pred = logits.argmax(1).numpy()
    labels = np.asarray(labels)
    per_class = {}
    for c, name in enumerate(CLASSES):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        per_class[name] = {"precision": round(p, 4), "recall": round(r, 4),
                           "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0, "support": int((labels == c).sum())}
    acc = float((pred == labels).mean()) if len(labels) else 0.0
    present = [v for v in per_class.values() if v["support"] > 0]
    return {"samples": int(len(labels)), "accuracy": round(acc, 4),
            "macroPrecision": round(float(np.mean([v["precision"] for v in present])), 4) if present else 0.0,
            "macroRecall": round(float(np.mean([v["recall"] for v in present])), 4) if present else 0.0,
            "perClass": per_class}


def fit_temperature(logits, labels):
    """Temperature scaling (Guo et al. 2017): one scalar minimising validation NLL."""
    t = torch.ones(1, requires_grad=True)
    y = torch.as_tensor(labels)
    opt = torch.optim.LBFGS([t], lr=0.05, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / t.clamp(min=0.05), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(t.detach().clamp(min=0.05))


def review_threshold(probs, labels, target):
    """Smallest top-probability threshold whose accepted cells are at least `target` accurate on validation."""
    top, pred = probs.max(1)
    correct = (pred.numpy() == np.asarray(labels))
    order = np.argsort(-top.numpy())
    best = 1.0
    for cut in np.unique(top.numpy())[::-1]:
        accepted = top.numpy() >= cut
        if correct[accepted].mean() >= target:
            best = float(cut)
    accepted = top.numpy() >= best
    return best, float(accepted.mean()), float(correct[accepted].mean()) if accepted.any() else 0.0


def sha256_of(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kaggle", required=True, help="crops of the Kaggle frames (leuko segment --dataset)")
    ap.add_argument("--kaggle-groups", required=True, help="groups.tsv: each frame's source photograph")
    ap.add_argument("--pbc", required=True, help="crops of the PBC cells (leuko segment --dataset)")
    ap.add_argument("--out", required=True, help="folder for the .onnx, model card and parity vectors")
    ap.add_argument("--name", default="leukocyte-cnn")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--kaggle-per-epoch", type=float, default=0.4,
                    help="fraction of the Kaggle frames drawn each epoch: they are ~35 augmentations of each photograph")
    ap.add_argument("--pbc-weight", type=float, default=2.0, help="PBC cells drawn per epoch, as a multiple of their count")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--review-accuracy", type=float, default=0.98,
                    help="cells below the review threshold are flagged; above it validation accuracy is at least this")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ema", type=float, default=0.997,
                    help="decay of the exponential moving average of the weights (and batch-norm statistics) that is "
                         "validated and exported; 0 turns it off")
    ap.add_argument("--keep-checkpoint", action="store_true", help="also save the chosen weights as NAME.checkpoint.pt")
    args = ap.parse_args()

    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log(f"torch {torch.__version__} on {device}, {args.threads} threads")

    sources = {}
    for name, crops, groups in (("kaggle", args.kaggle, args.kaggle_groups), ("pbc", args.pbc, None)):
        sources[name] = load_source(name, crops, groups)
    size = sources["kaggle"][0].shape[1]
    assert all(s[0].shape[1:] == (size, size, 3) for s in sources.values()), "all crops must have one size"

    rng = random.Random(args.seed)
    split = {}
    for name, (imgs, labels, groups, _) in sources.items():
        train, val = grouped_split(labels, groups, args.val_fraction, rng)
        split[name] = (train, val)
        log(f"{name}: train {train.sum()} crops / {len(set(np.array(groups)[train]))} photographs, "
            f"validation {val.sum()} / {len(set(np.array(groups)[val]))}")

    train_imgs = {n: sources[n][0][split[n][0]] for n in sources}
    train_labels = {n: sources[n][1][split[n][0]] for n in sources}
    all_train = np.concatenate(list(train_imgs.values()))
    mean = torch.tensor(all_train.reshape(-1, 3).mean(0) / 255.0, dtype=torch.float32, device=device)
    std = torch.tensor(all_train.reshape(-1, 3).std(0) / 255.0, dtype=torch.float32, device=device)
    log(f"input {size}x{size} RGB, mean {mean.tolist()}, std {std.tolist()}")

    model = LeukocyteCnn(len(CLASSES)).to(device)
    counts = layer_counts(model)
    assert counts == {"conv": 11, "batchNorm": 8, "relu": 8, "dropout": 4}, counts
    per_epoch = int(len(train_imgs["kaggle"]) * args.kaggle_per_epoch) + int(len(train_imgs["pbc"]) * args.pbc_weight)
    steps = args.epochs * math.ceil(per_epoch / args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    # The weights are averaged over recent steps (Polyak averaging): the averaged model is what is validated, chosen
    # and exported. Single-step weights swing by several points of grouped validation from epoch to epoch.
    ema = None
    if args.ema > 0:
        def ema_step(avg, new, n):
            # The decay warms up with the step count (as in timm's ModelEmaV2), so the random initial weights do not
            # linger in the average for the first epochs.
            d = min(args.ema, (1 + float(n)) / (10 + float(n)))
            return d * avg + (1 - d) * new

        ema = torch.optim.swa_utils.AveragedModel(model, use_buffers=True, avg_fn=ema_step)
    gen = torch.Generator().manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)

    val = {n: (sources[n][0][split[n][1]], sources[n][1][split[n][1]], np.array(sources[n][2])[split[n][1]]) for n in sources}
    best = None
    history = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        k_idx = np_rng.choice(len(train_imgs["kaggle"]), int(len(train_imgs["kaggle"]) * args.kaggle_per_epoch), replace=False)
        p_idx = np_rng.choice(len(train_imgs["pbc"]), int(len(train_imgs["pbc"]) * args.pbc_weight),
                              replace=args.pbc_weight > 1)
        imgs = np.concatenate([train_imgs["kaggle"][k_idx], train_imgs["pbc"][p_idx]])
        labels = np.concatenate([train_labels["kaggle"][k_idx], train_labels["pbc"][p_idx]])
        order = np_rng.permutation(len(imgs))
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch):
            b = order[i : i + args.batch]
            x, _ = to_input(imgs[b], mean, std, device)
            x = normalise(augment(x, gen), mean, std)
            y = torch.from_numpy(labels[b]).to(device)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            total += float(loss) * len(b)
            seen += len(b)
        served = ema.module if ema is not None else model
        scores = {n: metrics(predict(served, val[n][0], mean, std, device), val[n][1]) for n in sources}
        # Selection score: the weaker of the two sources' accuracy, then their mean (grouped validation only).
        score = (min(s["accuracy"] for s in scores.values()), np.mean([s["accuracy"] for s in scores.values()]))
        history.append({"epoch": epoch, "loss": round(total / seen, 4),
                        **{f"{n}Accuracy": s["accuracy"] for n, s in scores.items()},
                        "kaggleMacroPrecision": scores["kaggle"]["macroPrecision"]})
        log(f"epoch {epoch}/{args.epochs} loss {total / seen:.4f} "
            + " ".join(f"{n} acc {s['accuracy']:.4f} prec {s['macroPrecision']:.4f}" for n, s in scores.items())
            + f" ({time.time() - t0:.0f}s, {seen / (time.time() - t0):.0f} crops/s)")
        if best is None or score > best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in served.state_dict().items()})

    score, best_epoch, state = best
    model.load_state_dict(state)
    log(f"chose epoch {best_epoch} on grouped validation: {score}")
    os.makedirs(args.out, exist_ok=True)
    torch.save({"state": state, "mean": mean.cpu(), "std": std.cpu(), "epoch": best_epoch},
               os.path.join(args.out, args.name + ".checkpoint.pt") if args.keep_checkpoint else os.devnull)

    # Test-time augmentation is kept only if it helps on the grouped validation.
    plain = {n: predict(model, val[n][0], mean, std, device) for n in sources}
    tta = {n: predict_tta(model, val[n][0], mean, std, device) for n in sources}
    def selection(logits):
        acc = [metrics(logits[n], val[n][1])["accuracy"] for n in sources]
        return (min(acc), float(np.mean(acc)))
    use_tta = selection(tta) > selection(plain)
    log(f"validation without test-time augmentation {selection(plain)}, with {selection(tta)}: "
        f"{'dihedral8' if use_tta else 'none'}")
    val_logits = tta if use_tta else plain
    all_logits = torch.cat(list(val_logits.values()))
    all_labels = np.concatenate([val[n][1] for n in sources])
    temperature = fit_temperature(all_logits, all_labels)
    probs = F.softmax(all_logits / temperature, dim=1)
    threshold, coverage, accepted_acc = review_threshold(probs, all_labels, args.review_accuracy)
    log(f"temperature {temperature:.3f}; review below {threshold:.3f}: {1 - coverage:.1%} of validation cells flagged, "
        f"accuracy of the rest {accepted_acc:.4f}")

    # Errors by source photograph: where the mistakes sit.
    errors = defaultdict(lambda: [0, 0])
    pred = val_logits["kaggle"].argmax(1).numpy()
    for g, y, p in zip(val["kaggle"][2], val["kaggle"][1], pred):
        errors[g][1] += 1
        errors[g][0] += int(y != p)
    wrong_sources = sorted(((g, e, n) for g, (e, n) in errors.items() if e), key=lambda t: -t[1])
    for g, e, n in wrong_sources:
        log(f"  kaggle validation photograph {g}: {e}/{n} frames wrong")

    model.eval().cpu()
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    dummy = torch.zeros(1, 3, size, size)
    export_args = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        export_args["dynamo"] = False  # PyTorch 2.x: the TorchScript exporter, as on 1.13, for the same graph
    torch.onnx.export(model, dummy, onnx_path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13, **export_args)

    # Parity vectors: normalised inputs (validation crops of each class and one random tensor) with PyTorch's logits.
    parity_inputs = []
    for c in range(len(CLASSES)):
        idx = np.where(val["pbc"][1] == c)[0][:1].tolist() + np.where(val["kaggle"][1] == c)[0][:1].tolist()
        for src, i in [("pbc", j) for j in idx[:1]] + [("kaggle", j) for j in idx[1:]]:
            x, _ = to_input(val[src][0][i : i + 1], mean.cpu(), std.cpu(), "cpu")
            parity_inputs.append(normalise(x, mean.cpu(), std.cpu()))
    parity_inputs.append(torch.randn(1, 3, size, size, generator=gen))
    px = torch.cat(parity_inputs)
    with torch.no_grad():
        plogits = model(px)
    with open(os.path.join(args.out, args.name + ".parity.json"), "w") as f:
        json.dump({"inputShape": list(px.shape), "inputs": px.flatten().tolist(), "logits": plogits.tolist()}, f)

    crop_files = []
    for d in (args.kaggle, args.pbc):
        crop_files.append(os.path.join(d, "dataset.tsv"))
        with open(os.path.join(d, "dataset.tsv")) as f:
            next(f)
            crop_files += [os.path.join(d, line.split("\t")[0]) for line in f]
    with open(onnx_path, "rb") as f:
        onnx_sha = hashlib.sha256(f.read()).hexdigest()

    card = {
        "name": args.name,
        "version": time.strftime("%Y.%m.%d") + f"-e{best_epoch}",
        "onnxFile": os.path.basename(onnx_path),
        "onnxSha256": onnx_sha,
        "classes": CLASSES,
        "input": {"name": "input", "layout": "NCHW", "width": size, "height": size, "colourOrder": "RGB",
                  "scale": 1 / 255.0, "mean": [round(v, 6) for v in mean.tolist()], "std": [round(v, 6) for v in std.tolist()],
                  "resize": "square crop from the segmenter, resized with Crops.Resize (area when shrinking, bilinear when enlarging)"},
        "output": {"name": "logits", "softmaxTemperature": round(temperature, 4)},
        "testTimeAugmentation": "dihedral8" if use_tta else "none",
        "reviewThreshold": round(threshold, 4),
        "reviewPolicy": f"needsReview when the calibrated top probability is below reviewThreshold: on validation, "
                        f"{1 - coverage:.1%} of cells flagged, the rest {accepted_acc:.2%} accurate",
        "architecture": {
            "summary": "Anand et al. 2024 CNN: 4 conv blocks (32, 64, 128, 256 filters), 11 conv, 8 batch-norm, 8 ReLU, "
                       "4 dropout; blocks 3-4 use factorised 3x1+1x3 convolutions; global average pooling and a linear head",
            "layers": counts, "filters": list(LeukocyteCnn.FILTERS), "parameters": sum(p.numel() for p in model.parameters())},
        "training": {
            "data": {"kaggle": {"crops": int(len(sources['kaggle'][1])), "photographs": len(set(sources['kaggle'][2]))},
                     "pbc": {"crops": int(len(sources['pbc'][1]))},
                     "sha256": sha256_of(crop_files)},
            "cropsFrom": "leuko segment --dataset DIR --out OUT --size N (largest leukocyte of each frame)",
            "split": f"grouped by source photograph, {args.val_fraction:.0%} of each class's photographs for validation, seed {args.seed}",
            "augmentations": "90-degree rotations, flips, shear +-0.2 and scale +-10%, brightness +-0.15, contrast +-20%",
            "epochs": args.epochs, "chosenEpoch": best_epoch, "batch": args.batch, "learningRate": args.lr,
            "kagglePerEpoch": args.kaggle_per_epoch, "pbcWeight": args.pbc_weight, "weightAverageDecay": args.ema,
            "seed": args.seed,
            "device": str(device), "torch": torch.__version__, "threads": args.threads,
            "seconds": round(time.time() - started),
            "history": history},
        "validation": {n: metrics(val_logits[n], val[n][1]) for n in sources},
        "validationPhotographs": {n: sorted(set(val[n][2].tolist())) for n in sources if n == "kaggle"},
        "validationKaggleErrorsByPhotograph": [{"photograph": g, "wrong": e, "frames": n} for g, e, n in wrong_sources],
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
    log(f"wrote {onnx_path} and its model card in {time.time() - started:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
