#!/usr/bin/env bash
# Reproduces the bundled classifier, models/leukocyte-cnn.{onnx,json,parity.json}, from ../shared/data in one command:
#   models/training/train.sh
# 1. cuts the training crops with the C# segmenter (`leuko segment --dataset`: the largest leukocyte of each image, a
#    18 µm window at the image's estimated scale, SegmentationOptions.CropWindow), so training sees the served pixels;
# 2. trains the shipped model on every source (grouped validation within each source) and exports it;
# 3. leave-one-source-out: trains the same recipe once per source without it and measures it on that source;
# 4. writes the leave-one-source-out table into the model card (models/training/loso_card.py).
# Settings by environment: DATA (../shared/data), SIZE (64), EPOCHS (20), LOSO_EPOCHS (EPOCHS: the shipped card's
# leave-one-source-out runs are the shipped recipe's length; 10 halves the study's time), WORK (out/training),
# PYTHON (/usr/bin/python3), OUT (models), CROPS (1: cut the crops; 0: reuse WORK's), LOSO (1: run step 3),
# COLOUR (none; white-dark-od: every crop's lamp and stain mapped onto one reference before the model, models/README.md;
# white-od-gain: the same with one gain for the three channels; macenko: Macenko's stain normalisation; both Python
# only, tried and not kept).
# Cost: see models/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
SIZE=${SIZE:-64}
EPOCHS=${EPOCHS:-20}
LOSO_EPOCHS=${LOSO_EPOCHS:-$EPOCHS}
WORK=${WORK:-out/training}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${OUT:-models}
CROPS=${CROPS:-1}
LOSO=${LOSO:-1}
COLOUR=${COLOUR:-none}
DATA=$(realpath "$DATA"); WORK=$(realpath -m "$WORK"); OUT=$(realpath -m "$OUT")

if ! "$PYTHON" -c "import torch, onnx, PIL" 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-torchvision python3-onnx >/dev/null
  else
    echo "train: $PYTHON needs PyTorch, ONNX and Pillow: apt-get install python3-torch python3-torchvision python3-onnx" >&2
    exit 1
  fi
fi

C="$WORK/crops-$SIZE"
if [ "$CROPS" = 1 ]; then
  dotnet build functions/Leuko.Cli -c Release --nologo -v quiet >&2
  for source in kaggle-train pbc-dev pbc-extra-dev deepbionet; do
    rm -rf "${C:?}/$source"
    dotnet run --no-build --project functions/Leuko.Cli -c Release -- segment --dataset "$DATA/$source" --out "$C/$source" --size "$SIZE"
  done
fi

# Kaggle frames are ~35 augmentations of each photograph: a quarter of them a epoch is plenty; DeepBioNet is small.
common=(--source "kaggle=$C/kaggle-train" --groups "kaggle=$DATA/kaggle-train/groups.tsv"
        --source "pbc=$C/pbc-dev,$C/pbc-extra-dev" --source "deepbionet=$C/deepbionet"
        --weight kaggle=0.25 --weight pbc=1 --weight deepbionet=3 --colour-normalisation "$COLOUR")
cd models/training
"$PYTHON" train.py "${common[@]}" --epochs "$EPOCHS" --out "$OUT"
if [ "$LOSO" = 1 ]; then
  for held in kaggle pbc deepbionet; do
    "$PYTHON" train.py "${common[@]}" --epochs "$LOSO_EPOCHS" --hold-out "$held" --out "$WORK/loso"
  done
  "$PYTHON" loso_card.py --card "$OUT/leukocyte-cnn.json" --reports "$WORK/loso"
fi
