#!/usr/bin/env python3
"""teamrelay side by side with Postfix, on loopback, same load, alternating A/B runs.

Each relay gets the same job: a customer message to alice@example.com is relayed to a
sink, plus one archive copy to archive@example.com (teamrelay: an archive list;
Postfix: recipient_bcc_maps). Load comes from Postfix's smtp-source, mail goes to
Postfix's smtp-sink. Printed per workload: messages/s end to end (until every copy is
at the sink), p50/p99 DATA->250 latency seen by a probe client during the load, relay
CPU seconds per message, peak RSS, and the teamrelay/Postfix ratio.

Run through benches/compare.sh, which installs Postfix and builds the release binary.
Counts are small by default (2 cores, shared); raise them with the env vars below.
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "teamrelay")
RUNS = int(os.environ.get("BENCH_RUNS", "2"))
N_SMALL = int(os.environ.get("BENCH_MESSAGES", "3000"))
N_LARGE = int(os.environ.get("BENCH_MESSAGES_64K", "800"))
N_SERIAL = int(os.environ.get("BENCH_MESSAGES_SERIAL", "400"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Sink:
    """smtp-sink counting transactions (mesg=N on its -c output)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.log = open(os.path.join(workdir, f"sink-{self.port}.log"), "w+b")
        self.proc = subprocess.Popen(
            ["smtp-sink", "-c", "-u", "postfix", f"127.0.0.1:{self.port}", "1000"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def count(self):
        self.log.flush()
        self.log.seek(0)
        data = self.log.read()
        found = re.findall(rb"mesg=(\d+)", data[-200:])
        return int(found[-1]) if found else 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def proc_cpu(pid):
    """utime+stime (+ reaped children) in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11..14] = utime stime cutime cstime (0-based after the command)
    return sum(int(x) for x in fields[11:15]) / TICK


def proc_rss_kb(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TeamRelay:
    name = "teamrelay"

    def __init__(self, workdir, sink):
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="tr-")
        self.port = free_port()
        with open(os.path.join(self.dir, "lists.toml"), "w") as f:
            f.write(f"""
[server]
hostname = "relay.bench"
spool = "./spool"
max_connections = 20000
max_connections_per_ip = 20000
[team]
domains = ["example.com"]
[[listen]]
address = "127.0.0.1:{self.port}"
mode = "mx"
[deliver]
team = "smtp://127.0.0.1:{sink.port}"
outside = "smtp://127.0.0.1:{sink.port}"
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "archive@example.com"]
archive_of = ["*@example.com"]
""")
        self.proc = subprocess.Popen([BIN, "serve", "--config", os.path.join(self.dir, "lists.toml")],
                                     stderr=open(os.path.join(self.dir, "relay.log"), "w"),
                                     env=dict(os.environ, RUST_LOG="warn"))
        wait_port(self.port)
        # teamrelay sends the original and the copy as two transactions.
        self.transactions_per_message = 2

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def rss_kb(self):
        return proc_rss_kb(self.proc.pid)

    def peak_rss_kb(self):
        return proc_rss_kb(self.proc.pid, "VmHWM")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class Postfix:
    name = "postfix"

    def __init__(self, workdir, sink):
        self.dir = tempfile.mkdtemp(dir=workdir, prefix="pf-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        etc, queue, data = (os.path.join(self.dir, d) for d in ("etc", "queue", "data"))
        for d in (etc, queue, data):
            os.makedirs(d)
        shutil.chown(data, "postfix")
        shutil.copy("/etc/postfix/master.cf", etc)
        open(os.path.join(etc, "main.cf"), "w").close()
        with open(os.path.join(etc, "recipient_bcc"), "w") as f:
            f.write("@example.com archive@example.com\n")
        subprocess.run(["postmap", os.path.join(etc, "recipient_bcc")], check=True)
        settings = [
            f"queue_directory = {queue}", f"data_directory = {data}",
            f"maillog_file = {self.dir}/postfix.log", "maillog_file_prefixes = /tmp, /var",
            "myhostname = postfix.bench", "mydestination =", "inet_interfaces = loopback-only",
            "mynetworks = 127.0.0.0/8", "relay_domains = example.com",
            f"relayhost = [127.0.0.1]:{sink.port}", "smtp_dns_support_level = disabled",
            "smtpd_peername_lookup = no", "compatibility_level = 3.6",
            f"recipient_bcc_maps = hash:{etc}/recipient_bcc", "message_size_limit = 40000000",
            "smtp_tls_security_level = none", "smtpd_tls_security_level = none",
            f"alternate_config_directories = {etc}", "default_process_limit = 100",
        ]
        subprocess.run(["postconf", "-c", etc, "-e"] + settings, check=True)
        subprocess.run(["postconf", "-c", etc, "-MX", "smtp/inet"], check=False)
        subprocess.run(["postconf", "-c", etc, "-M",
                        f"127.0.0.1:{self.port}/inet=127.0.0.1:{self.port} inet n - y - - smtpd"], check=True)
        self.etc = etc
        current = subprocess.run(["postconf", "-h", "alternate_config_directories"],
                                 capture_output=True, text=True).stdout.strip()
        self.saved_alt = current
        subprocess.run(["postconf", "-e", "alternate_config_directories = " +
                        (current + ", " if current else "") + etc], check=True)
        subprocess.run(["postfix", "-c", etc, "start"], check=True, capture_output=True)
        wait_port(self.port)
        with open(os.path.join(queue, "pid", "master.pid")) as f:
            self.master = int(f.read().strip())
        # Postfix adds the Bcc as a second RCPT to the same next hop: one transaction.
        self.transactions_per_message = 1

    def pids(self):
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        kids = [int(p) for p, pp in (l.split() for l in out.splitlines()) if int(pp) == self.master]
        return [self.master] + kids

    def cpu(self):
        total = 0.0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                # The master's reaped children are in its cutime/cstime.
                total += sum(int(x) for x in fields[11:(15 if pid == self.master else 13)]) / TICK
            except OSError:
                pass
        return total

    def rss_kb(self):
        # Proportional set size: shared pages are split among the processes that map them,
        # so the sum is what the Postfix processes really cost (their RSS would count each
        # shared library once per process).
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def peak_rss_kb(self):
        return None  # sampled instead

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
        subprocess.run(["postconf", "-e", "alternate_config_directories = " + self.saved_alt])
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)


def probe_latency(port, stop, results, size=4096):
    """One client, serial messages: DATA end -> 250, in milliseconds."""
    body = b"Subject: probe\r\n\r\n" + (b"x" * 62 + b"\r\n") * (size // 64)
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), 10)
            f = s.makefile("rb")

            def reply():
                while True:
                    line = f.readline()
                    if not line or line[3:4] != b"-":
                        return line

            reply()
            for cmd in (b"EHLO probe\r\n", b"MAIL FROM:<probe@shop.example>\r\n", b"RCPT TO:<alice@example.com>\r\n", b"DATA\r\n"):
                s.sendall(cmd)
                reply()
            t = time.perf_counter()
            s.sendall(body + b".\r\n")
            if reply().startswith(b"250"):
                results.append((time.perf_counter() - t) * 1000)
            s.sendall(b"QUIT\r\n")
            s.close()
        except OSError:
            time.sleep(0.01)


def run_load(relay, sink, n, sessions, size, rcpts, probe=True):
    """Drives one load; returns (msgs/s, p50, p99, cpu ms/msg, peak rss MiB)."""
    base = sink.count()
    cpu0 = relay.cpu()
    lat, stop = [], threading.Event()
    prober = threading.Thread(target=probe_latency, args=(relay.port, stop, lat, size)) if probe else None
    peak = [relay.rss_kb()]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], relay.rss_kb())
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    if prober:
        prober.start()
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(n), "-l", str(size), "-f", "customer@shop.example",
           "-t", "alice@example.com", f"127.0.0.1:{relay.port}"]
    if rcpts > 1:
        cmd[1:1] = ["-r", str(rcpts)]
    subprocess.run(cmd, check=True)
    stop.set()
    if prober:
        prober.join()
    probes = len(lat)
    want = base + (n + probes) * relay.transactions_per_message
    deadline = time.time() + 300
    while sink.count() < want and time.time() < deadline:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    sampling.set()
    sampler.join()
    done = sink.count() - base
    cpu = relay.cpu() - cpu0
    msgs = done / relay.transactions_per_message
    lat.sort()
    p50 = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    hwm = relay.peak_rss_kb()
    rss = max(peak[0], hwm or 0)
    return msgs / elapsed, p50, p99, cpu / max(msgs, 1) * 1000, rss / 1024


def big_message(relay, sink, size=35_000_000):
    """Extra RSS while relaying one message of `size` bytes."""
    time.sleep(0.5)
    idle = relay.rss_kb()
    peak = [idle]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], relay.rss_kb())
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    base = sink.count()
    subprocess.run(["smtp-source", "-s", "1", "-m", "1", "-l", str(size), "-f", "customer@shop.example",
                    "-t", "alice@example.com", f"127.0.0.1:{relay.port}"], check=True)
    deadline = time.time() + 120
    while sink.count() < base + relay.transactions_per_message and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join()
    hwm = relay.peak_rss_kb()
    top = max(peak[0], hwm or 0)
    return (top - idle) / 1024


WORKLOADS = [
    ("4 KiB x 20 sessions", dict(n=N_SMALL, sessions=20, size=4096, rcpts=1)),
    ("64 KiB x 20 sessions", dict(n=N_LARGE, sessions=20, size=65536, rcpts=1)),
    ("4 KiB x 5 recipients", dict(n=N_SMALL // 2, sessions=20, size=4096, rcpts=5)),
    ("1 session, serial", dict(n=N_SERIAL, sessions=1, size=4096, rcpts=1)),
]


def main():
    workdir = tempfile.mkdtemp(prefix="teamrelay-bench-")
    os.chmod(workdir, 0o755)
    rows = []
    try:
        for name, load in WORKLOADS:
            results = {"teamrelay": [], "postfix": []}
            for run in range(RUNS):
                for kind in (TeamRelay, Postfix) if run % 2 == 0 else (Postfix, TeamRelay):
                    sink = Sink(workdir)
                    relay = kind(workdir, sink)
                    try:
                        results[kind.name].append(run_load(relay, sink, **load, probe=load["sessions"] > 1))
                    finally:
                        relay.stop()
                        sink.stop()
                    print(f"  {name}: {kind.name} run {run + 1}: {results[kind.name][-1][0]:.0f} msg/s", file=sys.stderr)
            rows.append((name, results))
        big = {}
        for kind in (TeamRelay, Postfix):
            sink = Sink(workdir)
            relay = kind(workdir, sink)
            try:
                big[kind.name] = big_message(relay, sink)
            finally:
                relay.stop()
                sink.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    metrics = ["messages/s", "p50 DATA->250 ms", "p99 DATA->250 ms", "CPU ms/message", "peak memory MiB"]
    print(f"{'workload':24} {'metric':18} {'teamrelay':>10} {'postfix':>10} {'ratio':>7}")
    for name, results in rows:
        for i, metric in enumerate(metrics):
            t = statistics.median(r[i] for r in results["teamrelay"])
            p = statistics.median(r[i] for r in results["postfix"])
            if metric.startswith("p") and "ms" in metric and name.startswith("1 session"):
                continue
            ratio = t / p if p and p == p and t == t else float("nan")
            print(f"{name:24} {metric:18} {t:10.2f} {p:10.2f} {ratio:7.2f}")
    t, p = big["teamrelay"], big["postfix"]
    print(f"{'35 MB message':24} {'extra RSS MiB':18} {t:10.2f} {p:10.2f} {t / p if p else float('nan'):7.2f}")


if __name__ == "__main__":
    main()
