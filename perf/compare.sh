#!/bin/sh
# Tide next to Open MPI in one run: the same collective, sizes and rank
# count; shared memory (default) or TCP only (--tcp). Prints each side's
# out-of-place busbw and 8-byte latency, and Tide's ratio per size. For
# broadcast, Tide's in-place figure: MPI_Bcast has one buffer, and Tide's
# out-of-place root copies its input to its output besides (tide_perf
# prints both).
#
#   perf/compare.sh [--tcp] [-np N] [-c allreduce|allgather|broadcast|barrier] [-e MAX] [-r REPEATS] [-n ITERS] [-W] [-R]
#
# -W: both sides rewrite their input before every iteration and time only
# the collective calls (tide_perf -W 1), as an application computing its
# input anew would see it.
# -R: Tide's buffers are Tide memory (tide_perf -R 1, tide_mem_alloc),
# which the direct algorithms read in place; Open MPI's stay malloc'd.
#
# Needs build/tiderun, build/tide_perf and build/mpi_coll_bench (built when
# mpicc is present) and mpirun.openmpi.
set -eu
cd "$(dirname "$0")/.."
np=2 coll=allreduce max=64M tcp=0 reps=1 iters=20 rewrite=0 tmem=0
while [ $# -gt 0 ]; do
  case $1 in
    --tcp) tcp=1 ;;
    -np) np=$2; shift ;;
    -c) coll=$2; shift ;;
    -e) max=$2; shift ;;
    -r) reps=$2; shift ;;
    -n) iters=$2; shift ;;
    -W) rewrite=1 ;;
    -R) tmem=1 ;;
    *) echo "usage: $0 [--tcp] [-np N] [-c COLL] [-e MAX] [-r REPEATS] [-n ITERS] [-W] [-R]" >&2; exit 2 ;;
  esac
  shift
done
if [ $tcp = 1 ]; then
  tide_env="TIDE_TRANSPORTS=tcp"
  mca="--mca btl tcp,self --mca btl_tcp_if_include lo"
  label="TCP only"
else
  tide_env="TIDE_TRANSPORTS=shm,tcp ${TIDE_ALGO:+TIDE_ALGO=$TIDE_ALGO}"
  mca="--mca btl vader,self"
  label="shared memory"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$reps"); do
  env $tide_env timeout -k 10 300 build/tiderun -n "$np" build/tide_perf "$coll" -e "$max" -n "$iters" -c 0 -W $rewrite -R $tmem \
      > "$out/tide.$i"
  timeout -k 10 300 mpirun.openmpi --allow-run-as-root --oversubscribe -np "$np" $mca \
      build/mpi_coll_bench "$coll" -e "$max" -n "$iters" -W $rewrite > "$out/mpi.$i"
done
[ $rewrite = 1 ] && label="$label, input rewritten every iteration"
[ $tmem = 1 ] && label="$label, Tide's buffers in Tide memory"
# Tide's busbw column: out of place (8), or in place (12) for broadcast
tcol=8 place="out-of-place"
[ "$coll" = broadcast ] && tcol=12 place="Tide in place, as MPI_Bcast"
echo "# $coll, $np ranks, $label: busbw GB/s ($place), median of $reps run(s) of $iters iterations; time in us at 8 B"
printf "# %10s %10s %10s %7s\n" "size(B)" "tide" "openmpi" "ratio"
# median per size of busbw (column 8) over the repeats; time (column 6) for the latency row
for f in tide mpi; do
  col=8
  [ $f = tide ] && col=$tcol
  cat "$out/$f".* | awk -v c=$col '/^ /{print $1, $6, $c}' | sort -n -k1,1 -k3,3 |
    awk '{v[$1]=v[$1] " " $3; t[$1]=t[$1] " " $2} END {for (s in v) print s, v[s] "|" t[s]}' |
    awk -F'|' '{n=split($1,a," "); m=split($2,b," "); \
      asort_n=0; for(i=2;i<=n;i++) x[i-1]=a[i]; k=n-1; \
      for(i=1;i<=k;i++) for(j=i+1;j<=k;j++) if (x[j]<x[i]) {y=x[i];x[i]=x[j];x[j]=y}; \
      for(i=1;i<=m;i++) z[i]=b[i]; for(i=1;i<=m;i++) for(j=i+1;j<=m;j++) if (z[j]<z[i]) {y=z[i];z[i]=z[j];z[j]=y}; \
      print a[1], x[int((k+1)/2)], z[int((m+1)/2)]}' | sort -n > "$out/$f.med"
done
join "$out/tide.med" "$out/mpi.med" | awk -v coll="$coll" '{r = $4 > 0 ? $2 / $4 : 0; \
  if ($1 == 8 || coll == "barrier") printf "  %10s %10s %10s %7s   latency: tide %s us, openmpi %s us\n", $1, $2, $4, sprintf("%.2f", r), $3, $5; \
  else printf "  %10s %10s %10s %7.2f\n", $1, $2, $4, r}'
