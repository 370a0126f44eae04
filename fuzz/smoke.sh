#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 20) on its committed corpus.
# Exits non-zero on the first crash. Works on stable Rust via RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"
for target in smtp_session data_reader address config route; do
  mkdir -p "corpus/$target"
  # Work on a copy so a smoke run does not grow the committed corpus.
  work="$(mktemp -d)"
  cp -r "corpus/$target/." "$work/"
  echo "fuzz: $target for ${seconds}s"
  status=0
  cargo fuzz run -s none "$target" "$work" -- -max_total_time="$seconds" -rss_limit_mb=2048 -seed="${FUZZ_SEED:-1}" >"$work.log" 2>&1 || status=$?
  grep -E "^(Done|==|SUMMARY|thread|error)|panicked|failed to build" "$work.log" | head -20 || true
  rm -rf "$work" "$work.log"
  if [ "$status" != 0 ]; then
    echo "fuzz: $target FAILED (see fuzz/artifacts/$target)"
    exit 1
  fi
done
rm -rf /dev/shm/teamrelay-fuzz-* 2>/dev/null || true
echo "fuzz: all targets ran without a crash"
