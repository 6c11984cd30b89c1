#!/bin/sh
# First README command: install dependencies, build Tide (Release, in
# build/), and run the main job on this machine: the allreduce benchmark
# on 4 local ranks through tiderun (8 B .. 64 MiB, every result checked).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
exec build/tiderun -n 4 --timeout 300 build/tide_perf allreduce -b 8 -e 64M
