#!/usr/bin/env bash
# Seed throughput on a CUDA machine: run from the repo root; results land in benchmarks/results/
# (and in $OUT when set). Each configuration runs on its own so one failure does not hide the rest.
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
# vmap on CUDA runs fp32 (see engine/ensemble.py), so only the fp32 stacked ensemble is timed there.
python3 benchmarks/bench_training.py --model resnet18 --device cuda --images 5000 --epochs 2 --seeds 32 --block 16 \
    --strategies naive_fp32,bf16_channels_last,vmap_fp32 --tag cuda-resnet18 || echo "resnet18 run failed"
python3 benchmarks/bench_training.py --model resnet18 --device cuda --images 5000 --epochs 2 --seeds 32 --block 32 \
    --strategies vmap_fp32 --tag cuda-resnet18-block32 || echo "resnet18 block-32 run failed"
python3 benchmarks/bench_training.py --model small_cnn --device cuda --images 5000 --epochs 3 --seeds 64 --block 64 \
    --strategies naive_fp32,bf16_channels_last,vmap_fp32 --tag cuda-small_cnn || echo "small_cnn run failed"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/bench_training-cuda-*.json "$OUT"/ 2>/dev/null; fi
