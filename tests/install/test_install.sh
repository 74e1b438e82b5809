#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs an outside program against it with
# nothing but `pkg-config --cflags --libs reactor`: the headers, the library and reactor.pc must be
# enough, and no public header may pull in libevent.
set -euo pipefail
build_dir="$1"
source_dir="$2"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

meson install --no-rebuild -C "$build_dir" --destdir "$scratch/root" --quiet >/dev/null
pc="$(find "$scratch/root" -name reactor.pc | head -1)"
[ -n "$pc" ] || { echo "reactor.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"
prefix="$(pkg-config --variable=prefix reactor)"
# The copy lives under the scratch root, not at its configured prefix.
flags="$(pkg-config --define-variable=prefix="$scratch/root$prefix" --cflags --libs reactor)"

if grep -rl "event2/" "$(dirname "$(find "$scratch/root" -name reactor.hpp | head -1)")"; then
  echo "a public header includes libevent"; exit 1
fi

c++ -std=c++20 -Wall -Wextra -Werror "$source_dir/examples/embed_echo.cpp" $flags -o "$scratch/embed_echo"
libdir="$(pkg-config --define-variable=prefix="$scratch/root$prefix" --variable=libdir reactor)"
# It links and starts: --help is not supported, so run it with a bound port check instead.
LD_LIBRARY_PATH="$libdir" timeout 5 "$scratch/embed_echo" > "$scratch/out" 2>&1 &
pid=$!
for _ in $(seq 50); do
  grep -q "listening on\|cannot listen" "$scratch/out" 2>/dev/null && break
  sleep 0.1
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
grep -q "listening on 127.0.0.1:7002" "$scratch/out" || grep -q "cannot listen" "$scratch/out" || {
  echo "outside program did not start:"; cat "$scratch/out"; exit 1; }
echo "installed copy: built and ran an outside program with pkg-config reactor"
