#!/usr/bin/env bash
# Issue 19 on a CUDA machine: shadow_matching (prepared) against the strongest unprepared methods at
# N = 32, the half pool, and the shadow-based audit against the exact score. Default: the built-in
# dataset, identity_skewed:0.02, forget seeds 8, 9, 10 (no choice of any method's was made on them:
# benchmarks/results/tuning_log.md). FORGETS takes seeds of the forget set FORGET, or forget
# specs, e.g. a class forget on digits with a pool of class leave-outs:
#   DATASET=digits LEAVE_OUT=class SHADOWS=30 FORGETS="class:2 class:5 class:8" METHODS=shadow_matching,scramble_relearn \
#       NAME=gpu_digits bash benchmarks/gpu_prepared.sh
# Run from the repo root. Bench folders' leaderboards and reports come back packed in $OUT/runs.tgz
# after each forget set, so a run cut short still returns what it finished.
# Smaller (a CPU dry run): SEEDS=8 SHADOWS=16 FORGETS=8 EXTRA="--set train.epochs=2" OUT=/tmp/x bash benchmarks/gpu_prepared.sh
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
O=${OUT:-/tmp/gpu_prepared}; C=${CACHE:-/tmp/uk_cache}; R=${RUNS:-/tmp/uk_runs}
SEEDS=${SEEDS:-32}; SHADOWS=${SHADOWS:-32}; FORGETS=${FORGETS:-"8 9 10"}; EXTRA=${EXTRA:-}
DATASET=${DATASET:-synthetic}; LEAVE_OUT=${LEAVE_OUT:-0.125}; NAME=${NAME:-gpu_synthetic}; FORGET=${FORGET:-identity_skewed:0.02}
METHODS=${METHODS:-shadow_matching,scramble_relearn,salun,seif,kookmin}
mkdir -p "$O" "$R"
uk() { python3 -c 'import sys; from unlearnkit.cli import entry_point; sys.argv[0] = "unlearnkit"; sys.exit(entry_point())' "$@"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
start=$SECONDS
# shellcheck disable=SC2086
uk prepare --dataset "$DATASET" --shadows "$SHADOWS" --leave-out "$LEAVE_OUT" --cache-dir "$C" $EXTRA 2>&1 | tail -4
echo "pool: $((SECONDS - start)) s"
POOL=$(dirname "$(ls "$C"/pools/*/pool.json 2>/dev/null | head -1)")
[ -f "$POOL/pool.json" ] || { echo "no pool was prepared"; exit 1; }
cp "$POOL/pool.json" "$O/pool.json"
done_dirs=()
for f in $FORGETS; do
    case $f in
        *:*) forget=(--forget "$f"); tag=${f//[:,.]/_} ;;
        *) forget=(--forget "$FORGET" --set forget.seed="$f"); tag=f$f ;;
    esac
    # shellcheck disable=SC2086
    uk bench --dataset "$DATASET" "${forget[@]}" --seeds "$SEEDS" --methods "$METHODS" --cache-dir "$C" --out "$R/$tag" $EXTRA 2>&1 | tail -14
    # shellcheck disable=SC2086
    uk bench --dataset "$DATASET" "${forget[@]}" --seeds "$SEEDS" --methods shadow_matching --set method.shadow_matching.shadows=$((SHADOWS / 2)) \
        --cache-dir "$C" --out "$R/${tag}_half" $EXTRA 2>&1 | tail -6
    done_dirs+=("$R/$tag" "$R/${tag}_half")
    echo "forget $f done: $((SECONDS - start)) s"
    (cd "$R" && tar czf "$O/runs.tgz" --exclude=methods --exclude=units --exclude='*.npz' ./*)
done
python3 benchmarks/shadow_audit.py --pool "$POOL" --name "$NAME" "${done_dirs[@]}" | tail -30
cp benchmarks/results/shadow_audit-"$NAME".* "$O/" 2>/dev/null
echo "all: $((SECONDS - start)) s"
