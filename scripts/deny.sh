#!/usr/bin/env bash
# The dependency policy of deny.toml on Cargo.lock, with cargo-deny (installed from crates.io
# if missing; scripts/test.sh runs this in CI):
#
# - licenses, bans (duplicate majors warn, wildcards fail) and sources (crates.io only) need
#   nothing from the network beyond what cargo already has, and always run;
# - advisories need the RustSec database, a git repository on GitHub. Where it cannot be
#   fetched (this project's machines reach only the package registries) the check is
#   reported as BLOCKED and skipped, or fails the script with DENY_REQUIRE_ADVISORIES=1.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny

cargo deny --locked check --show-stats licenses bans sources

if cargo deny --locked fetch db >/dev/null 2>&1; then
  cargo deny --locked check --disable-fetch advisories
else
  echo "scripts/deny.sh: advisories BLOCKED: the RustSec advisory database (GitHub) cannot be fetched from here" >&2
  if [[ ${DENY_REQUIRE_ADVISORIES:-0} == 1 ]]; then exit 1; fi
fi
