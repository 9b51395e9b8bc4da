#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs (each step skips what is
# already there), then runs the format check, clippy with warnings as errors, and every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
step() { printf '\n==> %s\n' "$*"; }

NEXTEST_VERSION=0.9.143
TOOLCHAIN=1.95.0

step "toolchain $TOOLCHAIN"
# rust-toolchain.toml pins $TOOLCHAIN; when rustup knows the installed stable only as "stable",
# register it under its version instead of letting rustup try to download it.
if ! rustup toolchain list | grep -q "^$TOOLCHAIN"; then
  if rustc +stable --version | grep -q "^rustc $TOOLCHAIN "; then
    rustup toolchain link "$TOOLCHAIN" "$(rustc +stable --print sysroot)"
  fi
fi
rustc --version

step "cargo-nextest"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked
fi
cargo nextest --version | head -n 1

step "system tools the tests use (openssl for TLS certificates, mount for the disk-full test)"
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v mount >/dev/null 2>&1 || missing+=(mount)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
openssl version

step "python venv for the OpenTelemetry SDK interop tests"
requirements=tests/interop/requirements.txt
stamp=.venv/.requirements.sha256
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! python3 -m venv .venv; then
    apt-get update -qq && apt-get install -y -qq python3-venv python3-pip
    python3 -m venv .venv
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
export THREADLINE_TEST_PYTHON="$root/.venv/bin/python"

step "Chromium and the UI's Node packages (from ui/package-lock.json)"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium
fi
dpkg-query -W -f='chromium ${Version}\n' chromium 2>/dev/null || echo "chromium (not from Debian)"
command -v node >/dev/null 2>&1 || { echo "Node.js (20.19 or later) is required for the UI" >&2; exit 1; }
node --version
ui_stamp=ui/node_modules/.package-lock.sha256
ui_want="$(sha256sum ui/package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$ui_stamp" 2>/dev/null)" != "$ui_want" ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  echo "$ui_want" >"$ui_stamp"
fi

step "UI: type check, unit tests (Vitest), and the committed build (ui/dist) equal to a fresh one"
ui_build="$(mktemp -d)"
trap 'rm -rf "$ui_build"' EXIT
(cd ui && npx --no-install tsc --noEmit && npx --no-install vitest run \
  && npx --no-install vite build --outDir "$ui_build" --emptyOutDir --logLevel warn)
if ! diff -r "$ui_build" ui/dist; then
  echo "ui/dist differs from a fresh build of ui/: run (cd ui && npm run build) and commit ui/dist" >&2
  exit 1
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
profile=default
if [ "${CI:-}" = "true" ]; then profile=ci; fi
cargo nextest run --workspace --locked --profile "$profile"
