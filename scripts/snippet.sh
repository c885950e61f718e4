#!/usr/bin/env bash
# Minify the browser snippet: snippet/script.js (the source) -> snippet/script.min.js (what the
# collector serves at /script.js). Both are committed; terser, at a pinned version, is installed
# from the npm registry into .work/npm-tools. Fixed options make the output deterministic.
# Fails if the snippet, gzipped with a realistic site table in place of __WEBSTATS_SITES__,
# grows past its budget of 2176 bytes.
#   scripts/snippet.sh          rebuild snippet/script.min.js
#   scripts/snippet.sh --check  fail unless the committed snippet/script.min.js is what the source
#                               gives (CI: scripts/test.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; echo "usage: $0 [--check]"; }
check=""
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --check) check=1 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

TERSER_VERSION=5.51.2
GZIP_BUDGET_BYTES=2176
SRC="$ROOT/snippet/script.js"
MIN="$ROOT/snippet/script.min.js"
TOOLS="$WORK/npm-tools"
TERSER="$TOOLS/node_modules/terser/bin/terser"

command -v node >/dev/null || ensure_apt nodejs
installed="$(node -p 'require(process.argv[1]).version' "$TOOLS/node_modules/terser/package.json" 2>/dev/null || true)"
if [ "$installed" != "$TERSER_VERSION" ]; then
    command -v npm >/dev/null || ensure_apt npm
    log "npm install terser@$TERSER_VERSION into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --cache "$WORK/npm" --no-audit --no-fund --save-exact --loglevel error \
        "terser@$TERSER_VERSION" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# compress + mangle, two compress passes, ES2017 at most, nothing but the IIFE at top level,
# no comments, no source map. terser renames no free global, so __WEBSTATS_SITES__ survives.
node "$TERSER" "$SRC" --ecma 2017 --compress passes=2 --mangle --comments false -o "$tmp/script.min.js"
node --check "$tmp/script.min.js"
placeholders="$(grep -o '__WEBSTATS_SITES__' "$tmp/script.min.js" | wc -l)"
[ "$placeholders" -eq 1 ] || die "the minified snippet holds __WEBSTATS_SITES__ $placeholders times, not once"

# The collector substitutes its site table and serves the result gzipped at the best level.
table='{"shop":["webstats_id",395,0],"lk-energo":["",0,1],"docs.example.ru":["wsid",30,0]}'
sed "s/__WEBSTATS_SITES__/$table/" "$tmp/script.min.js" > "$tmp/served.js"
node --check "$tmp/served.js"
size="$(gzip -9 < "$tmp/served.js" | wc -c)"
[ "$size" -le "$GZIP_BUDGET_BYTES" ] \
    || die "the snippet is $size bytes gzipped with 3 sites, over the budget of $GZIP_BUDGET_BYTES: simplify snippet/script.js"

if [ -n "$check" ]; then
    [ -f "$MIN" ] || die "snippet/script.min.js is missing: run scripts/snippet.sh and commit it"
    cmp -s "$tmp/script.min.js" "$MIN" \
        || die "snippet/script.min.js is not what snippet/script.js minifies to (terser $TERSER_VERSION): run scripts/snippet.sh and commit it"
    log "snippet/script.min.js matches its source ($(wc -c < "$MIN") bytes, $size gzipped with 3 sites)"
else
    mv "$tmp/script.min.js" "$MIN"
    log "wrote snippet/script.min.js ($(wc -c < "$MIN") bytes, $size gzipped with 3 sites)"
fi
