#!/usr/bin/env bash
# Loopback throughput benchmark: one payload, seeded by a real libtorrent on 127.0.0.1 and
# downloaded by rain (`rain download --peer`, release build), libtorrent, aria2 and
# Transmission; then the reverse, rain seeding (`rain download --seed`) to a libtorrent
# leecher. BENCH_RUNS rounds, each running every client once in turn; the table shows the
# median of each column over the runs that completed (a run that exceeds BENCH_TIMEOUT is
# abandoned and counted).
# Also measures this machine's single-core SHA-1 speed, the ceiling for piece hashing.
#
# Environment:
#   BENCH_SIZE_MIB   payload size in MiB (default 1024)
#   BENCH_PIECE_KIB  piece length in KiB (default 1024)
#   BENCH_RUNS       runs per transfer (default 3)
#   BENCH_TIMEOUT    seconds before one run is abandoned (default 600)
#   BENCH_CLIENTS    leechers to run (default "rain libtorrent aria2 transmission")
#   BENCH_REVERSE    1 to also run rain -> libtorrent (default 1)
#   RAIN_BIN         a rain binary to use instead of building target/release/rain
#   RAIN_BIN_B       a second rain binary, client "rain-b" in BENCH_CLIENTS: a before/after
#                    comparison run in the same rounds
#   BENCH_KEEP       1 to keep the work directory (logs) afterwards
#   BENCH_SETTLE     seconds to wait after sync before each run (default 10): on this VM the
#                    client right after another's run otherwise paid ~2 CPU s more
#   BENCH_PROC       1 to measure CPU and RSS from /proc even where /usr/bin/time exists
#   BENCH_RAIN_CONFIG  YAML lines added to every rain config, e.g. "prefer-plaintext: true"
#   BENCH_LT_PLAIN   1: the libtorrent leecher refuses MSE (pe_disabled both ways), so that a
#                    rain seeder, which picks RC4 whenever the dialer offers it, runs plaintext
#
# Prints progress on stderr and the markdown table on stdout. Everything listens on
# 127.0.0.1 only (no DHT, LSD, UPnP, NAT-PMP or uTP); every process started here is killed on
# exit. Clients that are not installed are skipped (scripts/install-peers.sh installs them).
#
# Metrics: wall time from starting the leecher until it has the complete payload (process exit
# for rain, libtorrent and aria2; Transmission's torrent-done script), so client start-up is
# included; CPU is user+sys seconds of the leecher process; peak RSS is its VmHWM; seeder CPU
# is the seeder's user+sys during the run and seeder peak RSS its VmHWM during the run.
# CPU and RSS come from GNU /usr/bin/time if present, else from sampling /proc every 0.1 s.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${BENCH_SIZE_MIB:-1024}
PIECE_KIB=${BENCH_PIECE_KIB:-1024}
RUNS=${BENCH_RUNS:-3}
TIMEOUT=${BENCH_TIMEOUT:-600}
CLIENTS=${BENCH_CLIENTS:-"rain libtorrent aria2 transmission"}
REVERSE=${BENCH_REVERSE:-1}
SETTLE=${BENCH_SETTLE:-10}

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

command -v python3 >/dev/null && python3 -c 'import libtorrent' 2>/dev/null \
  || die "python3 libtorrent is required (scripts/install-peers.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/rain-bench.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  exec 3>&- 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers

now() { date +%s.%N; }
tck=$(getconf CLK_TCK)

# A TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) until something listens on 127.0.0.1:$1.
wait_listen() {
  local i
  for i in $(seq 1 200); do
    if ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.05
  done
  return 1
}

# user+sys seconds of a live process.
cpu_of() {
  local rest
  rest=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  # After "pid (comm) ", utime and stime are the 12th and 13th fields.
  echo "$rest" | awk -v t="$tck" '{ printf "%.2f", ($12 + $13) / t }'
}

# Peak RSS (VmHWM) of a live process in KiB; `reset_hwm` restarts it from the current RSS.
hwm_of() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -f '%e' true 2>/dev/null && have_time=1
[ "${BENCH_PROC:-0}" = 1 ] && have_time=0

# Starts a measured command in the background: `launch STATS -- cmd...`. Sets LAUNCHED to
# the pid to wait for and CLIENT to the client's own pid. STATS gets "user sys maxrss_kib".
launch() {
  local stats=$1
  shift 2
  if [ "$have_time" = 1 ]; then
    # fd 3 (the seeder's stdin) stays with this script: the seeder exits when it closes.
    /usr/bin/time -f '%U %S %M' -o "$stats" "$@" 3>&- &
    LAUNCHED=$!
    pids+=("$LAUNCHED")
    CLIENT=""
    local i
    for i in $(seq 1 100); do
      CLIENT=$(pgrep -P "$LAUNCHED" | head -n 1 || true)
      [ -n "$CLIENT" ] && break
      sleep 0.01
    done
    [ -n "$CLIENT" ] || CLIENT=$LAUNCHED
    pids+=("$CLIENT")
  else
    "$@" 3>&- &
    LAUNCHED=$!
    CLIENT=$LAUNCHED
    pids+=("$LAUNCHED")
    sample "$CLIENT" "$stats" 3>&- &
    pids+=("$!")
  fi
}

# /proc sampler (no /usr/bin/time): the last user/sys and the highest VmHWM seen.
sample() {
  local pid=$1 out=$2 cpu="0 0" hwm=0 h rest
  while kill -0 "$pid" 2>/dev/null; do
    rest=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || break
    cpu=$(echo "$rest" | awk -v t="$tck" '{ printf "%.2f %.2f", $12 / t, $13 / t }')
    h=$(hwm_of "$pid")
    [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
    echo "$cpu $hwm" >"$out"
    sleep 0.1
  done
}

# Waits for a launched command (bounded by TIMEOUT from `start`); returns 1 on timeout, after
# killing the client (then its /usr/bin/time).
finish() {
  local pid=$1 start=$2
  while kill -0 "$pid" 2>/dev/null; do
    if awk -v s="$start" -v n="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(n - s > t) }'; then
      kill "$CLIENT" 2>/dev/null || true
      sleep 0.5
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.02
  done
  wait "$pid" 2>/dev/null || true
  return 0
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ------------------------------------------------------------------ payload and seeder

bytes=$((SIZE_MIB * 1024 * 1024))
mkdir -p "$work/seed"
log "work directory $work; payload $SIZE_MIB MiB, $PIECE_KIB KiB pieces, $RUNS run(s) each"
python3 -W ignore - "$work/seed/payload.bin" "$bytes" "$((PIECE_KIB * 1024))" "$work/t.torrent" <<'EOF'
import os, sys, libtorrent as lt
path, size, piece, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(path, "wb") as f:
    left = size
    while left:
        n = min(left, 1 << 20)
        f.write(os.urandom(n))
        left -= n
fs = lt.file_storage()
lt.add_files(fs, path)
t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(t, os.path.dirname(path))
open(out, "wb").write(lt.bencode(t.generate()))
EOF
torrent="$work/t.torrent"

# The libtorrent seeder: high_performance_seed settings, loopback only. It reads
# "connect <ip> <port>" lines on stdin (the seeder dials aria2 and Transmission, which take no
# peer address on their command line) and exits when stdin closes.
lt_seeder='
import sys, time, libtorrent as lt
torrent, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = lt.high_performance_seed()
st.update({"listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": False, "enable_lsd": False,
           "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
           "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True,
           "alert_mask": 0})
s = lt.session(st)
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
p.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
h = s.add_torrent(p)
while not h.status().is_seeding:
    time.sleep(0.05)
print("READY", flush=True)
for line in sys.stdin:
    w = line.split()
    if w and w[0] == "connect":
        h.connect_peer((w[1], int(w[2])))
'
# The libtorrent leecher: default settings, dials the seeder, exits once it seeds.
lt_leecher='
import sys, time, libtorrent as lt
torrent, save, port, peer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
st = {"listen_interfaces": "127.0.0.1:%d" % port, "enable_dht": False,
      "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
      "enable_outgoing_utp": False, "enable_incoming_utp": False,
      "allow_multiple_connections_per_ip": True, "alert_mask": 0}
if sys.argv[5] == "1":
    st.update({"out_enc_policy": 2, "in_enc_policy": 2})
s = lt.session(st)
p = lt.add_torrent_params()
p.ti = lt.torrent_info(torrent)
p.save_path = save
p.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
h = s.add_torrent(p)
h.connect_peer(("127.0.0.1", peer))
while not h.status().is_seeding:
    time.sleep(0.02)
'

seed_port=$(free_port)
mkfifo "$work/seeder.in"
python3 -c "$lt_seeder" "$torrent" "$work/seed" "$seed_port" <"$work/seeder.in" >"$work/seeder.out" 2>&1 &
seeder=$!
pids+=("$seeder")
exec 3>"$work/seeder.in"
for _ in $(seq 1 600); do grep -q READY "$work/seeder.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$work/seeder.out" || die "libtorrent seeder did not start: $(cat "$work/seeder.out")"
log "libtorrent seeder on 127.0.0.1:$seed_port"

# ------------------------------------------------------------------ rain

rain_bin=${RAIN_BIN:-}
if [[ " $CLIENTS " == *" rain "* || "$REVERSE" = 1 ]] && [ -z "$rain_bin" ]; then
  log "building rain (release)"
  cargo build --release -q -p rain-daemon --bin rain
  rain_bin="${CARGO_TARGET_DIR:-target}/release/rain"
fi
# Absolute: rain runs in each run's directory.
[ -z "$rain_bin" ] || rain_bin=$(realpath "$rain_bin")

# A rain config for loopback: host 127.0.0.1, one port, no DHT.
rain_config() {
  printf 'host: 127.0.0.1\nport-begin: %s\nport-end: %s\ndht-enabled: false\n' "$2" "$(($2 + 1))" >"$1"
  [ -z "${BENCH_RAIN_CONFIG:-}" ] || printf '%s\n' "$BENCH_RAIN_CONFIG" >>"$1"
}

# ------------------------------------------------------------------ one run per client

# Each run_<client> gets a fresh directory $1 and stats file $2, and sets WALL (or returns 1).
run_rain() { rain_leecher "$rain_bin" "$@"; }
run_rain-b() { rain_leecher "$(realpath "$RAIN_BIN_B")" "$@"; }

# $1 the rain binary, $2 the run directory, $3 the stats file.
rain_leecher() {
  local bin=$1 dir=$2 stats=$3 port start
  port=$(free_port)
  rain_config "$dir/rain.yaml" "$port"
  start=$(now)
  # rain download writes into its working directory.
  cd "$dir"
  launch "$stats" -- "$bin" download -c rain.yaml -t "$torrent" \
    --resume resume.db --peer "127.0.0.1:$seed_port" >rain.log 2>&1
  cd - >/dev/null
  finish "$LAUNCHED" "$start" || return 1
  WALL=$(awk -v s="$start" -v n="$(now)" 'BEGIN { print n - s }')
  cmp -s "$dir/payload.bin" "$work/seed/payload.bin"
}

run_libtorrent() {
  local dir=$1 stats=$2 start
  start=$(now)
  launch "$stats" -- python3 -c "$lt_leecher" "$torrent" "$dir" "$(free_port)" "$seed_port" \
    "${BENCH_LT_PLAIN:-0}"
  finish "$LAUNCHED" "$start" || return 1
  WALL=$(awk -v s="$start" -v n="$(now)" 'BEGIN { print n - s }')
  cmp -s "$dir/payload.bin" "$work/seed/payload.bin"
}

run_aria2() {
  local dir=$1 stats=$2 port start
  port=$(free_port)
  start=$(now)
  launch "$stats" -- aria2c --no-conf=true --enable-dht=false --enable-dht6=false \
    --bt-enable-lpd=false --enable-peer-exchange=false --disable-ipv6=true \
    --interface=127.0.0.1 --listen-port="$port" --seed-time=0 --file-allocation=none \
    --summary-interval=0 --console-log-level=warn --dir="$dir" "$torrent" >"$dir/aria2.log" 2>&1
  wait_listen "$port" || { log "aria2 did not listen"; return 1; }
  echo "connect 127.0.0.1 $port" >&3
  finish "$LAUNCHED" "$start" || return 1
  WALL=$(awk -v s="$start" -v n="$(now)" 'BEGIN { print n - s }')
  cmp -s "$dir/payload.bin" "$work/seed/payload.bin"
}

run_transmission() {
  local dir=$1 stats=$2 port rpc start
  port=$(free_port)
  rpc=$(free_port)
  mkdir -p "$dir/cfg"
  printf '#!/bin/sh\ntouch %s/done\n' "$dir" >"$dir/done.sh"
  chmod +x "$dir/done.sh"
  cat >"$dir/cfg/settings.json" <<EOF
{
  "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
  "peer-port": $port, "peer-port-random-on-start": false, "port-forwarding-enabled": false,
  "dht-enabled": false, "lpd-enabled": false, "utp-enabled": false, "pex-enabled": false,
  "rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": $rpc,
  "rpc-authentication-required": false, "rpc-whitelist-enabled": false,
  "download-dir": "$dir", "incomplete-dir-enabled": false, "rename-partial-files": false,
  "start-added-torrents": true,
  "script-torrent-done-enabled": true, "script-torrent-done-filename": "$dir/done.sh",
  "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
  "speed-limit-down-enabled": false, "speed-limit-up-enabled": false, "alt-speed-enabled": false,
  "preallocation": 1, "message-level": 1
}
EOF
  start=$(now)
  launch "$stats" -- transmission-daemon -f -g "$dir/cfg" >"$dir/transmission.log" 2>&1
  wait_listen "$port" || { log "Transmission did not listen"; return 1; }
  # Added over RPC before the seeder dials: Transmission drops connections for torrents it
  # does not have, and libtorrent then waits a minute before it dials again.
  local i
  for i in $(seq 1 100); do
    transmission-remote "$rpc" -a "$torrent" -w "$dir" >/dev/null 2>&1 && break
    sleep 0.05
  done
  echo "connect 127.0.0.1 $port" >&3
  while [ ! -e "$dir/done" ]; do
    if ! kill -0 "$LAUNCHED" 2>/dev/null \
      || awk -v s="$start" -v n="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(n - s > t) }'; then
      kill "$CLIENT" 2>/dev/null || true
      finish "$LAUNCHED" "$start" || true
      return 1
    fi
    sleep 0.02
  done
  WALL=$(awk -v s="$start" -v n="$(now)" 'BEGIN { print n - s }')
  kill "$CLIENT" 2>/dev/null || true
  finish "$LAUNCHED" "$(now)" || true
  cmp -s "$dir/payload.bin" "$work/seed/payload.bin"
}

available() {
  case $1 in
    rain) [ -x "$rain_bin" ] ;;
    rain-b) [ -x "${RAIN_BIN_B:-}" ] ;;
    libtorrent) true ;;
    aria2) command -v aria2c >/dev/null ;;
    transmission) command -v transmission-daemon >/dev/null ;;
  esac
}

rows=()
# Per transfer label: the space-separated figures of its completed runs, and its run count.
declare -A MIBS CPUS RSS SCPU SRSS TRIED

# Runs one transfer once; $1 label, $2 run function, $3 seeder pid, $4 run number.
bench_once() {
  local label=$1 fn=$2 spid=$3 i=$4 dir stats c0 s_cpu s_rss u sy m mib cpu
  dir="$work/run-$fn-$i"
  stats="$dir.stats"
  mkdir -p "$dir"
  sync
  sleep "$SETTLE"
  TRIED[$label]=$(( ${TRIED[$label]:-0} + 1 ))
  c0=$(cpu_of "$spid")
  reset_hwm "$spid"
  if ! "$fn" "$dir" "$stats"; then
    log "$label run $i failed (logs in $dir)"
    BENCH_KEEP=1
    return
  fi
  s_cpu=$(awk -v a="$c0" -v b="$(cpu_of "$spid")" 'BEGIN { printf "%.2f", b - a }')
  s_rss=$(( $(hwm_of "$spid") / 1024 ))
  read -r u sy m <"$stats"
  mib=$(awk -v w="$WALL" -v n="$SIZE_MIB" 'BEGIN { printf "%.1f", n / w }')
  cpu=$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')
  m=$((m / 1024))
  MIBS[$label]+=" $mib"; CPUS[$label]+=" $cpu"; RSS[$label]+=" $m"
  SCPU[$label]+=" $s_cpu"; SRSS[$label]+=" $s_rss"
  log "$label run $i: ${WALL}s, $mib MiB/s, leecher CPU ${cpu}s, RSS $m MiB, seeder CPU ${s_cpu}s, RSS $s_rss MiB"
  rm -rf "$dir"
}

# The table row of one transfer: medians over its completed runs.
row() {
  local label=$1 col
  local -a done=(${MIBS[$label]:-})
  if [ ${#done[@]} -eq 0 ]; then
    rows+=("| $label | 0/${TRIED[$label]:-0} | | | | | |")
    return
  fi
  local line="| $label | ${#done[@]}/${TRIED[$label]} |"
  for col in MIBS CPUS RSS SCPU SRSS; do
    local -n figures=$col
    line+=" $(printf '%s\n' ${figures[$label]} | median) |"
  done
  rows+=("$line")
}

# Rounds, not one client's runs in a row: a drift in the machine's state (page cache,
# writeback, a noisy neighbour) then weighs on every client alike.
present=()
for c in $CLIENTS; do
  if available "$c"; then
    present+=("$c")
  else
    log "skipping $c: not installed"
  fi
done
for i in $(seq 1 "$RUNS"); do
  for c in "${present[@]}"; do
    bench_once "libtorrent → $c" "run_$c" "$seeder" "$i"
  done
done
for c in $CLIENTS; do
  if available "$c"; then
    row "libtorrent → $c"
  else
    rows+=("| libtorrent → $c | not installed | | | | | |")
  fi
done

# ------------------------------------------------------------------ reverse: rain seeds

exec 3>&-
wait "$seeder" 2>/dev/null || true
if [ "$REVERSE" = 1 ]; then
  rain_port=$(free_port)
  rain_config "$work/rain-seed.yaml" "$rain_port"
  (cd "$work/seed" && exec "$rain_bin" download --seed -c "$work/rain-seed.yaml" -t "$torrent" \
    --resume "$work/rain-seed.db" >"$work/rain-seed.log" 2>&1) &
  rain_seeder=$!
  pids+=("$rain_seeder")
  for _ in $(seq 1 1200); do grep -q '^Seeding' "$work/rain-seed.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^Seeding' "$work/rain-seed.log" || die "rain seeder did not start: $(tail -3 "$work/rain-seed.log")"
  log "rain seeder on 127.0.0.1:$rain_port"
  seed_port=$rain_port
  for i in $(seq 1 "$RUNS"); do
    bench_once "rain → libtorrent" run_libtorrent "$rain_seeder" "$i"
  done
  row "rain → libtorrent"
  kill "$rain_seeder" 2>/dev/null || true
  wait "$rain_seeder" 2>/dev/null || true
fi

# ------------------------------------------------------------------ SHA-1 ceiling

sha1=$(openssl speed -seconds 3 -bytes 1048576 sha1 2>/dev/null | awk '$1 == "sha1" { v = $NF; sub("k", "", v); printf "%.0f", v * 1000 / 1048576 }' || true)
sha1_how="openssl speed sha1, 1 MiB blocks"
if [ -z "$sha1" ]; then
  sha1=$(python3 -c '
import hashlib, time
b = bytes(1 << 20); n = 0; t = time.perf_counter()
while time.perf_counter() - t < 3:
    hashlib.sha1(b).digest(); n += 1
print(round(n / (time.perf_counter() - t)))')
  sha1_how="python3 hashlib.sha1, 1 MiB blocks"
fi

# ------------------------------------------------------------------ report

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "Machine: $(nproc) cores${cpu_model:+, $cpu_model}; $(uname -sr)."
echo "Payload: $SIZE_MIB MiB in one file, $PIECE_KIB KiB pieces; medians over the completed runs of $RUNS; 127.0.0.1."
echo "SHA-1 single core: $sha1 MiB/s ($sha1_how)."
echo
echo "| Transfer (seeder → leecher) | Runs completed | MiB/s | Leecher CPU s (user+sys) | Leecher peak RSS MiB | Seeder CPU s | Seeder peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
