#!/usr/bin/env bash
# The main job, end to end on one machine: builds rain, makes a payload and its torrent,
# seeds it with one `rain download --seed` and downloads it with another over 127.0.0.1,
# then checks the bytes. Usage: scripts/demo-download.sh [size-in-MiB, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-64}

cargo build --release --bin rain
rain=$PWD/target/release/rain
work=$(mktemp -d)
seeder_pid=""
cleanup() { [ -n "$seeder_pid" ] && kill "$seeder_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$work/seed" "$work/leech"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/seed/payload.bin"
"$rain" torrent create -f "$work/seed/payload.bin" -o "$work/payload.torrent"

# Loopback only: the DHT is off and the peer is given directly.
seed_port=$(free_port)
printf 'port-begin: %s\nport-end: %s\ndht-enabled: false\n' "$seed_port" "$((seed_port + 1))" > "$work/seed.yaml"
leech_port=$(free_port)
printf 'port-begin: %s\nport-end: %s\ndht-enabled: false\n' "$leech_port" "$((leech_port + 1))" > "$work/leech.yaml"

(cd "$work/seed" && exec "$rain" download -c ../seed.yaml -t ../payload.torrent --seed 2>/dev/null) &
seeder_pid=$!
# The seeder listens once it has checked its data; dialling earlier would only be refused
# and retried after a backoff.
for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$seed_port") 2>/dev/null && break
    sleep 0.1
done
start=$(date +%s.%N)
(cd "$work/leech" && timeout 600 "$rain" download -c ../leech.yaml -t ../payload.torrent --peer "127.0.0.1:$seed_port")
end=$(date +%s.%N)
cmp "$work/seed/payload.bin" "$work/leech/payload.bin"
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'downloaded {sys.argv[3]} MiB in {s:.2f} s ({float(sys.argv[3])/s:.0f} MiB/s), bytes identical')" "$start" "$end" "$size_mib"
