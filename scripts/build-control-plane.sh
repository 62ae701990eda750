#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl from Debian's kubernetes source
# package, with the reflect2 fix, into a cache outside the checkout keyed by version and patch.
# Reruns are instant. Needs root for apt (CI and the dev machines run as root).
set -euo pipefail

KUBE_VERSION="1.20.2"
PATCH_ID="reflect2-1.0.2"
CACHE_ROOT="${FORECASTSCALER_CACHE:-/var/cache/forecastscaler}"
OUT="$CACHE_ROOT/kube-$KUBE_VERSION-$PATCH_ID/bin"
BINARIES=(kube-apiserver kube-controller-manager kubectl)

have_all() { for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done; }
if have_all; then echo "$OUT"; exit 0; fi

log() { echo "[build-control-plane] $*" >&2; }
export DEBIAN_FRONTEND=noninteractive

if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding a deb-src source for bookworm main"
  # deb822 form with the same Signed-By as Debian's own source, or apt rejects the conflict.
  cat > /etc/apt/sources.list.d/forecastscaler-src.sources <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq >&2 || log "apt-get update reported errors (unreachable third-party sources are ignored)"
apt-get install -y -qq --no-install-recommends golang-go rsync dpkg-dev make golang-github-modern-go-reflect2-dev >&2

WORK="$CACHE_ROOT/src-$KUBE_VERSION"
mkdir -p "$WORK"
cd "$WORK"
if ! ls -d kubernetes-*/ >/dev/null 2>&1; then
  log "fetching the kubernetes source package"
  apt-get source -qq kubernetes >&2
fi
SRC=$(ls -d "$WORK"/kubernetes-*/ | head -n 1)
cd "$SRC"
grep -q "$KUBE_VERSION" <(ls "$WORK") || log "warning: source is not $KUBE_VERSION: $(ls "$WORK")"

# The vendored reflect2 v1.0.1 segfaults under Go >= 1.18 on the first custom-resource create.
R2=vendor/github.com/modern-go/reflect2
if [ ! -f "$R2/.forecastscaler-patched" ]; then
  log "replacing vendored reflect2 with Debian's 1.0.2"
  rm -f "$R2"/*.go
  for f in $(dpkg -L golang-github-modern-go-reflect2-dev | grep -E 'reflect2/[^/]+\.go$' | grep -v _test.go); do
    cp "$f" "$R2/"
  done
  touch "$R2/.forecastscaler-patched"
fi

log "building ${BINARIES[*]} (several minutes on 2 cores)"
export GOFLAGS="-mod=vendor" GO111MODULE=on
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >&2
mkdir -p "$OUT"
for b in "${BINARIES[@]}"; do
  cp "$(find _output -type f -name "$b" -perm -u+x | head -n 1)" "$OUT/$b"
done
log "built into $OUT"
echo "$OUT"
