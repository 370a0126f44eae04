#!/usr/bin/env python3
"""Scale: 10,000 idle connections (RSS, and whether a new session is still served), and
the spool's disk use after 10,000 messages of 256 KiB have passed through.
Run through benches/scale.sh."""

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import BIN, Sink, free_port, proc_rss_kb, wait_port  # noqa: E402

IDLE = int(os.environ.get("SCALE_CONNECTIONS", "10000"))
CHURN = int(os.environ.get("SCALE_MESSAGES", "10000"))


def du(path):
    return int(subprocess.run(["du", "-sk", path], capture_output=True, text=True).stdout.split()[0])


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="teamrelay-scale-")
    sink = Sink(work)
    port = free_port()
    with open(os.path.join(work, "lists.toml"), "w") as f:
        f.write(f"""
[server]
hostname = "relay.scale"
spool = "./spool"
max_connections = 20000
max_connections_per_ip = 20000
idle_timeout = "10m"
[team]
domains = ["example.com"]
[[listen]]
address = "127.0.0.1:{port}"
mode = "mx"
[deliver]
team = "smtp://127.0.0.1:{sink.port}"
outside = "smtp://127.0.0.1:{sink.port}"
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "archive@example.com"]
archive_of = ["*@example.com"]
""")
    relay = subprocess.Popen([BIN, "serve", "--config", os.path.join(work, "lists.toml")],
                             stderr=open(os.path.join(work, "relay.log"), "w"), env=dict(os.environ, RUST_LOG="warn"))
    try:
        wait_port(port)
        base_rss = proc_rss_kb(relay.pid)
        socks = []
        for _ in range(IDLE):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        greeted, pending = 0, list(socks)
        deadline = time.time() + 30
        while pending and time.time() < deadline:
            waiting = []
            for s in pending:
                try:
                    if s.recv(100).startswith(b"220"):
                        greeted += 1
                except (BlockingIOError, ConnectionError, OSError) as e:
                    # Still connecting (ENOTCONN) or no greeting yet (EAGAIN).
                    if isinstance(e, BlockingIOError) or getattr(e, "errno", None) in (11, 107):
                        waiting.append(s)
            pending = waiting
            time.sleep(0.2)
        rss = proc_rss_kb(relay.pid)
        t = time.perf_counter()
        r = subprocess.run(["smtp-source", "-s", "1", "-m", "1", "-f", "customer@shop.example",
                            "-t", "alice@example.com", f"127.0.0.1:{port}"])
        served = r.returncode == 0
        new_session_ms = (time.perf_counter() - t) * 1000
        for s in socks:
            s.close()
        print(f"idle connections         {greeted} of {IDLE} greeted")
        print(f"RSS idle -> with them     {base_rss / 1024:.1f} MiB -> {rss / 1024:.1f} MiB")
        print(f"new session while held   {'served' if served else 'NOT served'} in {new_session_ms:.0f} ms")

        time.sleep(1)
        spool = os.path.join(work, "spool")
        start_count = sink.count()
        t = time.perf_counter()
        subprocess.run(["smtp-source", "-s", "20", "-m", str(CHURN), "-l", str(256 * 1024), "-f", "customer@shop.example",
                        "-t", "alice@example.com", f"127.0.0.1:{port}"], check=True)
        peak, peak_ratio = 0, 0.0
        deadline = time.time() + 600
        while sink.count() < start_count + 2 * CHURN and time.time() < deadline:
            # Stored bodies: their own files (large) and the segments (small ones, and
            # every record until the next checkpoint retires them).
            total = du(spool)
            live = du(os.path.join(spool, "bodies")) + du(os.path.join(spool, "segments"))
            peak = max(peak, total)
            if live > 10 * 1024:
                peak_ratio = max(peak_ratio, total / live)
            time.sleep(0.5)
        elapsed = time.perf_counter() - t
        time.sleep(1)
        after = du(spool)
        db = du(os.path.join(spool, "db"))
        print(f"churn                    {CHURN} x 256 KiB in {elapsed:.1f} s ({CHURN / elapsed:.0f} msg/s)")
        print(f"spool peak during churn  {peak / 1024:.1f} MiB; at most {peak_ratio:.2f}x the live bodies at that moment")
        print(f"spool after churn        {after / 1024:.1f} MiB (sled records {db / 1024:.1f} MiB; bodies are files, deleted once delivered)")

        # Small messages live in segments: they must be retired once delivered.
        start_count = sink.count()
        t = time.perf_counter()
        load = subprocess.Popen(["smtp-source", "-s", "20", "-m", str(CHURN), "-l", "4096", "-f", "customer@shop.example",
                                 "-t", "alice@example.com", f"127.0.0.1:{port}"])
        seg_peak = 0
        deadline = time.time() + 600
        while (load.poll() is None or sink.count() < start_count + 2 * CHURN) and time.time() < deadline:
            seg_peak = max(seg_peak, du(os.path.join(spool, "segments")))
            time.sleep(0.2)
        load.wait()
        elapsed = time.perf_counter() - t
        time.sleep(3)
        segs = du(os.path.join(spool, "segments"))
        print(f"small churn              {CHURN} x 4 KiB in {elapsed:.1f} s ({CHURN / elapsed:.0f} msg/s)")
        print(f"segments during / after  {seg_peak / 1024:.1f} MiB peak -> {segs / 1024:.1f} MiB (retired once their messages are delivered)")
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=60)
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
