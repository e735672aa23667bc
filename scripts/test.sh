#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this) on a fresh Debian machine
# with the Rust toolchain. Installs what the tests need from Debian's packages, then checks
# formatting, lints and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Packages the tests drive for real: ffmpeg/ffprobe judge the muxer's output; Chromium is the
# WHEP player of the browser test (node and npm come with the machine); redis-server is the
# registry of the cluster tests' fleet.
need_pkgs=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_pkgs+=(ffmpeg)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  echo "scripts/test.sh: installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# PyAV (and numpy) for the PyAV example worker's test, in a venv of our own, from PyPI.
pyav_venv=target/pyav-venv
if ! "$pyav_venv/bin/python" -c 'import av, numpy' 2>/dev/null; then
  python3 -m venv "$pyav_venv"
  "$pyav_venv/bin/pip" install -q --disable-pip-version-check av numpy
fi
export LIVEGATE_TEST_PYTHON=$PWD/$pyav_venv/bin/python
cargo test --workspace --locked
scripts/validate-deploy.sh
scripts/browser-test.sh 3
# Dependency policy of deny.toml: licenses, bans, sources (and advisories where the RustSec
# database can be fetched).
scripts/deny.sh
# Every fuzz target for 10 s; the fuzz build is kept between CI runs on one machine.
FUZZ_SECONDS=10 FUZZ_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/livegate/fuzz-target" scripts/fuzz.sh
# The short soak: 60 s of publishers, viewers and worker kills, then sessions, streams and
# tasks back to idle and RSS within 10 % of its warm value.
SOAK_SECONDS=60 SOAK_CYCLES=10 SOAK_JOINS=100 SOAK_KILLS=4 SOAK_PROFILE=dev scripts/soak.sh
