#!/usr/bin/env bash
# The two install paths of the README, as a user takes them:
#
#  1. `cargo build --release`, then GST_PLUGIN_PATH=$PWD/target/release:
#     gst-inspect-1.0 finds mjpegsrc and mjpegsink in target/release.
#  2. `meson setup <tmp>/build --prefix=<tmp>/prefix`, `meson compile`,
#     `meson install`: libgstmjpeg.so lands in <prefix>/<libdir>/gstreamer-1.0
#     and, with GST_PLUGIN_PATH pointing there, gst-inspect-1.0 finds both
#     elements in the installed file; `meson test --list` has the suite.
#
# meson reuses ./target (-Dcargo-target-dir) so the release build of step 1
# is not repeated; MESON_FRESH=1 uses meson's default (<builddir>/cargo, a
# full build). MESON_TEST=1 also runs `meson test --suite quick` (unit
# tests, gst-inspect and the README's gst-check tests through meson; the
# whole suite is `make test`, and `meson test` alone runs it too).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
CARGO=${CARGO:-cargo}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gst-mjpeg-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# A registry of our own: neither a stale user cache nor writes into it.
export GST_REGISTRY=$tmp/registry.bin
unset GST_PLUGIN_PATH_1_0
passed=0

fail() { echo "install: FAIL: $*"; echo "install: $passed passed, 1 failed"; exit 1; }

# gst-inspect-1.0 finds both elements in DIR/libgstmjpeg.so.
finds_plugin_in() {
  local dir=$1 e out
  for e in mjpegsrc mjpegsink; do
    out=$(GST_PLUGIN_PATH=$dir timeout 120 gst-inspect-1.0 "$e" 2>&1) ||
      fail "gst-inspect-1.0 $e with GST_PLUGIN_PATH=$dir: $(head -5 <<<"$out")"
    grep -Eq "^ *Filename +$dir/libgstmjpeg.so$" <<<"$out" ||
      fail "$e not loaded from $dir/libgstmjpeg.so: $(grep Filename <<<"$out")"
  done
  echo "install: ok: gst-inspect-1.0 finds mjpegsrc and mjpegsink in $dir/libgstmjpeg.so"
  passed=$((passed + 1))
}

if GST_PLUGIN_PATH= gst-inspect-1.0 mjpegsrc >/dev/null 2>&1; then
  echo "install: note: mjpegsrc is also installed system-wide; the checks below look at the file loaded"
fi

echo "install: cargo build --release"
"$CARGO" build --release
finds_plugin_in "$src/target/release"

meson_args=(--prefix="$tmp/prefix")
[ "${MESON_FRESH:-0}" = 1 ] || meson_args+=(-Dcargo-target-dir="$src/target")
echo "install: meson setup $tmp/build ${meson_args[*]}"
meson setup "$tmp/build" "${meson_args[@]}" >"$tmp/setup.log" 2>&1 ||
  { cat "$tmp/setup.log"; fail "meson setup"; }
meson compile -C "$tmp/build" || fail "meson compile"
meson install -C "$tmp/build" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "meson install"; }
installed=$(find "$tmp/prefix" -name libgstmjpeg.so -print -quit)
[ -n "$installed" ] || fail "meson install put no libgstmjpeg.so under $tmp/prefix"
plugindir=$(dirname "$installed")
[ "$(basename "$plugindir")" = gstreamer-1.0 ] ||
  fail "installed into $plugindir, not a gstreamer-1.0 plugin directory"
echo "install: meson installed ${installed#"$tmp/prefix/"}"
passed=$((passed + 1))
finds_plugin_in "$plugindir"

# Lines are "<project>:<suite> / <test>".
tests=$(meson test -C "$tmp/build" --list 2>/dev/null)
for t in cargo-test cargo-test-quick; do
  printf '%s\n' "$tests" | grep -q "/ $t\$" || fail "meson test --list has no $t"
done
echo "install: ok: meson test --list has cargo-test and cargo-test-quick"
passed=$((passed + 1))
if [ "${MESON_TEST:-0}" = 1 ]; then
  meson test -C "$tmp/build" --suite quick --print-errorlogs || fail "meson test"
  echo "install: ok: meson test"
  passed=$((passed + 1))
fi
echo "install: $passed passed, 0 failed"
