#!/usr/bin/env bash
# teamrelay's spool memory vs [memory] on a local redis-server, same smtp-source load
# (benches/memory.py). Needs smtp-source/smtp-sink (Postfix) and redis-server.
#   BENCH_RUNS=2 BENCH_MESSAGES=3000 BENCH_MESSAGES_SERIAL=400
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
command -v smtp-source >/dev/null || { echo "needs Postfix's smtp-source (benches/compare.sh installs it)"; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)"; exit 1; }
cargo build --release -q
ulimit -n 65536 2>/dev/null || true
python3 benches/memory.py
