#!/usr/bin/env bash
# Produce the GeoIP databases the collector reads:
#   .work/geoip/country.mmdb  {"country_code": "RU"}                       (CC0)
#   .work/geoip/asn.mmdb      GeoLite2-ASN layout, built from CSVs          (CC BY 4.0)
#   .work/geoip/SOURCES.txt   packages, versions, licences
# Both come from the npm registry (@ip-location-db). Files that exist are kept: delete them,
# or pass --force, to rebuild. GEOIP_NPM_VERSION picks a package version (default: latest;
# the publisher keeps only a few versions, so a pin goes stale).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force_option 9 "$@"

OUT="$WORK/geoip"
VERSION="${GEOIP_NPM_VERSION:-latest}"
COUNTRY_PKG="@ip-location-db/geo-whois-asn-country-mmdb"
ASN_PKG="@ip-location-db/asn"
mkdir -p "$OUT"
[ -n "$force" ] && rm -f "$OUT/country.mmdb" "$OUT/asn.mmdb"
if [ -f "$OUT/country.mmdb" ] && [ -f "$OUT/asn.mmdb" ] && [ -f "$OUT/SOURCES.txt" ]; then
    log "up to date: $OUT"
    exit 0
fi

command -v npm >/dev/null || ensure_apt npm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# fetch PKG DIR: unpack the package tarball into DIR; print "name@version".
fetch() {
    local tarball
    tarball="$(cd "$tmp" && npm pack --silent --cache "$WORK/npm" "$1@$VERSION")"
    mkdir -p "$2"
    tar -xzf "$tmp/$tarball" -C "$2" --strip-components=1
    echo "$1@$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$2/package.json")"
}

if [ ! -f "$OUT/country.mmdb" ] || [ ! -f "$OUT/.country-source" ]; then
    log "fetching $COUNTRY_PKG"
    country_src="$(fetch "$COUNTRY_PKG" "$tmp/country")"
    cp "$tmp/country/geo-whois-asn-country.mmdb" "$OUT/country.mmdb.tmp"
    mv "$OUT/country.mmdb.tmp" "$OUT/country.mmdb"
    echo "$country_src" > "$OUT/.country-source"
fi

if [ ! -f "$OUT/asn.mmdb" ] || [ ! -f "$OUT/.asn-source" ]; then
    log "fetching $ASN_PKG"
    asn_src="$(fetch "$ASN_PKG" "$tmp/asn")"
    ensure_venv
    log "building asn.mmdb (about a minute)"
    "$VENV/bin/python" "$ROOT/scripts/build_asn_mmdb.py" --out "$OUT/asn.mmdb" \
        "$tmp/asn/asn-ipv4.csv" "$tmp/asn/asn-ipv6.csv"
    echo "$asn_src" > "$OUT/.asn-source"
fi

# Written last, so that its presence means both databases are complete.
cat > "$OUT/SOURCES.txt" <<EOF
country.mmdb: npm $(cat "$OUT/.country-source"), file geo-whois-asn-country.mmdb, unchanged.
  Licence: CC0-1.0 (data from the RIRs' delegation statistics via NRO, CC BY 4.0: nro.net).
asn.mmdb: built by scripts/build_asn_mmdb.py from npm $(cat "$OUT/.asn-source"),
  files asn-ipv4.csv and asn-ipv6.csv, as GeoLite2-ASN-style records.
  Licence: CC BY 4.0. Attribution: RouteViews (routeviews.org), the RIRs via NRO (nro.net),
  and DB-IP's IP to ASN Lite database (db-ip.com: "IP Geolocation by DB-IP").
EOF
log "done: $OUT"
