#!/usr/bin/env bash
# Customer history at scale: builds the release binary and runs benches/history.py,
# which prints one table against issue 12's targets. Defaults are the issue's sizes
# (100,000 messages, 5,000 customers: minutes); on a shared machine use e.g.
#   HIST_MESSAGES=5000 HIST_CUSTOMERS=250 bash benches/history.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
ulimit -n 65536 2>/dev/null || true
python3 benches/history.py
