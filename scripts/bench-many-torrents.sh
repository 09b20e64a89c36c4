#!/usr/bin/env bash
# raind seeding many small torrents: RSS, open files, threads and start-up time after a
# restart (issue #10). Everything on 127.0.0.1, DHT off.
# Usage: scripts/bench-many-torrents.sh [torrents, default 1000] [KiB per torrent, default 16]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin rain --bin raind
exec python3 scripts/bench-many-torrents.py "$PWD/target/release/rain" "$PWD/target/release/raind" "$@"
