#!/bin/sh
# The reduction kernels must be vectorised: compile coll_reduce_kern.c as
# the library does (-O3 -fno-trapping-math; at the x86-64 baseline, and
# with the AVX2 flags where the compiler has them) and count the kernel
# loops the compiler reports as vectorised. usage: check_simd.sh CC SOURCE_DIR
set -eu
cc=$1 src=$2
base="-std=c11 -D_GNU_SOURCE -O3 -fno-trapping-math -I$src/include -I$src/src/util -I$src/src/coll"
file=$src/src/coll/coll_reduce_kern.c
count() { # extra flags -> vectorised loops reported
  if $cc --version | grep -qi clang; then
    $cc $base "$@" -c "$file" -o /dev/null -Rpass=loop-vectorize 2>&1 | grep -c "vectorized loop" || true
  else
    $cc $base "$@" -c "$file" -o /dev/null -fopt-info-vec-optimized 2>&1 | grep -c "loop vectorized" || true
  fi
}
# 80 kernels (10 types x 4 ops, in place and three-operand); 64-bit
# integer min/max/prod have no SSE2 instructions, so at least 68 must
# vectorise at the baseline, and all 80 with AVX2.
n=$(count)
echo "vectorised loops in coll_reduce_kern.c (baseline): $n"
ok=1
[ "$n" -ge 68 ] || ok=0
case $(uname -m) in
x86_64)
  if $cc -mavx2 -mf16c -E -x c /dev/null >/dev/null 2>&1; then
    n=$(count -mavx2 -mf16c)
    echo "vectorised loops in coll_reduce_kern.c (avx2): $n"
    [ "$n" -ge 72 ] || ok=0 # fp16: 8 kernels use F16C intrinsics, not loops the compiler vectorises
    obj=$(mktemp)
    $cc $base -mavx2 -mf16c -c "$file" -o "$obj"
    f16c=$(objdump -d "$obj" | grep -c vcvtph2ps || true)
    rm -f "$obj"
    echo "F16C conversions in the avx2 fp16 kernels: $f16c"
    [ "$f16c" -ge 8 ] || ok=0
  fi
  ;;
esac
[ $ok = 1 ] && echo "simd check: OK"
