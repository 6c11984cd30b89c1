#!/bin/sh
# Second README command: the whole test suite, twice: a Release build with
# gcc (build/) and an ASan+UBSan build with clang that also runs the
# fuzzer briefly (build-asan/); then the RDMA tests of both builds inside
# shared/rdma-vm. Exits non-zero if anything fails.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== Release build (gcc) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc
cmake --build build
(cd build && ctest --output-on-failure -j "$jobs")

echo "== ASan+UBSan build (clang), with the fuzzer =="
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Asan -DCMAKE_C_COMPILER=clang \
      -DTIDE_BUILD_FUZZ=ON
cmake --build build-asan
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs")

# RDMA on soft-RoCE devices inside a VM (shared/rdma-vm), both builds.
scripts/test-rdma.sh
