"""Static int8 quantization of the classifier in ONNX Runtime's QDQ format, calibrated on real training crops.

ONNX Runtime has no Python package here, so this writes the QuantizeLinear/DequantizeLinear graph itself, in the shape
ORT's own `quantize_static(quant_format=QDQ, per_channel=True)` writes and its CPU graph optimiser fuses:

- weights int8, symmetric per output channel, zero point 0, in -64..64 by default (7 bits, ORT's `reduce_range`): on a
  CPU with AVX2 but no VNNI (this machine's AMD EPYC) ONNX Runtime's u8s8 kernels add pairs of u8 x s8 products in
  16 bits (VPMADDUBSW), which saturate with full-range weights; measured, `--weight-bits 8` (-127..127) moved the
  logits of PBC's validation cells by up to 6.2 (mean 0.57) and changed 86 of 875 classes (accuracy 0.9337 -> 0.8720),
  7 bits by up to 0.17 (mean 0.027) and 2 classes;
- activations uint8 per tensor, ranges from the float graph run on `--crops-per-source` training crops of each source
  (min/max, or a percentile with `--percentile`);
- each Conv's bias int32 at scale x_scale * w_scale, zero point 0;
- the Q after the Relu that follows a Conv, with zero point 0, so that ORT's ReluQuantFusion drops the Relu and its QDQ
  Conv selector fuses DQ-Conv-Q into QLinearConv; a Conv without a Relu (the first half of a factorised 3x3) gets an
  asymmetric Q of its own output; MaxPool keeps its input's scale and zero point (ORT then runs it on uint8);
- everything from the global average pool on (the `logits` head and the `distance` output) stays float: it is a few
  thousand multiply-adds, and the distance's whitening is what quantization would hurt.

The float graph is run by a small evaluator written with torch.nn.functional on the ONNX initializers (`run_graph`: the
graph's own nodes, in order). It is checked against the card's parity vectors (models/leukocyte-cnn.parity.json, the
PyTorch logits and distances ONNX Runtime is tested against in C#) before any range is trusted, and the same evaluator
runs the written QDQ graph (QuantizeLinear/DequantizeLinear as ONNX defines them), so the agreement printed at the end is
that of the file written, on training crops not used for calibration, not of a model of it. ONNX Runtime's integer
kernels agree with it to 1e-4 on the parity inputs with 7-bit weights (QuantizeScriptTests holds them to it); what
counts is `leuko evaluate classification --model OUT/leukocyte-cnn-int8.onnx` on the validation folders, and the review
rule is refitted on those outputs with sure_policy.py (models/README.md "int8 inference").

Crops are read and preprocessed exactly as LeukocyteClassifier.Preprocess does for a 64x64 crop (RGB, x/255, per-channel
mean and standard deviation from the card): the crops of `leuko segment --dataset --size 64` are already the model's size.

    cd models/training
    /usr/bin/python3 quantize.py --card ../leukocyte-cnn.json --parity ../leukocyte-cnn.parity.json \\
      --source kaggle=../../out/training-w18/crops-64/kaggle-train \\
      --source pbc=../../out/training-w18/crops-64/pbc-dev,../../out/training-w18/crops-64/pbc-extra-dev \\
      --source deepbionet=../../out/training-w18/crops-64/deepbionet --out ../../out/int8     # 10-20 s

writes OUT/leukocyte-cnn-int8.onnx, its card OUT/leukocyte-cnn-int8.json (the shipped card with `onnxFile`,
`onnxSha256` and `version` changed and a `quantization` section added) and OUT/leukocyte-cnn-int8.parity.json (the parity
inputs with the int8 graph's logits and distances, as this evaluator computes them); `--check-parity` only runs the
float evaluator's parity check.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from dataset import CLASSES

# The parity vectors hold PyTorch's outputs, and ONNX Runtime is held to 1e-3 of them in C#; the evaluator must do as well.
PARITY_TOLERANCE = 1e-3


def load_graph(path):
    model = onnx.load(path)
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    return model, inits


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b, a):
    pads = a.get("pads", [0, 0, 0, 0])
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError("asymmetric Conv padding is not supported")
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("grouped or dilated Conv is not supported")
    return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=(pads[0], pads[1]))


def _per_axis(v, x, axis):
    """A scale or zero point broadcast along `axis` of x (per tensor when it is a scalar)."""
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return v.reshape(shape)


def quantize_linear(x, scale, zero_point, axis=1):
    """ONNX QuantizeLinear: round half to even, saturate to the zero point's type."""
    info = torch.iinfo(zero_point.dtype)
    s, z = _per_axis(scale, x, axis), _per_axis(zero_point, x, axis)
    return torch.clamp(torch.round(x / s) + z.to(torch.float32), info.min, info.max)


def dequantize_linear(q, scale, zero_point, axis=1):
    s = _per_axis(scale, q, axis)
    z = torch.zeros(()) if zero_point is None else _per_axis(zero_point, q, axis).to(torch.float32)
    return (q.to(torch.float32) - z) * s


def run_graph(model, inits, x, keep=()):
    """Runs the graph's nodes in order on input x; returns (outputs by name, the tensors named in keep)."""
    env = dict(inits)
    env[model.graph.input[0].name] = x
    kept = {}
    for node in model.graph.node:
        i = [env[n] if n else None for n in node.input]
        a = _attrs(node)
        op = node.op_type
        if op == "Conv":
            y = _conv(i[0], i[1], i[2] if len(i) > 2 else None, a)
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "MaxPool":
            if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
                raise ValueError("padded or ceil-mode MaxPool is not supported")
            y = F.max_pool2d(i[0], tuple(a["kernel_shape"]), tuple(a["strides"]))
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], a.get("axis", 1))
        elif op == "Gemm":
            w = i[1].t() if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * (i[0] @ w) + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op == "Constant":
            y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Unsqueeze":
            y = i[0]
            for axis in sorted(int(v) for v in i[1].reshape(-1)):
                y = y.unsqueeze(axis)
        elif op == "Sub":
            y = i[0] - i[1]
        elif op == "Div":
            y = i[0] / i[1]
        elif op == "Pow":
            y = i[0] ** i[1]
        elif op == "ReduceSum":
            y = i[0].sum(dim=tuple(int(v) for v in i[1].reshape(-1)), keepdim=bool(a.get("keepdims", 1)))
        elif op == "ReduceMin":
            y = i[0].amin(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))
        elif op == "Shape":
            y = torch.tensor(list(i[0].shape), dtype=torch.int64)
        elif op == "Gather":
            y = torch.index_select(i[0], a.get("axis", 0), i[1].reshape(-1)).reshape(i[1].shape)
        elif op == "Cast":
            if a["to"] != TensorProto.FLOAT:
                raise ValueError("only Cast to float is supported")
            y = i[0].to(torch.float32)
        elif op == "QuantizeLinear":
            y = quantize_linear(i[0], i[1], i[2], a.get("axis", 1))
        elif op == "DequantizeLinear":
            y = dequantize_linear(i[0], i[1], i[2] if len(i) > 2 else None, a.get("axis", 1))
        else:
            raise ValueError(f"operator {op} is not supported by this evaluator")
        env[node.output[0]] = y
        if node.output[0] in keep:
            kept[node.output[0]] = y
    return {o.name: env[o.name] for o in model.graph.output}, kept


def check_parity(model, inits, parity_path):
    """The evaluator against the parity vectors: the largest absolute difference of logits and of distances."""
    p = json.load(open(parity_path))
    x = torch.tensor(p["inputs"], dtype=torch.float32).reshape(p["inputShape"])
    with torch.no_grad():
        out, _ = run_graph(model, inits, x)
    dl = float((out["logits"] - torch.tensor(p["logits"])).abs().max())
    dd = float((out["distance"] - torch.tensor(p["distance"])).abs().max())
    return dl, dd


def preprocess(paths, card):
    """LeukocyteClassifier.Preprocess for crops already at the model's size: RGB, scaled, normalised per channel, NCHW."""
    inp = card["input"]
    if inp.get("colourNormalisation") or inp["colourOrder"].upper() != "RGB":
        raise ValueError("only an RGB card without colour normalisation is supported")
    size = inp["width"]
    batch = np.empty((len(paths), 3, size, size), np.float32)
    mean = np.array(inp["mean"], np.float32)[:, None, None]
    std = np.array(inp["std"], np.float32)[:, None, None]
    for n, path in enumerate(paths):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        if rgb.shape[:2] != (size, size):
            raise ValueError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]}, not the model's {size}x{size} (crop with leuko segment --size {size})")
        batch[n] = ((rgb.transpose(2, 0, 1).astype(np.float32) * np.float32(inp["scale"])) - mean) / std
    return torch.from_numpy(batch)


def sample_crops(sources, per_source, seed):
    """Two disjoint random samples of per_source crops from each source (calibration, then agreement), and their labels."""
    rng = np.random.default_rng(seed)
    calibration, check = [], []
    for name, dirs in sources.items():
        rows = []
        for d in dirs:
            with open(os.path.join(d, "dataset.tsv")) as f:
                next(f)
                for line in f:
                    crop, _, label = line.rstrip("\n").split("\t")[:3]
                    if label.upper() in CLASSES:
                        rows.append((os.path.join(d, crop), CLASSES.index(label.upper()), name))
        order = rng.permutation(len(rows))
        calibration += [rows[k] for k in order[:per_source]]
        check += [rows[k] for k in order[per_source:2 * per_source]]
    return calibration, check


def conv_plan(model):
    """The tensors that get a Q/DQ pair, in graph order, each with how its range is chosen: 'relu' (zero point 0),
    'linear' (a Conv output that no Relu follows: asymmetric), 'same:X' (MaxPool: X's parameters), and the input."""
    consumers = {}
    for node in model.graph.node:
        for n in node.input:
            consumers.setdefault(n, []).append(node)
    plan = {model.graph.input[0].name: "linear"}
    for node in model.graph.node:
        out = node.output[0]
        after = consumers.get(out, [])
        if node.op_type == "Conv":
            if not (len(after) == 1 and after[0].op_type == "Relu"):
                plan[out] = "linear"
        elif node.op_type == "Relu":
            plan[out] = "relu"
        elif node.op_type == "MaxPool":
            plan[out] = "same:" + node.input[0]
    return plan


def calibrate(model, inits, x, plan, percentile, batch=50):
    lo, hi, values = {}, {}, {}
    names = [n for n, how in plan.items() if not how.startswith("same:")]
    with torch.no_grad():
        for k in range(0, len(x), batch):
            xb = x[k:k + batch]
            _, kept = run_graph(model, inits, xb, keep=set(names))
            kept[model.graph.input[0].name] = xb
            for n in names:
                t = kept[n]
                if percentile is None:
                    lo[n] = min(lo.get(n, 0.0), float(t.min()))
                    hi[n] = max(hi.get(n, 0.0), float(t.max()))
                else:
                    flat = t.reshape(-1)
                    step = max(1, flat.numel() // 200_000)  # a strided subsample keeps the quantile cheap
                    values.setdefault(n, []).append(flat[::step].clone())
    if percentile is not None:
        for n in names:
            v = torch.cat(values[n])
            lo[n] = min(0.0, float(torch.quantile(v, 1 - percentile / 100)))
            hi[n] = max(0.0, float(torch.quantile(v, percentile / 100)))
    params = {}
    for n, how in plan.items():
        if how.startswith("same:"):
            continue
        if how == "relu":
            scale, zp = max(hi[n], 1e-8) / 255, 0
        else:
            scale = max(hi[n] - lo[n], 1e-8) / 255
            zp = int(np.clip(round(-lo[n] / scale), 0, 255))
        params[n] = (np.float32(scale), np.uint8(zp))
    for n, how in plan.items():
        if how.startswith("same:"):
            params[n] = params[how[5:]]
    return params


def quantize_model(model, inits, params, weight_bits):
    """The QDQ model: quantized initializers with DequantizeLinear for weights and biases, Q/DQ pairs on the planned tensors."""
    qmax = 127 if weight_bits == 8 else 64
    g = model.graph
    new_inits = [t for t in g.initializer]
    used_by_conv = set()
    nodes = []
    dq_of = {}

    def scalar(name, value, dtype):
        new_inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def qdq(name):
        scale, zp = params[name]
        s = scalar(name + "_scale", scale, np.float32)
        z = scalar(name + "_zero_point", zp, np.uint8)
        nodes.append(helper.make_node("QuantizeLinear", [name, s, z], [name + "_quantized"], name=name + "_QuantizeLinear"))
        nodes.append(helper.make_node("DequantizeLinear", [name + "_quantized", s, z], [name + "_dequantized"], name=name + "_DequantizeLinear"))
        dq_of[name] = name + "_dequantized"

    input_name = g.input[0].name
    qdq(input_name)
    for node in g.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        if node.op_type == "Conv":
            x_scale = params[node.input[0]][0]
            w = inits[node.input[1]].numpy().astype(np.float64)
            w_scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(1), 1e-12) / qmax
            wq = np.clip(np.round(w / w_scale[:, None, None, None]), -qmax, qmax).astype(np.int8)
            wn = node.input[1]
            used_by_conv.add(wn)
            new_inits.append(numpy_helper.from_array(wq, wn + "_quantized"))
            new_inits.append(numpy_helper.from_array(w_scale.astype(np.float32), wn + "_scale"))
            new_inits.append(numpy_helper.from_array(np.zeros(w.shape[0], np.int8), wn + "_zero_point"))
            nodes.append(helper.make_node("DequantizeLinear", [wn + "_quantized", wn + "_scale", wn + "_zero_point"], [wn + "_dequantized"],
                                          name=wn + "_DequantizeLinear", axis=0))
            node.input[1] = wn + "_dequantized"
            if len(node.input) > 2 and node.input[2]:
                bn = node.input[2]
                used_by_conv.add(bn)
                b_scale = (np.float64(x_scale) * w_scale.astype(np.float32).astype(np.float64)).astype(np.float32)
                bq = np.round(inits[bn].numpy().astype(np.float64) / b_scale).astype(np.int32)
                new_inits.append(numpy_helper.from_array(bq, bn + "_quantized"))
                new_inits.append(numpy_helper.from_array(b_scale, bn + "_scale"))
                new_inits.append(numpy_helper.from_array(np.zeros(len(bq), np.int32), bn + "_zero_point"))
                nodes.append(helper.make_node("DequantizeLinear", [bn + "_quantized", bn + "_scale", bn + "_zero_point"], [bn + "_dequantized"],
                                              name=bn + "_DequantizeLinear", axis=0))
                node.input[2] = bn + "_dequantized"
        if node.input:
            node.input[0] = dq_of.get(node.input[0], node.input[0])
        nodes.append(node)
        if node.output[0] in params:
            qdq(node.output[0])
    kept_inits = [t for t in new_inits if t.name not in used_by_conv]
    graph = helper.make_graph(nodes, g.name + "_int8", list(g.input), list(g.output), kept_inits)
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="leuko quantize.py")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def agreement(model, inits, qmodel, qinits, x, labels, batch=100):
    with torch.no_grad():
        outs = [(run_graph(model, inits, x[k:k + batch])[0], run_graph(qmodel, qinits, x[k:k + batch])[0]) for k in range(0, len(x), batch)]
    fl = torch.cat([o[0]["logits"] for o in outs])
    ql = torch.cat([o[1]["logits"] for o in outs])
    fd = torch.cat([o[0]["distance"] for o in outs])
    qd = torch.cat([o[1]["distance"] for o in outs])
    labels = torch.tensor(labels)
    return {
        "crops": len(x),
        "sameClass": round(float((fl.argmax(1) == ql.argmax(1)).float().mean()), 4),
        "floatAccuracy": round(float((fl.argmax(1) == labels).float().mean()), 4),
        "int8Accuracy": round(float((ql.argmax(1) == labels).float().mean()), 4),
        "maxLogitDifference": round(float((fl - ql).abs().max()), 4),
        "meanLogitDifference": round(float((fl - ql).abs().mean()), 4),
        "maxTopProbabilityDifference": round(float((F.softmax(fl, 1).max(1).values - F.softmax(ql, 1).max(1).values).abs().max()), 4),
        "medianDistanceRatio": round(float((qd / fd).median()), 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", required=True)
    ap.add_argument("--parity", required=True)
    ap.add_argument("--source", action="append", default=[], help="NAME=DIR[,DIR]: crops of leuko segment --dataset --size 64")
    ap.add_argument("--crops-per-source", type=int, default=100, help="calibration crops per source (as many again check the result)")
    ap.add_argument("--percentile", type=float, default=None, help="activation range at this percentile (e.g. 99.99) instead of min/max")
    ap.add_argument("--weight-bits", type=int, choices=[7, 8], default=7, help="8 only where the CPU has VNNI (see above)")
    ap.add_argument("--seed", type=int, default=20240501)
    ap.add_argument("--out", help="folder for leukocyte-cnn-int8.onnx and its card")
    ap.add_argument("--name", default="leukocyte-cnn-int8")
    ap.add_argument("--check-parity", action="store_true", help="only check the float evaluator against the parity vectors")
    args = ap.parse_args()
    card = json.load(open(args.card))
    model_path = os.path.join(os.path.dirname(os.path.abspath(args.card)), card["onnxFile"])
    model, inits = load_graph(model_path)
    dl, dd = check_parity(model, inits, args.parity)
    print(json.dumps({"parity": {"maxLogitDifference": dl, "maxDistanceDifference": dd, "tolerance": PARITY_TOLERANCE}}))
    if dl > PARITY_TOLERANCE or dd > PARITY_TOLERANCE:
        print("quantize: the float evaluator does not reproduce the parity vectors; no range would be trustworthy", file=sys.stderr)
        return 1
    if args.check_parity:
        return 0
    if not args.source or not args.out:
        ap.error("--source and --out are needed to quantize")
    sources = {}
    for pair in args.source:
        name, dirs = pair.split("=", 1)
        sources[name] = dirs.split(",")
    calibration, check = sample_crops(sources, args.crops_per_source, args.seed)
    plan = conv_plan(model)
    params = calibrate(model, inits, preprocess([c[0] for c in calibration], card), plan, args.percentile)
    qmodel = quantize_model(model, inits, params, args.weight_bits)
    qinits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in qmodel.graph.initializer}
    report = agreement(model, inits, qmodel, qinits, preprocess([c[0] for c in check], card), [c[1] for c in check])
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    onnx.save(qmodel, onnx_path)
    digest = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    qcard = dict(card)
    qcard["onnxFile"] = args.name + ".onnx"
    qcard["onnxSha256"] = digest
    qcard["version"] = card["version"] + "-int8"
    qcard["quantization"] = {
        "format": "QDQ (ONNX Runtime fuses it into QLinearConv)",
        "from": {"onnxFile": card["onnxFile"], "onnxSha256": card["onnxSha256"]},
        "weights": f"int8 symmetric per output channel, -{127 if args.weight_bits == 8 else 64}..{127 if args.weight_bits == 8 else 64}",
        "activations": "uint8 per tensor, " + ("min/max" if args.percentile is None else f"{args.percentile} percentile"),
        "calibration": {n: args.crops_per_source for n in sources},
        "float": "from the global average pool on: logits head and distance",
        "agreementOnTrainingCrops": report,
    }
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(qcard, f, indent=2)
    # What the written graph computes on the parity inputs, by the ONNX definition of its operators: ONNX Runtime's
    # integer kernels are held to it (QuantizeScriptTests), as the float model's are to PyTorch's.
    parity = json.load(open(args.parity))
    with torch.no_grad():
        out, _ = run_graph(qmodel, qinits, torch.tensor(parity["inputs"], dtype=torch.float32).reshape(parity["inputShape"]))
    with open(os.path.join(args.out, args.name + ".parity.json"), "w") as f:
        json.dump({"inputShape": parity["inputShape"], "inputs": parity["inputs"], "logits": out["logits"].tolist(),
                   "distance": out["distance"].tolist()}, f)
    print(json.dumps({"onnx": os.path.abspath(onnx_path), "sha256": digest, "agreement": report,
                      "ranges": {n: [float(s), int(z)] for n, (s, z) in params.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
