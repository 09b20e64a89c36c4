#!/usr/bin/env bash
# Installs the real BitTorrent tools and clients rain's interop tests run against, idempotently:
# Debian's mktorrent, transmission-cli/-daemon, aria2 and opentracker, and PyPI's libtorrent
# (Python bindings for libtorrent-rasterbar). Safe to run again; installs only what is missing.
set -euo pipefail

need_apt=()
command -v mktorrent >/dev/null || need_apt+=(mktorrent)
command -v transmission-create >/dev/null || need_apt+=(transmission-cli)
command -v transmission-daemon >/dev/null || need_apt+=(transmission-daemon)
command -v aria2c >/dev/null || need_apt+=(aria2)
command -v opentracker >/dev/null || need_apt+=(opentracker)
command -v tmux >/dev/null || need_apt+=(tmux)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-peers: apt-get install ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The daemon package starts a system service we don't want; tests run their own instances.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now transmission-daemon >/dev/null 2>&1 || true; fi
fi

if ! python3 -c 'import libtorrent' >/dev/null 2>&1; then
  echo "install-peers: pip install libtorrent"
  python3 -m pip install -q libtorrent
fi

for tool in mktorrent transmission-create transmission-show transmission-daemon aria2c opentracker tmux; do
  command -v "$tool" >/dev/null || { echo "install-peers: $tool still missing" >&2; exit 1; }
done
python3 -c 'import libtorrent; print("install-peers: libtorrent", libtorrent.__version__)'
