#!/usr/bin/env python3
"""teamrelay with the spool memory and with `[memory]` on a local redis-server, side by
side: the same smtp-source load as benches/compare.py (a customer message to alice plus
one archive copy), alternating runs, messages/s and DATA->250 latency per backend.

Run through benches/memory.sh. Small counts by default; raise BENCH_MESSAGES etc.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the shared load driver, sink and relay wrapper)


class Redis:
    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="redis-")
        self.port = compare.free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        compare.wait_port(self.port)

    def flush(self):
        """Empties the team memory: every run starts from nothing, as a spool run does
        (smtp-source's Message-IDs repeat across runs started close together, and the
        relay rightly skips recipients that already have a message)."""
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            if not s.recv(64).startswith(b"+OK"):
                raise RuntimeError("redis FLUSHALL failed")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class SpoolMemory(compare.TeamRelay):
    name = "spool"


class RedisMemory(compare.TeamRelay):
    name = "redis"
    url = None

    def __init__(self, workdir, sink):
        super().__init__(workdir, sink)
        # Restart on the same spool with [memory] added.
        self.proc.terminate()
        self.proc.wait(timeout=60)
        path = os.path.join(self.dir, "lists.toml")
        with open(path, "a") as f:
            f.write(f'\n[memory]\nurl = "{RedisMemory.url}"\n')
        self.proc = subprocess.Popen([compare.BIN, "serve", "--config", path],
                                     stderr=open(os.path.join(self.dir, "relay.log"), "a"),
                                     env=dict(os.environ, RUST_LOG="warn"))
        compare.wait_port(self.port)


def main():
    workdir = tempfile.mkdtemp(prefix="teamrelay-membench-")
    redis = Redis(workdir)
    RedisMemory.url = f"redis://127.0.0.1:{redis.port}/0"
    loads = [w for w in compare.WORKLOADS if w[0].startswith(("4 KiB x 20", "1 session"))]
    rows = []
    try:
        for name, load in loads:
            results = {"spool": [], "redis": []}
            for run in range(compare.RUNS):
                kinds = (SpoolMemory, RedisMemory) if run % 2 == 0 else (RedisMemory, SpoolMemory)
                for kind in kinds:
                    redis.flush()
                    sink = compare.Sink(workdir)
                    relay = kind(workdir, sink)
                    try:
                        results[kind.name].append(compare.run_load(relay, sink, **load, probe=load["sessions"] > 1))
                    finally:
                        relay.stop()
                        sink.stop()
                    print(f"  {name}: {kind.name} run {run + 1}: {results[kind.name][-1][0]:.0f} msg/s", file=sys.stderr)
            rows.append((name, results))
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'workload':24} {'metric':18} {'spool':>10} {'redis':>10} {'ratio':>7}")
    for name, results in rows:
        for i, metric in enumerate(["messages/s", "p50 DATA->250 ms", "p99 DATA->250 ms", "CPU ms/message"]):
            if metric.startswith("p") and name.startswith("1 session"):
                continue
            s = statistics.median(r[i] for r in results["spool"])
            r = statistics.median(r[i] for r in results["redis"])
            ratio = r / s if s and s == s and r == r else float("nan")
            print(f"{name:24} {metric:18} {s:10.2f} {r:10.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
