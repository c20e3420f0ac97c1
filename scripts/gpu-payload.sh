#!/usr/bin/env bash
# Pack what `bench/gpu.sh` needs on a lent GPU machine that has no Node, no npm and no network: the Node binary,
# the built package (dist/ and the bench build), the npm dependencies less the ones only lint/docs/WebGPU use, and
# ../shared. Everything lands in .gpu/ (ignored), about 60 MB, under the 64 MiB a device call carries.
#
#   bash scripts/gpu-payload.sh      # then, on the device machine, from the repo root:
#   bash scripts/gpu-run.sh          # unpacks .gpu/ and runs bench/gpu.sh with KILN_PREBUILT=1
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
npx tsc -p tsconfig.bench.json
rm -rf .gpu && mkdir .gpu
skip=(webgpu typescript prettier eslint @typescript-eslint typedoc @shikijs onnxruntime-web onnxruntime-common)
tar -cf - "${skip[@]/#/--exclude=node_modules/}" node_modules dist | xz -T2 -6 >.gpu/repo.tar.xz &
tar -C .. -cf - shared/conformance shared/models | xz -T2 -6 >.gpu/shared.tar.xz &
xz -T2 -6 -c "$(command -v node)" >.gpu/node.xz &
wait
du -ch .gpu/* | tail -1
