#!/usr/bin/env bash
# The demo, from a fresh Debian machine: installs what is missing, builds, and runs the SDK at work.
# (Until the control-plane demo lands, this runs the indexed label-query example.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh"
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFORMER_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target example_label_queries
build/demo/examples/label_queries "${1:-100000}"
