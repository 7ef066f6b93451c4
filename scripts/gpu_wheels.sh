#!/usr/bin/env bash
# Here, before a GPU check: the wheels scripts/gpu_check.sh installs on the lent GPU machine, into
# .whl/ (git-ignored through .git/info/exclude; the device tool's `carry: [".whl"]` takes it along).
# That machine's image has torch, Lightning, torchmetrics, Pillow (with matplotlib), rich, PyYAML
# and pluggy, but not pydantic (nor its helpers), and it cannot reach a package index. The versions
# are this checkout's venv's (.venv), for the device's Python (GPU_PYTHON, default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
rm -rf .whl && mkdir .whl
pins=$("$python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in (
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
    "pillow",  # the image's may predate 10.1 (no scalable default font for the pictures)
)))
PY
)
platforms=()
for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
    --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl $pins
# netspec itself (and the blocks plugin) as wheels: their entry points register the built-in layers
"$python" -m pip wheel --quiet --no-deps --no-build-isolation -w .whl . plugins/netspec-blocks
ls -1 .whl
