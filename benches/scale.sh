#!/usr/bin/env bash
# 10,000 idle connections and a 10,000 x 256 KiB spool churn; see benches/scale.py.
#   SCALE_CONNECTIONS=10000 SCALE_MESSAGES=10000
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
if ! command -v smtp-source >/dev/null; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
cargo build --release -q
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
python3 benches/scale.py
