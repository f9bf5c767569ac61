#!/usr/bin/env bash
# gpu_check.py on a GPU machine whose Python has torch with CUDA but not this project's other
# packages, and no network (this workplace's lent GPU machines: benchmarks/README.md, "GPU
# readiness: gpu_check.py"). Two halves, both run from the repository's root:
#
#   bash benchmarks/gpu_machine.sh wheels [PYTHON_VERSION]
#       here, where pip reaches a package index: the wheels of envs/gpu-image.txt for the GPU
#       machine's Python (3.12 unless given) and x86-64 Linux, into .whl/ (git ignores it; about
#       34 MB). A package published only as source is built into a wheel here.
#   bash benchmarks/gpu_machine.sh check [gpu_check.py's options]
#       there: installs .whl/ into a folder of its own put first on PYTHONPATH (the image's
#       packages stay as they are), puts this checkout's src/ on PYTHONPATH, runs
#       benchmarks/gpu_check.py (which builds the C++ library first) and writes all it prints to
#       $OUT/gpu_check.log ($OUT: the device tool's folder that comes back; ./gpu_check_out
#       elsewhere). Its exit status is gpu_check.py's.
#
# GPU_MACHINE_WHEELS (default .whl) and GPU_MACHINE_SITE (default /tmp/memristor-mat-site) name the
# two folders, PYTHON the interpreter (default python3: on those machines, the one with torch).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
python=${PYTHON:-python3}
wheels=${GPU_MACHINE_WHEELS:-.whl}

case "${1:-}" in
  wheels)
    version=${2:-3.12}
    rm -rf "$wheels"
    # --no-deps: the list is the whole closure beyond the image; without it pip would fetch numpy,
    # torch and the rest again. manylinux tags down to the oldest: pip matches each exactly
    platforms=()
    for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
               manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
      platforms+=(--platform "$tag")
    done
    "$python" -m pip download --quiet --no-deps --python-version "$version" --implementation cp \
      "${platforms[@]}" -d "$wheels" -r envs/gpu-image.txt
    for source in "$wheels"/*.tar.gz "$wheels"/*.zip; do
      [ -e "$source" ] || continue
      "$python" -m pip wheel --quiet --no-deps -w "$wheels" "$source"
      rm "$source"
    done
    count=$(ls "$wheels"/*.whl | wc -l)
    echo "$count wheels in $wheels/ ($(du -sh "$wheels" | cut -f1)) for Python $version:" \
         "name $wheels in the device tool's carry, then run: bash benchmarks/gpu_machine.sh check"
    ;;
  check)
    shift
    out=${OUT:-$here/gpu_check_out}
    site=${GPU_MACHINE_SITE:-/tmp/memristor-mat-site}
    mkdir -p "$out"
    if ! ls "$wheels"/*.whl > /dev/null 2>&1; then
      echo "no wheels in $wheels/: run 'bash benchmarks/gpu_machine.sh wheels' where pip reaches an" \
           "index, then carry $wheels" >&2
      exit 2
    fi
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site:$here/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    set +e
    {
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
      "$python" benchmarks/gpu_check.py "$@"
    } 2>&1 | tee "$out/gpu_check.log"
    status=${PIPESTATUS[0]}
    echo "log: $out/gpu_check.log"
    exit "$status"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_machine.sh wheels [PYTHON_VERSION] | check [gpu_check.py's options]" >&2
    exit 2
    ;;
esac
