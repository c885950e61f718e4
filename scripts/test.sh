#!/usr/bin/env bash
# The test command: sets up real components and runs every test.
#   1. Chromium, chromedriver, Prometheus, ZooKeeper and HAProxy (apt), GeoIP databases
#      (scripts/geoip.sh), the bot lists and User-Agent corpora (scripts/bots.sh) and the Python
#      venv (chdb-core)
#   2. a ClickHouse 18.16 server of its own, fresh data directory, free ports
#   3. checks formatting and lints and the minified snippet (scripts/snippet.sh --check), builds
#      the workspace, checks the schema on current ClickHouse (scripts/chdb-check.sh)
#   4. cargo test --workspace against the server; stops the server on exit
# usage: scripts/test.sh [-- CARGO_TEST_ARGS...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    --) shift ;;
esac

command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) first"
command -v cc >/dev/null || ensure_apt build-essential
ensure_python
# The snippet's end-to-end test drives real headless Chromium through chromedriver
# (e2e/tests/browser.rs); both come from one Debian source package, so their versions match.
# The collector-health dashboard and the alerts are tested on Prometheus and promtool
# (e2e/tests/collector_health.rs). The cluster tests start ZooKeeper from its jar, with Java
# (e2e/tests/cluster.rs, scripts/cluster.sh). Two collectors run behind HAProxy
# (e2e/tests/faults.rs, scripts/haproxy.sh).
ensure_apt chromium chromium-driver prometheus zookeeper default-jre-headless haproxy

"$ROOT/scripts/geoip.sh"
"$ROOT/scripts/bots.sh"
ensure_venv

# A server of the test run's own: a fresh data directory, so the privacy scan reads only what
# this run wrote, and ports picked now, so a running demo does not collide.
name=test
"$ROOT/scripts/clickhouse.sh" stop --name "$name" >/dev/null 2>&1 || true
rm -rf "$WORK/clickhouse/$name"
http_port="$(free_port)"
tcp_port="$(free_port)"
"$ROOT/scripts/clickhouse.sh" start --name "$name" --http-port "$http_port" --tcp-port "$tcp_port" >/dev/null
trap '"$ROOT/scripts/clickhouse.sh" stop --name "$name" >/dev/null 2>&1 || true' EXIT

cd "$ROOT"
log "cargo fmt --check, cargo clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings

log "snippet/script.min.js is what snippet/script.js minifies to (scripts/snippet.sh --check)"
"$ROOT/scripts/snippet.sh" --check

log "cargo build"
cargo build --workspace --all-targets --locked

log "schema, aggregator and dashboard SQL on current ClickHouse (chdb-core)"
"$ROOT/scripts/chdb-check.sh"

# shellcheck disable=SC1091
source "$WORK/clickhouse/$name/secrets.env"
export WEBSTATS_CH_PASSWORD_ADMIN
export WEBSTATS_TEST_CLICKHOUSE_URL="http://127.0.0.1:$http_port"
export WEBSTATS_TEST_CLICKHOUSE_DIR="$WORK/clickhouse/$name"
export WEBSTATS_TEST_GEOIP_DIR="$WORK/geoip"
export WEBSTATS_TEST_BOTS_DIR="$WORK/bots"
log "cargo test (ClickHouse 18.16 at $WEBSTATS_TEST_CLICKHOUSE_URL)"
cargo test --workspace --all-targets --locked --no-fail-fast "$@"
