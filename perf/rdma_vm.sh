#!/bin/sh
# RDMA WRITE throughput of Tide's engine next to ib_write_bw (perftest) on
# the same device pair, in one run inside shared/rdma-vm: rxe_a0 -> rxe_b0,
# 64 KiB messages. The VM is slow (soft-RoCE under emulation): compare the
# ratio, not the bandwidth.
#   usage (from the repository root, after a build in build/):
#     ../shared/rdma-vm/run perf/rdma_vm.sh [SIZE] [ROUNDS]
set -eu
size=${1:-65536}
rounds=${2:-3}
build=${BUILD:-build}
a=rxe_a0 b=rxe_b0 ip=10.10.0.2 gid=${RDMA_VM_GID_INDEX:-1}
echo "# rdma_vm: WRITE $size B, $a -> $b, $rounds rounds, each: ib_write_bw then tide_perf"
for r in $(seq "$rounds"); do
  ib_write_bw -d $b -x "$gid" -F -s "$size" -n 2000 >/dev/null 2>&1 &
  srv=$!
  sleep 1
  ib=$(ib_write_bw -d $a -x "$gid" -F -s "$size" -n 2000 $ip 2>/dev/null |
       awk -v s="$size" '$1 == s {print $4}')
  wait $srv || true
  # ib_write_bw prints MB/s (2^20 bytes); Tide prints GB/s (1e9 bytes)
  tide=$(TIDE_BOOTSTRAP_ADDR=127.0.0.1 TIDE_IB_DEVICES="$a;$b" \
         "$build/tiderun" -n 2 "$build/tide_perf" p2p -t rdma -b "$size" -e "$size" -N 64 -n 30 |
         awk -v s="$size" '$1 == s {print $3}')
  awk -v ib="$ib" -v t="$tide" -v r="$r" 'BEGIN {
    ibg = ib * 1048576 / 1e9;
    printf "round %d: ib_write_bw %.4f GB/s, tide %.4f GB/s, ratio %.2f\n", r, ibg, t, t / ibg }'
done
