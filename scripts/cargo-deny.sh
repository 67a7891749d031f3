#!/usr/bin/env bash
# Supply-chain checks: licenses, bans and sources of every crate in the
# workspace graph (see deny.toml). cargo-deny is built once from crates.io at a
# pinned version and cached, so later runs start at once.
#
# Advisories are not checked here: the RustSec database is a git repository
# that this project's CI cannot reach. Run `cargo deny check advisories` where
# it can be fetched.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOLT_CACHE_DIR=${MOLT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molt}
INSTALL_ROOT=$MOLT_CACHE_DIR/cargo-deny-$CARGO_DENY_VERSION
CARGO_DENY=$INSTALL_ROOT/bin/cargo-deny
CARGO=${CARGO:-cargo}

if [[ ! -x $CARGO_DENY ]]; then
  echo "cargo-deny $CARGO_DENY_VERSION not cached; building it into $INSTALL_ROOT (a few minutes, once)" >&2
  # Its release profile asks for fat LTO and a single codegen unit, the slowest
  # build there is; a checker gains nothing from either.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    "$CARGO" install cargo-deny --locked --version "$CARGO_DENY_VERSION" --root "$INSTALL_ROOT"
fi

cd "$ROOT"
# The crate sources must be local for --offline; a no-op once they are.
"$CARGO" fetch --locked --quiet
# --offline: no advisory database and no std-replacement data is fetched, and
# cargo metadata uses only the lockfile and the local registry.
exec "$CARGO_DENY" --offline --locked check licenses bans sources
