#!/usr/bin/env bash
# Fetch the bot list the collector reads, and the User-Agent corpora its tests measure it on:
#   .work/bots/crawler-user-agents.json  PyPI crawler-user-agents (MIT): patterns, and
#                                        example crawler User-Agents ("instances")
#   .work/bots/user-agents.json          npm user-agents (BSD-2-Clause): real browser traffic
#   .work/bots/cloud_providers.json      PyPI cloudcheck (AGPL-3.0): cloud providers' ASNs,
#                                        the collector's hosting networks ([bots] hosting)
#   .work/bots/SOURCES.txt               packages, versions, checksums, licences
# All are pinned with their checksums; files that exist are kept (pass --force to refetch).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force_option 9 "$@"

# The newest release on PyPI (npm has only older ones); a wheel is a zip file.
CUA_VERSION="1.67.0"
CUA_URL="https://files.pythonhosted.org/packages/61/7f/3c63b4292d42d1e1636d14d96019eb53403d618a9441c4757382dc26f2dc/crawler_user_agents-1.67.0-py3-none-any.whl"
CUA_SHA256="438880782e9689d953f850846bb7a425dd444de02be2b7c3e1bf2dd636b65d8c"
UA_PKG="user-agents@2.1.198"
# The source distribution: the wheels hold the same data compiled into a binary.
CC_VERSION="11.2.0"
CC_URL="https://files.pythonhosted.org/packages/83/1a/9a1e0c52781c4b600c9926add96f329268dcde6be3d1f95c83d99cb6cd52/cloudcheck-11.2.0.tar.gz"
CC_SHA256="80287bf7a8917dfbadc5773490c33c57de31be93e4f0f80a03a730f3e6d312ba"

OUT="$WORK/bots"
mkdir -p "$OUT"
[ -n "$force" ] && rm -f "$OUT/SOURCES.txt"
if [ -f "$OUT/crawler-user-agents.json" ] && [ -f "$OUT/user-agents.json" ] && [ -f "$OUT/cloud_providers.json" ] \
    && [ -f "$OUT/SOURCES.txt" ] && grep -q cloudcheck "$OUT/SOURCES.txt"; then
    log "up to date: $OUT"
    exit 0
fi

command -v curl >/dev/null || ensure_apt curl
command -v unzip >/dev/null || ensure_apt unzip
command -v npm >/dev/null || ensure_apt npm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

log "fetching PyPI crawler-user-agents==$CUA_VERSION"
curl -fsSL --retry 3 -o "$tmp/cua.whl" "$CUA_URL"
echo "$CUA_SHA256  $tmp/cua.whl" | sha256sum -c --quiet -
unzip -q -o -j "$tmp/cua.whl" "crawleruseragents/crawler-user-agents.json" -d "$tmp"
mv "$tmp/crawler-user-agents.json" "$OUT/crawler-user-agents.json"

log "fetching npm $UA_PKG"
# npm checks the tarball against the registry's integrity hash.
tarball="$(cd "$tmp" && npm pack --silent --cache "$WORK/npm" "$UA_PKG")"
tar -xzf "$tmp/$tarball" -C "$tmp" package/dist/user-agents.json
mv "$tmp/package/dist/user-agents.json" "$OUT/user-agents.json"

log "fetching PyPI cloudcheck==$CC_VERSION"
curl -fsSL --retry 3 -o "$tmp/cc.tar.gz" "$CC_URL"
echo "$CC_SHA256  $tmp/cc.tar.gz" | sha256sum -c --quiet -
tar -xzf "$tmp/cc.tar.gz" -C "$tmp" "cloudcheck-$CC_VERSION/cloud_providers_v3.json"
mv "$tmp/cloudcheck-$CC_VERSION/cloud_providers_v3.json" "$OUT/cloud_providers.json"

# Written last, so that its presence means every file is complete.
cat > "$OUT/SOURCES.txt" <<EOF
crawler-user-agents.json: PyPI crawler-user-agents==$CUA_VERSION, file
  crawleruseragents/crawler-user-agents.json, unchanged (wheel sha256 $CUA_SHA256).
  Licence: MIT (github.com/monperrus/crawler-user-agents).
user-agents.json: npm $UA_PKG, file dist/user-agents.json, unchanged.
  Licence: BSD-2-Clause (github.com/intoli/user-agents).
cloud_providers.json: PyPI cloudcheck==$CC_VERSION, file cloud_providers_v3.json of the
  source distribution, unchanged (sha256 $CC_SHA256).
  Licence: AGPL-3.0 (github.com/blacklanternsecurity/cloudcheck); read as data, not shipped.
EOF
log "done: $OUT"
