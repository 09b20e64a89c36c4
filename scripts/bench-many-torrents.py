#!/usr/bin/env python3
"""raind with many small torrents, seeding (issue #10, "Many torrents").

Creates N payload files (16 KiB each by default) and their torrents, starts raind with the
DHT off and everything on 127.0.0.1, adds the torrents over JSON-RPC, waits until every one
is seeding, then restarts raind and measures how long it takes until every torrent is
seeding again. Reports, after the first load and after the restart: raind's RSS (current
and peak), open file descriptors, threads, listening sockets, and the times.

Usage: scripts/bench-many-torrents.py RAIN RAIND [N] [FILE_KIB]
(scripts/bench-many-torrents.sh builds the release binaries and calls this.)
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Rpc:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}/"
        self.next_id = 0

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        body = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            body["params"] = params
        req = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            reply = json.load(r)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def listening_ports(pid):
    """TCP sockets of `pid` in LISTEN state (inode match against /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def measure(pid):
    st = proc_status(pid)
    return {
        "rss_mib": int(st["VmRSS"].split()[0]) / 1024,
        "peak_rss_mib": int(st["VmHWM"].split()[0]) / 1024,
        "threads": int(st["Threads"]),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
        "listening": listening_ports(pid),
    }


def wait_rpc(rpc, proc, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"raind exited with {proc.returncode}")
        try:
            return rpc.call("Session.Version", timeout=2)
        except OSError:
            time.sleep(0.05)
    sys.exit("raind's RPC did not answer within 60 s")


def wait_all_seeding(rpc, ids, limit):
    """Polls every torrent's status until all are Seeding; returns the seconds it took."""
    start = time.monotonic()
    pending = set(ids)
    while pending:
        if time.monotonic() - start > limit:
            sys.exit(f"{len(pending)} torrents not seeding after {limit} s")
        for i in list(pending):
            st = rpc.call("Session.GetTorrentStats", {"ID": i})["Stats"]
            if st["Status"] == "Seeding":
                pending.discard(i)
        if pending:
            time.sleep(0.2)
    return time.monotonic() - start


def main():
    rain, raind = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    kib = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    work = tempfile.mkdtemp(prefix="rain-many-")
    proc = None
    try:
        data = os.path.join(work, "data")
        tdir = os.path.join(work, "torrents")
        os.makedirs(data)
        os.makedirs(tdir)
        t0 = time.monotonic()
        for i in range(n):
            name = f"f{i:05}.bin"
            with open(os.path.join(data, name), "wb") as f:
                f.write(os.urandom(kib * 1024))
            subprocess.run(
                [rain, "torrent", "create", "-f", os.path.join(data, name),
                 "-o", os.path.join(tdir, name + ".torrent")],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        print(f"created {n} torrents of {kib} KiB in {time.monotonic() - t0:.1f} s")

        rpc_port = free_port()
        config = os.path.join(work, "config.yaml")
        with open(config, "w") as f:
            f.write(
                f"database: {work}/session.db\n"
                f"data-dir: {data}\n"
                "data-dir-includes-torrent-id: false\n"
                "rpc-host: 127.0.0.1\n"
                f"rpc-port: {rpc_port}\n"
                # Below Linux's ephemeral range (32768-60999): a port some outgoing
                # connection holds would leave its torrent without a listener (as in rain).
                "port-begin: 20000\n"
                f"port-end: {20000 + n + 1000}\n"
                "dht-enabled: false\n"
                f"max-open-files: {4 * n + 1024}\n"
            )
        log = open(os.path.join(work, "raind.log"), "w")

        def start():
            return subprocess.Popen([raind, "--config", config], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL)

        rpc = Rpc(rpc_port)
        proc = start()
        wait_rpc(rpc, proc)
        t0 = time.monotonic()
        ids = []
        for name in sorted(os.listdir(tdir)):
            with open(os.path.join(tdir, name), "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            r = rpc.call("Session.AddTorrent", {"Torrent": b64, "ID": "", "Stopped": False,
                                                "StopAfterDownload": False,
                                                "StopAfterMetadata": False})
            ids.append(r["Torrent"]["ID"])
        added = time.monotonic() - t0
        seeding = wait_all_seeding(rpc, ids, 600)
        time.sleep(2)
        first = measure(proc.pid)
        print(f"first load: added {n} in {added:.2f} s, all seeding {seeding:.2f} s later")

        proc.terminate()
        proc.wait(timeout=60)
        t0 = time.monotonic()
        proc = start()
        wait_rpc(rpc, proc)
        rpc_up = time.monotonic() - t0
        count = rpc.call("Session.GetSessionStats")["Stats"]["Torrents"]
        if count != n:
            sys.exit(f"after restart raind has {count} torrents, expected {n}")
        seeding = wait_all_seeding(rpc, ids, 600)
        restart_total = time.monotonic() - t0
        busy = measure(proc.pid)
        # tokio's blocking threads (one per start-up check) exit after 10 s idle.
        time.sleep(12)
        second = measure(proc.pid)
        print(f"restart: RPC up in {rpc_up:.2f} s, all {n} seeding after {restart_total:.2f} s")

        print()
        print("| | RSS MiB | peak RSS MiB | open fds | threads | listening sockets |")
        print("|---|---|---|---|---|---|")
        for label, m in (("after adding", first), ("just after restart", busy),
                         ("12 s after restart", second)):
            print(f"| {label} | {m['rss_mib']:.1f} | {m['peak_rss_mib']:.1f} | "
                  f"{m['open_fds']} | {m['threads']} | {m['listening']} |")
        if second["listening"] < n:
            sys.exit(f"only {second['listening']} of {n} torrents listen after restart")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
