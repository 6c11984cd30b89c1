#!/bin/sh
# The RDMA tests (ctest label "rdma") on real soft-RoCE devices, inside the
# throwaway VM of shared/rdma-vm: two rails, rank 0 / even local ranks on
# side A's devices, odd ones on side B's. Runs them in the Release build
# (build/) and the ASan+UBSan build (build-asan/) that scripts/test.sh
# made. Skips, saying so, where shared/rdma-vm is not there.
set -eu
cd "$(dirname "$0")/.."
# RDMA_VM_DIR, else the shared/ beside this checkout, else the usual one
vm=""
for d in "${RDMA_VM_DIR:-}" ../shared/rdma-vm /work/shared/rdma-vm; do
  if [ -n "$d" ] && [ -x "$d/run" ]; then vm=$d; break; fi
done
if [ -z "$vm" ]; then
  echo "test-rdma: no shared/rdma-vm found (set RDMA_VM_DIR): RDMA tests NOT run"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo "$vm/setup"
for b in build build-asan; do
  [ -d "$b" ] || continue
  echo "== RDMA tests in the VM ($b) =="
  RDMA_VM_LINKS=2 RDMA_VM_TIMEOUT=2400 "$vm/run" sh -c \
    "cd $b && ASAN_OPTIONS=detect_leaks=1 ctest -L rdma --output-on-failure --timeout 1200"
done
