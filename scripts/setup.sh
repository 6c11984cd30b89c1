#!/bin/sh
# First README command: install dependencies, build Tide (Release, in
# build/), and run the main job on this machine: 4 local ranks through
# tiderun.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
exec build/tiderun -n 4 --timeout 120 build/tide_smoke
