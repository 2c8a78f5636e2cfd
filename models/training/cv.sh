#!/usr/bin/env bash
# Grouped cross-validation of the shipped recipe: FOLDS trainings, each validating on one fold of each class's source
# photographs (Kaggle) or cells (PBC, DeepBioNet), so that every photograph is validated once, not the fifth of them one
# split holds (55 Kaggle photographs, 3 of them monocytes). Each fold's model is then measured end to end in C# on its
# own validation images (`leuko evaluate classification`, Kaggle also by photograph with --groups), and
# cv_summary.py pools the folds into one table (models/README.md, "Cross-validation").
#   models/training/cv.sh            # after train.sh has cut the crops (WORK/crops-SIZE)
# Settings by environment, as train.sh: DATA, SIZE, EPOCHS (20), WORK (out/training), PYTHON; FOLDS (5); ONLY (the
# folds to run, e.g. "1 2": default all); LEUKO (the leuko command: default `dotnet run` of this checkout's CLI).
# Cost: one training of the shipped recipe per fold (about 18 minutes each on two quiet cores), and 1-2 minutes of C#
# evaluation per fold.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=$(realpath "${DATA:-../shared/data}")
SIZE=${SIZE:-64}
EPOCHS=${EPOCHS:-20}
WORK=$(realpath -m "${WORK:-out/training}")
PYTHON=${PYTHON:-/usr/bin/python3}
FOLDS=${FOLDS:-5}
ONLY=${ONLY:-$(seq 1 "$FOLDS")}
C="$WORK/crops-$SIZE"
[ -f "$C/kaggle-train/dataset.tsv" ] || { echo "cv: no crops under $C: run models/training/train.sh first (or CROPS=1)" >&2; exit 1; }
if [ -z "${LEUKO:-}" ]; then
  dotnet build functions/Leuko.Cli -c Release --nologo -v quiet >&2
  LEUKO="dotnet functions/Leuko.Cli/bin/Release/net10.0/leuko.dll"
fi

common=(--source "kaggle=$C/kaggle-train" --groups "kaggle=$DATA/kaggle-train/groups.tsv"
        --source "pbc=$C/pbc-dev,$C/pbc-extra-dev" --source "deepbionet=$C/deepbionet")
for k in $ONLY; do
  out="$WORK/cv/fold$k"
  (cd models/training && "$PYTHON" train.py "${common[@]}" --weight kaggle=0.25 --weight pbc=1 --weight deepbionet=3 \
     --epochs "$EPOCHS" --fold "$k/$FOLDS" --out "$out")
  rm -rf "$out/validation"
  (cd models/training && "$PYTHON" validation_split.py "${common[@]}" --fold "$k/$FOLDS" --data "$DATA" --out "$out/validation")
  for s in kaggle pbc deepbionet; do
    groups=()
    [ "$s" = kaggle ] && groups=(--groups "$DATA/kaggle-train/groups.tsv")
    $LEUKO evaluate classification --model "$out/leukocyte-cnn.onnx" --data "$out/validation/$s" --json "${groups[@]}" > "$out/$s.json"
  done
done
"$PYTHON" models/training/cv_summary.py "$WORK/cv"
