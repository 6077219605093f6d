#!/usr/bin/env bash
# The faithfulness study of docs/study.md, exactly as committed: the bundled model and a second,
# different model (DeepLabV3+), on the three sample scenes with their building masks.
# Two streams run side by side (one core each); ~35 min on two free CPU cores.
#   bash docs/study/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
S="uv run segxai"
OUT=docs/study
M2=docs/study/models/deeplabv3plus_resnet10t.pt
METHODS=gradcam,gradcam++,xgradcam,hirescam,scorecam,ablationcam,eigencam,randomcam,rise,occlusion
CAMS=gradcam,gradcam++,xgradcam,hirescam,scorecam,ablationcam,eigencam
BLACKBOX="--rise-masks 250 --occlusion-window 32 --occlusion-stride 32"
TILES="--max-tiles 8"   # the first 8 of the 16 tiles of each scene: 24 tiles per model
mkdir -p "$OUT/model2" "$OUT/sanity"
(
  # all metrics at t = 0.5 and at the 5/10/20 % budgets, deletion/insertion curves, CIs, paired tests
  /usr/bin/time -f "evaluate: %e s wall, %U+%S s CPU" \
    $S evaluate sample_tiles --masks sample_tiles --method $METHODS $BLACKBOX $TILES --seed 0 \
      -o $OUT/evaluate.csv --overwrite -q
  # the same study on the second model
  /usr/bin/time -f "evaluate model 2: %e s wall, %U+%S s CPU" \
    $S evaluate sample_tiles --masks sample_tiles -m $M2 --method $METHODS $BLACKBOX $TILES --seed 0 \
      -o $OUT/model2/evaluate.csv --overwrite -q
) &
(
  # the parameter-randomisation sanity check (cascading + independent) on 2 tiles per scene
  /usr/bin/time -f "sanity: %e s wall, %U+%S s CPU" \
    $S evaluate sample_tiles --masks sample_tiles --method $CAMS --sanity --sanity-tiles 2 --max-tiles 2 \
      --curve-steps 0 --budget none --seed 0 -o $OUT/sanity/evaluate.csv --overwrite -q
  # seed 001's Tasks 1-3: thresholds 0.1…0.5, the final and the 2nd decoder block
  /usr/bin/time -f "sweep: %e s wall, %U+%S s CPU" \
    $S threshold-sweep sample_tiles --masks sample_tiles --method $CAMS,randomcam --layer decoder.last \
      --layer decoder.1 --curve-steps 0 $TILES --seed 0 -o $OUT/sweep.csv --overwrite -q
) &
wait
