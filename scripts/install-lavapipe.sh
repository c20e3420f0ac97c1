#!/usr/bin/env bash
# Install Mesa >= 25 lavapipe (the Vulkan CPU driver) from bookworm-backports so that the npm package `webgpu`
# (Dawn) finds an adapter on a machine without a GPU. Debian 12's own Mesa 22.3 lavapipe yields no adapter.
#
#   sudo bash scripts/install-lavapipe.sh
#
# Idempotent: exits at once when a Mesa >= 25 lavapipe ICD is already installed; never adds the backports
# source twice. Needs root and Debian 12 (bookworm).
set -euo pipefail

MIN_MESA_MAJOR=25
BACKPORTS_FILE=/etc/apt/sources.list.d/bookworm-backports.sources

log() { printf '[install-lavapipe] %s\n' "$*"; }
die() {
  printf '[install-lavapipe] error: %s\n' "$*" >&2
  exit 1
}

# Version of an installed package, or empty.
installed_version() { dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null | awk '$1=="installed"{print $2}'; }

lavapipe_icd_present() {
  local f
  for f in /usr/share/vulkan/icd.d/lvp_icd*.json; do
    [ -e "$f" ] && return 0
  done
  return 1
}

mesa_is_new_enough() {
  local v major
  v=$(installed_version mesa-vulkan-drivers)
  [ -n "$v" ] || return 1
  # Debian versions look like 25.0.7-2~bpo12+1 (possibly with an epoch "1:").
  major=${v#*:}
  major=${major%%.*}
  [[ "$major" =~ ^[0-9]+$ ]] || return 1
  [ "$major" -ge "$MIN_MESA_MAJOR" ] || return 1
  [ -n "$(installed_version libvulkan1)" ] || return 1
  lavapipe_icd_present
}

if mesa_is_new_enough; then
  log "lavapipe already installed (mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers)); nothing to do."
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root: sudo bash $0"
command -v apt-get >/dev/null || die "apt-get not found; this script supports Debian 12 (bookworm) only."

codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
fi
[ "$codename" = bookworm ] || die "expected Debian 12 (bookworm), found '${codename:-unknown}'. Install Mesa >= 25 lavapipe (mesa-vulkan-drivers) with your distribution's tools."

# Is bookworm-backports already configured anywhere?
if grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "bookworm-backports already configured."
else
  # Use the Debian mirror apt already uses: deb822 file first (Debian 12 default), then one-line sources.list.
  mirror=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
    mirror=$(awk '$1=="deb" && $0 ~ /bookworm/ && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  log "adding bookworm-backports from $mirror -> $BACKPORTS_FILE"
  {
    echo "Types: deb"
    echo "URIs: $mirror"
    echo "Suites: bookworm-backports"
    echo "Components: main"
    if [ -r "$keyring" ]; then echo "Signed-By: $keyring"; fi
  } >"$BACKPORTS_FILE"
fi

log "apt-get update"
apt-get update -q
log "installing mesa-vulkan-drivers libvulkan1 from bookworm-backports"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t bookworm-backports \
  mesa-vulkan-drivers libvulkan1

mesa_is_new_enough || die "installed mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers) is older than $MIN_MESA_MAJOR or has no lavapipe ICD."
log "done: mesa-vulkan-drivers $(installed_version mesa-vulkan-drivers), ICD: $(ls /usr/share/vulkan/icd.d/lvp_icd*.json)"
