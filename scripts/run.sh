#!/usr/bin/env bash
# The run command: ClickHouse, the schema, the collector, Prometheus and a demo page that
# embeds the snippet. Views of the demo page land in ClickHouse; Ctrl-C stops everything.
#   ClickHouse  http://127.0.0.1:18123   (data in .work/clickhouse/demo; salts, retention and
#               rollups kept by `aggregator run`)
#   collector   http://127.0.0.1:18080   (config/collector.toml)
#   Prometheus  http://127.0.0.1:19090   (config/prometheus.yml, with the alerts)
#   demo page   http://127.0.0.1:18000/  (demo/index.html)
# Grafana's provisioning for all of it is in dashboards/ (docs/dashboards.md).
# usage: scripts/run.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;; esac

command -v cargo >/dev/null || die "cargo is not installed: install Rust (https://rustup.rs) first"
command -v cc >/dev/null || ensure_apt build-essential
ensure_python
for port in 18080 18000 19090; do port_free "$port" || die "port $port is in use: stop whatever listens there"; done

"$ROOT/scripts/geoip.sh"
"$ROOT/scripts/bots.sh"
cd "$ROOT"
cargo build --release --bins --locked
AGGREGATOR=(target/release/aggregator --config config/aggregator.toml)

pids=()
cleanup() {
    trap - INT TERM EXIT
    # A closed terminal sends SIGHUP twice; under `run.sh | tee`, Ctrl-C kills tee and breaks
    # stderr: either way, finish the cleanup.
    trap '' HUP PIPE
    log "stopping" || true
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    "$ROOT/scripts/prometheus.sh" stop --name demo >/dev/null 2>&1 || true
    "$ROOT/scripts/clickhouse.sh" stop --name demo >/dev/null || true
}
trap cleanup INT TERM HUP EXIT

# A session of its own keeps Ctrl-C from reaching ClickHouse: cleanup stops it only after the
# collector has flushed its buffered rows into it. Installed first, where sudo has the terminal.
command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] \
    || ensure_apt clickhouse-server clickhouse-client
setsid --wait "$ROOT/scripts/clickhouse.sh" start --name demo >/dev/null
# The schema as admin, then the installation's roles: the collector connects as
# webstats_ingest and webstats_ingest_meta. Passwords are in .work/clickhouse/demo/.
set -a
# shellcheck disable=SC1091
source "$WORK/clickhouse/demo/secrets.env"
set +a
"${AGGREGATOR[@]}" migrate
install_roles demo webstats "${AGGREGATOR[0]}" config/aggregator.toml

target/release/collector --config config/collector.toml &
pids+=($!)
# Salt rotation and retention, every run.interval_s.
"${AGGREGATOR[@]}" run &
pids+=($!)
"$ROOT/scripts/prometheus.sh" start --name demo --port 19090 --targets 127.0.0.1:18080
python3 -m http.server 18000 --bind 127.0.0.1 --directory "$ROOT/demo" >/dev/null 2>&1 &
pids+=($!)

cat >&2 <<MSG

  webstats is running.
  Open http://127.0.0.1:18000/ (each view lands in ClickHouse within a second), then
  (the aggregator is ClickHouse's admin; its password is in secrets.env):
    set -a; . .work/clickhouse/demo/secrets.env; set +a
    ${AGGREGATOR[*]} stats --site demo
  Metrics: http://127.0.0.1:18080/metrics, scraped by Prometheus at http://127.0.0.1:19090
  Grafana: the data sources and dashboards in dashboards/ (docs/dashboards.md, "Installing");
  their users' passwords are in .work/clickhouse/demo/roles-webstats.env.
  ClickHouse passwords (admin and the roles): .work/clickhouse/demo/*.env
  Ctrl-C stops everything.

MSG
wait "${pids[0]}"
