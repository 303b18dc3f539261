#!/usr/bin/env bash
# Runs omnigate's load harness: direct upstream vs bare reverse proxy vs
# omnigate, every mode, several runs, medians in the table. Everything runs on
# 127.0.0.1 and stops by itself. See docs/benchmarks.md.
#
#   scripts/bench.sh                 # full suite, defaults below
#   RUNS=5 DURATION=10s scripts/bench.sh
#   SOAK=3m scripts/bench.sh         # also run the soak (RSS / goroutine growth)
#   scripts/bench.sh --mode small    # extra flags go to `omnigate bench`
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
OUT=${OUT:-bench-result.json}
SOAK=${SOAK:-}
BIN=${BIN:-$(mktemp -d)/omnigate}

go build -o "$BIN" ./cmd/omnigate

pin=()
if [ "$(nproc)" -ge 2 ]; then
	pin=(--pin --server-cpus 0 --client-cpus 1)
fi

modes=all
if [ -n "$SOAK" ]; then
	modes=small,stream,payload,idle-streams,soak
fi

"$BIN" bench --mode "$modes" --runs "$RUNS" --duration "$DURATION" --soak "${SOAK:-3m}" \
	"${pin[@]}" --out "$OUT" "$@"
echo "result: $OUT"
