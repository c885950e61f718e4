#!/usr/bin/env bash
# Modern-engine check: run the aggregator's migrations and the dashboards' SQL against a
# current ClickHouse engine (chdb behind scripts/chdb_http.py), as the tests run against the
# old 18.16 server. Catches SQL that only one of the two accepts.
#
# usage: chdb-check.sh
#   AGGREGATOR  aggregator binary (default: target/debug/aggregator; build it first)
# Steps: start the shim on a free port with a fresh data directory, `aggregator migrate`
# twice (the second run proves migrations are idempotent), then the aggregator's other queries
# (stats, a run pass, data-subject requests), then every dashboards/**/*.sql,
# statement by statement, with {prefix} replaced by "chdbcheck". Exits non-zero on the first
# failure. The shim's log is printed when something fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--help]" >&2; exit 2 ;;
esac

AGGREGATOR="${AGGREGATOR:-$ROOT/target/debug/aggregator}"
PREFIX=chdbcheck
[ -x "$AGGREGATOR" ] || die "no aggregator binary at $AGGREGATOR (cargo build -p aggregator, or set AGGREGATOR)"

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

mapfile -t dashboards < <(find "$ROOT/dashboards" -name '*.sql' -type f 2>/dev/null | sort)
if [ ${#dashboards[@]} -eq 0 ]; then
    log "no dashboards/*.sql to check"
else
    log "checking ${#dashboards[@]} dashboard files"
    "$VENV/bin/python" "$ROOT/scripts/run_sql.py" --url "$url" \
        --replace "{prefix}=$PREFIX" "${dashboards[@]}" || die "dashboard SQL failed"
fi
log "chdb check passed"
