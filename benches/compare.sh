#!/usr/bin/env bash
# teamrelay vs Postfix on loopback: installs Postfix (smtp-source, smtp-sink and the MTA
# itself) if missing, builds the release binary, runs benches/compare.py, prints one table.
#   BENCH_RUNS=2 BENCH_MESSAGES=3000 BENCH_MESSAGES_64K=800 BENCH_MESSAGES_SERIAL=400
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
[ -f /etc/postfix/main.cf ] || touch /etc/postfix/main.cf
cargo build --release -q
ulimit -n 65536 2>/dev/null || true
python3 benches/compare.py
