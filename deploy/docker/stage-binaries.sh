#!/bin/sh
# Copies the shipped binaries of a CMake build tree into OUT/bin, stripped. Debug information, when
# the build has any (RelWithDebInfo), goes to OUT/debug/<name>.debug with a debuglink in the
# binary, so `gdb` finds it when the file is put beside; a Release build has none to keep.
# Binaries the build tree lacks are skipped (the test server is only in trees with tests).
#   sh deploy/docker/stage-binaries.sh BUILD_DIR OUT_DIR
# POSIX sh: it runs in the Dockerfile's build stage as well as on the host.
set -eu
build=$1
out=$2
mkdir -p "$out/bin" "$out/debug"
for rel in worker/scenefarm-worker exporter/scenefarm-exporter exporter/libscenefarm-ssl-shim.so \
           cli/scenefarm tests/comfyui_server/scenefarm-comfyui-test-server; do
  src=$build/$rel
  [ -f "$src" ] || continue
  name=$(basename "$rel")
  cp "$src" "$out/bin/$name.tmp"
  if objdump -h "$out/bin/$name.tmp" | grep -q '\.debug_info'; then
    objcopy --only-keep-debug "$out/bin/$name.tmp" "$out/debug/$name.debug"
    strip --strip-unneeded "$out/bin/$name.tmp"
    (cd "$out/debug" && objcopy --add-gnu-debuglink="$name.debug" "../bin/$name.tmp")
  else
    strip --strip-unneeded "$out/bin/$name.tmp"
  fi
  mv "$out/bin/$name.tmp" "$out/bin/$name"
done
