#!/usr/bin/env python3
"""Customer history at scale (SPEC §8, issue 12's targets), on loopback.

Starts the release `teamrelay serve` with [history] and Maildir delivery, sends
HIST_MESSAGES customer conversations (2-20 KiB, realistic headers, HIST_CUSTOMERS
customers, replies threaded with In-Reply-To/References) over SMTP from a few parallel
clients, then measures:

- `history show ADDR --json` p50/p90 (the CLI through the running server);
- a two-word `history search` p50/p90;
- the web customer page p50/p90 (logged in, keep-alive);
- relay CPU per message with [history] on and off (the same load, 4 KiB messages),
  and messages/s on and off;
- disk: SPOOL/history against the bytes kept.

Targets (issue 12, for 100,000 messages): show p50 < 50 ms, search p50 < 200 ms,
web page p50 < 50 ms, extra CPU < 0.2 ms/message, throughput within 10%, disk <= 1.5x.
Run through benches/history.sh. Defaults are the issue's sizes; use
HIST_MESSAGES=5000 HIST_CUSTOMERS=250 on a shared machine.
"""

import http.client
import os
import random
import shutil
import smtplib
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "teamrelay")
N = int(os.environ.get("HIST_MESSAGES", "100000"))
CUSTOMERS = int(os.environ.get("HIST_CUSTOMERS", "5000"))
CLIENTS = int(os.environ.get("HIST_CLIENTS", "8"))
N_CPU = int(os.environ.get("HIST_CPU_MESSAGES", "2000"))
PROBES = int(os.environ.get("HIST_PROBES", "40"))
TICK = os.sysconf("SC_CLK_TCK")
WORDS = ("discount invoice delivery chairs tables quote order payment refund warranty "
         "shipping pallet price offer contract renewal meeting support question thanks "
         "colour oak walnut steel office school hotel restaurant budget deadline").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def password_hash(pw):
    return subprocess.run([BIN, "passwd"], input=pw + "\n", capture_output=True,
                          text=True, check=True).stdout.strip()


def config(work, history, mx, relay, web, hash_):
    hist = f'\n[history]\nlisten = "127.0.0.1:{web}"\n' if history else ""
    return f"""
[server]
hostname = "relay.bench"
spool = "{work}/spool"
max_recipients = 100
[team]
domains = ["example.com"]
[[listen]]
address = "127.0.0.1:{mx}"
mode = "mx"
[[listen]]
address = "127.0.0.1:{relay}"
mode = "relay"
allow = ["127.0.0.0/8"]
[[user]]
name = "alice"
password_hash = "{hash_}"
addresses = ["alice@example.com"]
[deliver]
team = "maildir://{work}/mail"
outside = "maildir://{work}/mail"
[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com"]
archive_of = ["*@example.com"]
{hist}"""


class Relay:
    def __init__(self, history, hash_):
        self.work = tempfile.mkdtemp(prefix="hist-bench-")
        self.mx, self.relay, self.web = free_port(), free_port(), free_port()
        path = os.path.join(self.work, "lists.toml")
        with open(path, "w") as f:
            f.write(config(self.work, history, self.mx, self.relay, self.web, hash_))
        self.config = path
        self.log = open(os.path.join(self.work, "relay.log"), "w")
        self.proc = subprocess.Popen([BIN, "serve", "--config", path], stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="warn"))
        wait_port(self.mx)
        wait_port(self.relay)
        if history:
            wait_port(self.web)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.work, ignore_errors=True)


def body(rng, size):
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        out.append(line)
        n += len(line) + 2
    return "\r\n".join(out)


def messages(n, customers, size_range, seed=1):
    """(port name, sender, recipients, bytes): conversations of 2-6 messages."""
    rng = random.Random(seed)
    out = []
    conv = 0
    while len(out) < n:
        conv += 1
        cus = f"customer{rng.randrange(customers)}@shop{rng.randrange(max(1, customers // 20))}.example"
        teammate = rng.choice(["alice", "bob", "carol"]) + "@example.com"
        subject = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{conv}"
        ids = []
        for i in range(rng.randrange(2, 7)):
            inbound = i % 2 == 0
            mid = f"<c{conv}.{i}@{'shop.example' if inbound else 'example.com'}>"
            frm, to = (cus, "sales@example.com") if inbound else (teammate, cus)
            refs = (f"In-Reply-To: {ids[-1]}\r\nReferences: {' '.join(ids)}\r\n" if ids else "")
            size = rng.randrange(*size_range)
            head = (f"Return-Path: <{frm}>\r\nReceived: from mail.shop.example by mx.example.com; "
                    f"Tue, 1 Dec 2026 10:00:00 +0000\r\nFrom: <{frm}>\r\nTo: <{to}>\r\n"
                    f"Subject: {'Re: ' if i else ''}{subject}\r\nMessage-ID: {mid}\r\n{refs}"
                    f"Date: Tue, 1 Dec 2026 10:{i:02d}:00 +0000\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\nUser-Agent: bench/1.0\r\n\r\n")
            data = (head + body(rng, max(0, size - len(head)))).encode() + b"\r\n"
            out.append(("mx" if inbound else "relay", frm, [to], data))
            ids.append(mid)
            if len(out) >= n:
                break
    return out


def send_all(relay, msgs):
    """Sends with CLIENTS parallel connections; returns seconds."""
    chunks = [msgs[i::CLIENTS] for i in range(CLIENTS)]
    errors = []

    def worker(chunk):
        conns = {}
        try:
            for port, frm, to, data in chunk:
                if port not in conns:
                    conns[port] = smtplib.SMTP("127.0.0.1", relay.mx if port == "mx" else relay.relay)
                conns[port].sendmail(frm, to, data)
            for c in conns.values():
                c.quit()
        except Exception as e:
            errors.append(e)

    start = time.time()
    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.time() - start


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def timed(f, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def cli(relay, *args):
    subprocess.run([BIN, "history", "--config", relay.config, *args], check=True,
                   stdout=subprocess.DEVNULL)


def web_session(relay):
    c = http.client.HTTPConnection("127.0.0.1", relay.web)
    c.request("POST", "/login", "name=alice&password=bench",
              {"Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie").split(";")[0]
    return c, cookie


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def cpu_run(history, hash_, msgs):
    relay = Relay(history, hash_)
    try:
        before = cpu(relay.proc.pid)
        secs = send_all(relay, msgs)
        time.sleep(1.5)  # the index commit and the deliveries finish
        return (cpu(relay.proc.pid) - before) / len(msgs) * 1000, len(msgs) / secs
    finally:
        relay.stop()


def main():
    hash_ = password_hash("bench")
    print(f"history benchmark: {N} messages, {CUSTOMERS} customers, {CLIENTS} clients")
    msgs = messages(N, CUSTOMERS, (2048, 20481))
    kept_bytes = sum(len(m[3]) for m in msgs)
    relay = Relay(True, hash_)
    try:
        secs = send_all(relay, msgs)
        print(f"  loaded in {secs:.1f} s ({N / secs:.0f} messages/s), {kept_bytes / 1e6:.1f} MB kept")
        rng = random.Random(7)
        customers = sorted({m[1] if m[0] == "mx" else m[2][0] for m in msgs})
        cli(relay, "show", customers[0], "--json")  # the first read commits the index
        show = timed(lambda: cli(relay, "show", rng.choice(customers), "--json"), PROBES)
        search = timed(lambda: cli(relay, "search", rng.choice(WORDS), rng.choice(WORDS), "--json"), PROBES)
        c, cookie = web_session(relay)

        def page():
            c.request("GET", "/customer/" + urllib.parse.quote(rng.choice(customers)), headers={"Cookie": cookie})
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
        web = timed(page, PROBES)
        disk = du(os.path.join(relay.work, "spool", "history"))
    finally:
        relay.stop()
    small = messages(N_CPU, max(1, N_CPU // 20), (4096, 4097), seed=3)
    # Alternating off/on runs, medians: the machine's other load drifts over time.
    runs = {False: [], True: []}
    for _ in range(int(os.environ.get("HIST_CPU_RUNS", "2"))):
        for on in (False, True):
            runs[on].append(cpu_run(on, hash_, small))
    off_cpu, off_rate = (statistics.median(x) for x in zip(*runs[False]))
    on_cpu, on_rate = (statistics.median(x) for x in zip(*runs[True]))
    rows = [
        ("history show p50 / p90 (CLI, ms)", f"{pct(show, .5):.1f} / {pct(show, .9):.1f}", "p50 < 50"),
        ("two-word search p50 / p90 (CLI, ms)", f"{pct(search, .5):.1f} / {pct(search, .9):.1f}", "p50 < 200"),
        ("web customer page p50 / p90 (ms)", f"{pct(web, .5):.1f} / {pct(web, .9):.1f}", "p50 < 50"),
        ("relay CPU ms/message, history off / on", f"{off_cpu:.3f} / {on_cpu:.3f} (+{on_cpu - off_cpu:.3f})", "+ < 0.2"),
        ("4 KiB messages/s, history off / on", f"{off_rate:.0f} / {on_rate:.0f} ({(on_rate / off_rate - 1) * 100:+.1f}%)", "within 10%"),
        ("disk: history dir / kept bytes", f"{disk / 1e6:.1f} MB / {kept_bytes / 1e6:.1f} MB = {disk / kept_bytes:.2f}x", "<= 1.5x"),
    ]
    w = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name:<{w}}  {value:<34} target {target}")


if __name__ == "__main__":
    main()
