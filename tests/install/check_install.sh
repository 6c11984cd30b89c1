#!/bin/sh
# Install the build into a scratch prefix, then build a consumer with the
# CMake package and with pkg-config, and run both.
# usage: check_install.sh SOURCE_DIR BUILD_DIR C_COMPILER
set -eu
src=$1 build=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
# CMake package
cmake -S "$src/tests/install/consumer" -B "$tmp/cm" -DCMAKE_C_COMPILER="$cc" \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64" "$tmp/cm/consumer"
# pkg-config
pcdir=$(dirname "$(find "$tmp/prefix" -name tide.pc)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-prefix --cflags --libs tide)
"$cc" -o "$tmp/pc_consumer" "$src/tests/install/consumer/consumer.c" $flags
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib64" "$tmp/pc_consumer"
# the shared library exports the public API and nothing else
libso=$(find "$tmp/prefix" -name 'libtide.so.*.*' | head -n1)
bad=$(nm -D --defined-only "$libso" | awk '{print $3}' | grep -v '^tide_' || true)
if [ -n "$bad" ]; then echo "non-API symbols exported: $bad"; exit 1; fi
echo "install check: OK"
