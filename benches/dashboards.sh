#!/usr/bin/env bash
# Dashboard query speed: every ClickHouse panel and variable of dashboards/grafana/, expanded
# as Grafana's plugin expands it (target/release/dashboard-sql), timed on a private ClickHouse
# 18.16 holding generated data: DAYS days of about 100k pageviews a day (plus events, timing,
# error and bot beacons in the troubleshooting store), rolled up by `aggregator rollups`.
# Each query runs as its data source's user with the plugin's URL parameters; the median of
# RUNS runs is reported next to two baselines of the same run: `SELECT 1` (the round trip) and
# a count over the raw audience events of the range (what a dashboard without rollups would
# scan at least). Prints a markdown table and writes it to .work/bench/dashboards-<stamp>.md.
#
# usage: benches/dashboards.sh [--days N] [--runs N]
#   --days N  days of generated data and of the dashboards' time range (default 30)
#   --runs N  runs per query; the median is reported (default 5)
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH_DIR/../scripts/lib.sh"

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }

days=30 runs=5
while [ $# -gt 0 ]; do
    case "$1" in
        --days) days="${2:-}"; shift 2 ;;
        --runs) runs="${2:-}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
for value in "$days" "$runs"; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { log "not a positive integer: '$value'"; usage >&2; exit 2; }
done

CH_NAME=bench-dashboards PREFIX=benchdash
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
REPORT="$WORK/bench/dashboards-$STAMP.md"
mkdir -p "$WORK/bench"
cleanup() { "$ROOT/scripts/clickhouse.sh" stop --name "$CH_NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

command -v curl >/dev/null || ensure_apt curl
cd "$ROOT"
log "cargo build --release (aggregator, dashboard-sql)"
cargo build --release --locked -p aggregator -p e2e --bin aggregator --bin dashboard-sql
AGGREGATOR=(target/release/aggregator --config "$WORK/bench/$CH_NAME.toml")

"$ROOT/scripts/clickhouse.sh" stop --name "$CH_NAME" >/dev/null 2>&1 || true
rm -rf "$WORK/clickhouse/$CH_NAME"
http_port="$(free_port)"
"$ROOT/scripts/clickhouse.sh" start --name "$CH_NAME" --http-port "$http_port" --tcp-port "$(free_port)" >/dev/null
URL="http://127.0.0.1:$http_port"
cat > "$WORK/bench/$CH_NAME.toml" <<EOF
[clickhouse]
url = "$URL"
user = "admin"
password_env = "WEBSTATS_CH_PASSWORD_ADMIN"
database_prefix = "$PREFIX"
request_timeout_ms = 600000
EOF
set -a
# shellcheck disable=SC1091
source "$WORK/clickhouse/$CH_NAME/secrets.env"
set +a
"${AGGREGATOR[@]}" migrate >/dev/null
install_roles "$CH_NAME" "$PREFIX" "${AGGREGATOR[0]}" "$WORK/bench/$CH_NAME.toml"

# admin SQL: the body of the answer; fails loudly.
admin() {
    curl -sS --fail-with-body -H "X-ClickHouse-User: admin" -H "X-ClickHouse-Key: $WEBSTATS_CH_PASSWORD_ADMIN" \
        --data-binary @- "$URL/?max_execution_time=3600"
}

today=$(( $(date -u +%s) / 86400 ))
first=$(( today - days + 1 ))
per_day=105000   # beacons a day: 26,250 visitors with 4 beacons each, 1 in 20 an event
log "generating $days days x $per_day audience beacons, and the troubleshooting store"
# One visitor (v) per 4 consecutive numbers of a day (d); beacon j of 4 at a random start plus
# 1 to 11 minutes a step. Paths, referrers, campaigns, places and technology are skewed the
# way real traffic is: a few values take most of it.
BEACONS="
    SELECT n, d, v, j, toDateTime((toUInt32($first) + d) * 86400 + sipHash64(d, v) % 82000 + j * (60 + sipHash64(n) % 600)) AS t,
           if(j = 3 AND v % 5 = 0, 'event', 'pageview') AS type,
           if(j = 0, '/', concat('/p/', toString(intDiv(1000, 1 + sipHash64(n, 1) % 1000)))) AS path,
           sipHash64(v, 2) % 100 AS r
    FROM (SELECT number AS n, intDiv(number, $per_day) AS d, intDiv(number % $per_day, 4) AS v, number % 4 AS j
          FROM numbers($(( days * per_day ))))"
admin <<SQL
INSERT INTO ${PREFIX}_audience.events (date, ts, site, type, visitor_id, host, path, utm_source, utm_medium,
    utm_campaign, ref_host, name, prop_keys, prop_values, browser, os, device, country, region, city,
    screen_width, lang)
SELECT toDate(t), t, 'lk', type, sipHash64(d, v), 'lk.example.ru', path,
       if(r < 5, 'yandex', ''), if(r < 5, 'cpc', ''), if(r < 5, 'winter', ''),
       if(j = 0, ['', '', 'yandex.ru', 'www.google.com', 'vk.com', 't.me', 'dzen.ru', 'example.org', 'mail.yandex.ru', 'go.mail.ru'][1 + sipHash64(v, 3) % 10], 'lk.example.ru'),
       if(type = 'event', ['pay', 'signup', 'download'][1 + sipHash64(n, 4) % 3], ''),
       if(type = 'event', ['method'], emptyArrayString()), if(type = 'event', [['card', 'sbp', 'cash'][1 + sipHash64(n, 5) % 3]], emptyArrayString()),
       ['Chrome', 'Chrome', 'Yandex Browser', 'Safari', 'Firefox', 'Edge'][1 + sipHash64(v, 6) % 6],
       ['Windows 10', 'Android', 'Android', 'iOS', 'Mac OSX', 'Linux'][1 + sipHash64(v, 7) % 6],
       ['pc', 'smartphone', 'smartphone', 'pc'][1 + sipHash64(v, 8) % 4],
       ['RU', 'RU', 'RU', 'RU', 'KZ', 'BY', 'DE'][1 + sipHash64(v, 9) % 7],
       ['Moscow', 'Saint Petersburg', 'Moscow Oblast', 'Tatarstan', ''][1 + sipHash64(v, 10) % 5],
       ['Moscow', 'Saint Petersburg', 'Khimki', 'Kazan', ''][1 + sipHash64(v, 10) % 5],
       [390, 412, 768, 1366, 1536, 1920][1 + sipHash64(v, 11) % 6], 'ru-RU'
FROM ($BEACONS)
SQL
# The troubleshooting store: the same beacons (its retention is 14 days by default, but the
# dashboards' range is what is timed), plus a timing beacon per visit, an error in 1 of 50
# visits and 5% bot hits.
admin <<SQL
INSERT INTO ${PREFIX}_troubleshooting.events (date, ts, site, type, is_bot, visitor_id, ip_id, network, asn,
    as_org, country, host, path, user_agent, browser, os, device, ttfb_ms, fcp_ms, lcp_ms, inp_ms, cls,
    error_message, error_source, error_line)
SELECT toDate(t), t, 'lk',
       multiIf(j = 1, 'timing', j = 2 AND v % 50 = 0, 'error', type), r < 5, sipHash64(d, v), sipHash64(v, 12),
       '198.51.100.0/24', [12389, 8359, 3216, 15169][1 + sipHash64(v, 13) % 4],
       ['Rostelecom', 'MTS', 'Beeline', 'Google'][1 + sipHash64(v, 13) % 4], 'RU', 'lk.example.ru', path,
       if(r < 5, 'Googlebot/2.1', 'Mozilla/5.0 Chrome/131'), 'Chrome', 'Windows 10', 'pc',
       if(j = 1, toNullable(toUInt32(50 + sipHash64(n, 14) % 1500)), NULL),
       if(j = 1, toNullable(toUInt32(300 + sipHash64(n, 15) % 3000)), NULL),
       if(j = 1, toNullable(toUInt32(600 + sipHash64(n, 16) % 5000)), NULL),
       if(j = 1, toNullable(toUInt32(sipHash64(n, 17) % 700)), NULL),
       if(j = 1, toNullable(toFloat32((sipHash64(n, 18) % 400) / 1000)), NULL),
       if(j = 2 AND v % 50 = 0, ['TypeError: x is undefined', 'ReferenceError: y is not defined'][1 + sipHash64(n, 19) % 2], ''),
       if(j = 2 AND v % 50 = 0, 'https://lk.example.ru/app.js', ''), if(j = 2 AND v % 50 = 0, toUInt32(10 + sipHash64(n) % 90), 0)
FROM ($BEACONS)
SQL
pageviews=$(echo "SELECT countIf(type = 'pageview') FROM ${PREFIX}_audience.events" | admin)
log "rollups of $days days"
started=$(date +%s)
"${AGGREGATOR[@]}" rollups --days "$days" >/dev/null
rollup_s=$(( $(date +%s) - started ))

set -a
# shellcheck disable=SC1090
source "$WORK/clickhouse/$CH_NAME/roles-$PREFIX.env"
set +a
# time_query ROLE SQL: the median wall time in ms of RUNS runs, sent as the plugin sends it.
time_query() {
    local role="$1" sql="$2" var times=()
    var="WEBSTATS_CH_PASSWORD_${role^^}"
    for _ in $(seq "$runs"); do
        times+=("$(curl -sS --fail-with-body -o /dev/null -w '%{time_total}' -u "${PREFIX}_$role:${!var}" \
            --data-binary "$sql" "$URL/?default_format=Native&max_execution_time=65")")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}'
}

{
    echo "## Dashboard queries, $days days ($STAMP, $(nproc) cores, ClickHouse $(echo 'SELECT version()' | admin))"
    echo
    echo "$pageviews pageviews in the audience store; \`aggregator rollups --days $days\` took $rollup_s s."
    echo "Median of $runs runs per query, ms, as the data source's user with the plugin's parameters."
    echo
    echo "| query | range | ms |"
    echo "| --- | --- | ---: |"
    echo "| baseline: \`SELECT 1\` | | $(time_query analyst 'SELECT 1') |"
    echo "| baseline: count of raw audience events in the range (admin) | $days d | $(
        curl -sS -o /dev/null -w '%{time_total}' -H "X-ClickHouse-User: admin" \
            -H "X-ClickHouse-Key: $WEBSTATS_CH_PASSWORD_ADMIN" \
            --data-binary "SELECT count(), uniqExact(visitor_id) FROM ${PREFIX}_audience.events WHERE date >= toDate('$(date -u -d "@$(( first * 86400 ))" +%F)')" \
            "$URL/" | awk '{printf "%.1f", $1 * 1000}') |"
    for span in "$days" 1; do
        target/release/dashboard-sql --prefix "$PREFIX" --site lk --from-day $(( today - span + 1 )) --to-day "$today" |
            while IFS=$'\t' read -r role origin sql; do
                echo "| $origin | $span d | $(time_query "$role" "$sql") |"
            done
    done
} | tee "$REPORT"
log "report: $REPORT"
