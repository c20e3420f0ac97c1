#!/usr/bin/env bash
# On the lent GPU machine: unpack what scripts/gpu-payload.sh packed (carried as .gpu/) and run bench/gpu.sh.
# The log goes to $OUT/gpu.log when $OUT is set (the device tool's folder that comes back).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p /tmp/kiln-node && xz -dc .gpu/node.xz >/tmp/kiln-node/node && chmod +x /tmp/kiln-node/node
export PATH="/tmp/kiln-node:$PATH"
tar -xJf .gpu/repo.tar.xz
tar -xJf .gpu/shared.tar.xz -C ..
export KILN_PREBUILT=1 KILN_GPU_OUT=/tmp/kiln-gpu-out
mkdir -p "$KILN_GPU_OUT"
log="${OUT:-/tmp}/gpu.log"
bash bench/gpu.sh 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[ -n "${OUT:-}" ] && cp "$KILN_GPU_OUT"/conformance-cuda.txt "$OUT"/ 2>/dev/null
exit "$rc"
