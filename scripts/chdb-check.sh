#!/usr/bin/env bash
# Modern-engine check: run the aggregator's migrations and the dashboards' SQL against a
# current ClickHouse engine (chdb behind scripts/chdb_http.py), as the tests run against the
# old 18.16 server. Catches SQL that only one of the two accepts.
#
# usage: chdb-check.sh
#   AGGREGATOR     aggregator binary (default: target/debug/aggregator; build it first)
#   DASHBOARD_SQL  dashboard-sql binary (default: target/debug/dashboard-sql)
# Steps: start the shim on a free port with a fresh data directory, `aggregator migrate`
# twice (the second run proves migrations are idempotent), then the aggregator's other queries
# (stats, a run pass with the rollups, data-subject requests), then every ClickHouse panel and
# variable of dashboards/grafana/, expanded as Grafana's plugin expands it (dashboard-sql), for
# one site and for all. Exits non-zero on the first failure. The shim's log is printed when
# something fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--help]" >&2; exit 2 ;;
esac

AGGREGATOR="${AGGREGATOR:-$ROOT/target/debug/aggregator}"
DASHBOARD_SQL="${DASHBOARD_SQL:-$ROOT/target/debug/dashboard-sql}"
PREFIX=chdbcheck
[ -x "$AGGREGATOR" ] || die "no aggregator binary at $AGGREGATOR (cargo build -p aggregator, or set AGGREGATOR)"
[ -x "$DASHBOARD_SQL" ] || die "no dashboard-sql binary at $DASHBOARD_SQL (cargo build -p e2e --bins)"

ensure_venv
tmp="$(mktemp -d)"
shim_pid=""
cleanup() {
    local rc=$?
    if [ -n "$shim_pid" ]; then
        kill -TERM "$shim_pid" 2>/dev/null || true
        wait "$shim_pid" 2>/dev/null || true
    fi
    if [ $rc -ne 0 ] && [ -s "$tmp/shim.log" ]; then
        log "shim log:"
        tail -n 30 "$tmp/shim.log" >&2
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

# Port 0: the shim picks a free port itself and reports it, so no other process can take it
# between choosing and binding.
"$VENV/bin/python" "$ROOT/scripts/chdb_http.py" --port 0 --data "$tmp/data" \
    >"$tmp/shim.out" 2>"$tmp/shim.log" &
shim_pid=$!
for _ in $(seq 300); do
    grep -q '^listening on ' "$tmp/shim.out" && break
    kill -0 "$shim_pid" 2>/dev/null || die "chdb shim exited during startup"
    sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$tmp/shim.out")"
[ -n "$addr" ] || die "chdb shim did not start within 30 s"
url="http://$addr"
log "chdb shim at $url"

cat > "$tmp/aggregator.toml" <<EOF
[clickhouse]
url = "$url"
user = "default"
database_prefix = "$PREFIX"
EOF

for run in 1 2; do
    log "aggregator migrate (run $run)"
    "$AGGREGATOR" --config "$tmp/aggregator.toml" migrate || die "aggregator migrate failed (run $run)"
done
# Every other query the aggregator sends, on the tables the migrations made: the report, a
# pass (salts, retention over system.parts, the rollups' INSERT ... SELECT), and a
# data-subject request (salts, blocklist, export, erase waiting on system.mutations).
"$AGGREGATOR" --config "$tmp/aggregator.toml" stats --site chdbcheck --json >/dev/null \
    || die "aggregator stats failed"
"$AGGREGATOR" --config "$tmp/aggregator.toml" run --once >/dev/null || die "aggregator run --once failed"
for action in block export erase unblock; do
    "$AGGREGATOR" --config "$tmp/aggregator.toml" subject "$action" --site chdbcheck \
        --ip 192.0.2.1 --ua chdb-check >/dev/null || die "aggregator subject $action failed"
done

for site in chdbcheck ""; do
    "$DASHBOARD_SQL" --prefix "$PREFIX" ${site:+--site "$site"} | cut -f3 | sed 's/$/;/' > "$tmp/dashboards.sql"
    log "dashboard queries ($(wc -l < "$tmp/dashboards.sql"), site ${site:-All})"
    "$VENV/bin/python" "$ROOT/scripts/run_sql.py" --url "$url" "$tmp/dashboards.sql" || die "dashboard SQL failed"
done
log "chdb check passed"
