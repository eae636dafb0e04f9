#!/usr/bin/env bash
# `make demo`: the whole mission on the embedded real samples, on a 2-core CPU in a few minutes.
#   1. plan a global grid and compute thematic-climatic descriptors (MODIS IGBP land cover, Köppen-Geiger);
#   2. sample it with the default strategy, with spatially blocked splits, and report its quality with plots;
#   3. build a manifest of the 6 real BigEarthNet S1/S2 pairs, train csmoe-tiny on it, embed and evaluate;
#   4. a tiny CSMoE-vs-CSMAE study: two tiny presets x two training sets, every downstream task.
set -euo pipefail
OUT="${1:-demo_out}"
BIN="$(dirname "$0")/../.venv/bin"
export PATH="$BIN:$PATH"
mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/7 global 100 km planning grid (UTM cells)"
csmoe-data grid --bbox -180,-56,180,84 --cell-size 100000 --out "$OUT/world_grid.parquet" --overwrite

step "2/7 descriptor pool: land cover (sample:modis-igbp) + climate (sample:koppen-rubel)"
csmoe-data build-manifest --footprints "$OUT/world_grid.parquet" \
  --landcover sample:modis-igbp --landcover-legend modis-igbp \
  --climate sample:koppen-rubel --climate-legend koppen-rubel \
  --workers 2 --out "$OUT/world_pool.parquet" --overwrite

step "3/7 thematic-climatic sample of 2% of the land pool, spatially blocked splits"
csmoe-data build-manifest --pool "$OUT/world_pool.parquet" --n 350 --seed 0 \
  --split train=0.8,val=0.1,test=0.1 --out "$OUT/world_sample.parquet" --overwrite
csmoe-data stats "$OUT/world_sample.parquet" --pool "$OUT/world_pool.parquet" \
  --json "$OUT/world_stats.json" --plots "$OUT/plots"

step "4/7 manifest of the 6 real BigEarthNet S1/S2 pairs, with land-cover masks cut onto their S2 grids"
csmoe-data build-manifest --footprints sample:bigearthnet \
  --landcover sample:modis-igbp --landcover-legend modis-igbp \
  --climate sample:koppen-rubel --climate-legend koppen-rubel \
  --split train=0.5,val=0.17,test=0.33 --masks-from-landcover \
  --out "$OUT/bigearthnet.parquet" --overwrite

step "5/7 train csmoe-tiny on the CPU for a few dozen steps"
csmoe train --manifest "$OUT/bigearthnet.parquet" --model csmoe-tiny --out "$OUT/run" \
  --max-steps 40 --batch-size 6 --lr 1e-3 --device cpu --seed 0 \
  --cache-dir "$OUT/cache" --overwrite
"$BIN/python" - "$OUT/run/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
picks = rows[:: max(1, len(rows) // 8)]
if picks[-1] is not rows[-1]:
    picks.append(rows[-1])
print("step  loss")
for r in picks:
    print(f"{int(r['step']):4d}  {float(r['loss']):.4f}")
print(f"loss fell from {float(rows[0]['loss']):.4f} to {float(rows[-1]['loss']):.4f}")
PY

step "6/7 embed each sensor alone and evaluate retrieval within and across sensors"
csmoe embed --run "$OUT/run" --manifest "$OUT/bigearthnet.parquet" --out "$OUT/embeddings.parquet" \
  --device cpu --overwrite
csmoe eval retrieval --embeddings "$OUT/embeddings.parquet" --labels-column labels19 --k 5 \
  --json "$OUT/retrieval.json" --plots "$OUT/plots"

step "7/7 study: csmae-tiny vs csmoe-tiny, pretrained on a thematic-climatic and a random set"
csmoe-data build-manifest --pool "$OUT/bigearthnet.parquet" --n 4 --seed 0 \
  --out "$OUT/thematic.parquet" --overwrite >/dev/null
csmoe-data build-manifest --pool "$OUT/bigearthnet.parquet" --n 4 --seed 0 --strategy random \
  --out "$OUT/random.parquet" --overwrite >/dev/null
rm -rf "$OUT/study"
csmoe study --manifest "$OUT/bigearthnet.parquet" --models csmae-tiny,csmoe-tiny \
  --train-sets "$OUT/thematic.parquet,$OUT/random.parquet" --budget 8 --batch-size 4 \
  --finetune-steps 4 --segment-steps 4 --k 5 --device cpu --cache-dir "$OUT/cache" --out "$OUT/study" \
  | sed -n '/^# Study/,$p'

step "done"
cat <<MSG
Outputs:
  pool manifest       $OUT/world_pool.parquet
  sampled manifest    $OUT/world_sample.parquet  (figures: $OUT/world_stats.json)
  plots               $OUT/plots/
  BigEarthNet manifest $OUT/bigearthnet.parquet
  training run        $OUT/run/  (metrics.csv, checkpoints/, model.safetensors)
  embeddings          $OUT/embeddings.parquet   (retrieval: $OUT/retrieval.json)
  study               $OUT/study/study.md, study.json, tradeoff.png
MSG
