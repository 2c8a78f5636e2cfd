"""Floating-point operations of one inference (one view, batch 1) of an ONNX model: 2 per multiply-add of every
Conv, Gemm and MatMul, the layers that hold nearly all of the work (activations, pooling and normalisation add well
under 1%). Shapes come from ONNX shape inference with the batch fixed at 1.

    /usr/bin/python3 models/training/flops.py models/leukocyte-cnn.onnx [--card models/leukocyte-cnn.json]

prints the figure and, with --card, writes it into the model card as "flopsPerView" (read by `leuko bench` to
report the classifier's achieved GFLOP/s).
"""
import argparse
import json

import numpy as np
import onnx
from onnx import shape_inference


def flops(path):
    model = onnx.load(path)
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]  # (out channels, in channels / groups, kh, kw)
            total += 2 * int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            trans_b = any(att.name == "transB" and att.i == 1 for att in node.attribute)
            n = b[-2] if trans_b else b[-1]
            k = a[-1]
            rows = int(np.prod(a[:-1]))
            total += 2 * rows * k * n
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--card", help="model card to write flopsPerView into")
    args = parser.parse_args()
    total = flops(args.model)
    print(f"{args.model}: {total} FLOP per view ({total / 1e9:.3f} GFLOP)")
    if args.card:
        with open(args.card) as f:
            card = json.load(f)
        card["flopsPerView"] = total
        with open(args.card, "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
