#!/usr/bin/env bash
# Reproduces the bundled classifier, models/leukocyte-cnn.{onnx,json,parity.json}, from ../shared/data in one command:
#   models/training/train.sh
# 1. cuts the training crops with the C# segmenter (`leuko segment --dataset`), so training sees the served pixels;
# 2. trains and exports with models/training/train.py (CPU: Debian's PyTorch 1.13; GPU: PyTorch 2.x, used when present).
# Settings by environment: DATA (../shared/data), SIZE (64), EPOCHS (40), WORK (out/training), PYTHON (/usr/bin/python3),
# OUT (models). Cost: see models/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
SIZE=${SIZE:-64}
EPOCHS=${EPOCHS:-40}
WORK=${WORK:-out/training}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-models}
DATA=$(realpath "$DATA"); WORK=$(realpath -m "$WORK"); OUT=$(realpath -m "$OUT")

if ! "$PYTHON" -c "import torch, onnx, PIL" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision python3-onnx >/dev/null
  else
    echo "train: $PYTHON needs PyTorch, ONNX and Pillow: apt-get install python3-torch python3-torchvision python3-onnx" >&2
    exit 1
  fi
fi

for source in kaggle-train pbc-dev; do
  rm -rf "$WORK/crops-$SIZE/$source"
  dotnet run --project functions/Leuko.Cli -c Release -- segment --dataset "$DATA/$source" --out "$WORK/crops-$SIZE/$source" --size "$SIZE"
done

cd models/training
exec "$PYTHON" train.py \
  --kaggle "$WORK/crops-$SIZE/kaggle-train" --kaggle-groups "$DATA/kaggle-train/groups.tsv" \
  --pbc "$WORK/crops-$SIZE/pbc-dev" --epochs "$EPOCHS" --out "$OUT"
