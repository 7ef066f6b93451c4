#!/usr/bin/env bash
# The GPU part of issue #12, in one call of a lent GPU machine (15 minutes a session, start-up
# included). Here first: scripts/gpu_wheels.sh (pydantic & co. and netspec's own wheel, into .whl/);
# then, through the device tool:
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=590)
# Each part has its own time limit, so one slow part cannot take the others' minutes; most
# wanted first:
#   smoke    scripts/gpu_smoke.py: the determinism table vs PyTorch on CUDA, both training loops
#            bit for bit (fp32, bf16-mixed, 16-mixed), the gallery trains with the defaults
#   train    python -m bench --gpu --only train: netspec train vs a plain loop on the GPU
#   memory   the training-memory estimate vs max_memory_allocated
#   modules  built vs hand-written modules, bf16 + channels_last (--quick)
# Back in $OUT (at most 8 files come back): check.log, gpu_smoke.json and each part's gpu*.json
# (`python -m bench --render FILE` writes its table here).
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/check.log") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    { echo "no wheels: run scripts/gpu_wheels.sh here and carry .whl"; exit 3; }
export PYTHONPATH="$PWD:/tmp/site" # this checkout's code; the wheels' metadata (entry points)
export PATH="/tmp/site/bin:$PATH"
nvidia-smi -L
python3 -c "import torch, pytorch_lightning as pl, PIL; print('torch', torch.__version__, 'lightning', pl.__version__, 'pillow', PIL.__version__)"

part() { # name, seconds, command...
    local name=$1 limit=$2 t0=$SECONDS
    shift 2
    echo "== $name (at most ${limit} s): $*"
    timeout --kill-after=10 "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - t0)) s"
}
part smoke 150 python3 scripts/gpu_smoke.py --out "$out"
part train 250 python3 -m bench --gpu --only train --out "$out/train"
part memory 60 python3 -m bench --gpu --only memory --out "$out/memory"
part modules 90 python3 -m bench --gpu --quick --only modules --out "$out/modules"
rm -f "$out"/*/*.md # the tables are in check.log; the JSON files render them again
