#!/usr/bin/env bash
# Interop with a real MTA: Postfix's own smtp client hands a customer message to
# teamrelay's MX listener, and teamrelay delivers to Postfix's smtp-sink. Checks that
# the sink holds the original for alice and the archive copy for bob, both intact.
# Installs Postfix if missing (Debian). Everything on 127.0.0.1; processes stopped by PID.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
# TEAMRELAY_BIN: the binary to test (CI passes the debug build it already has).
bin="${TEAMRELAY_BIN:-$top/target/release/teamrelay}"

if ! command -v smtp-sink >/dev/null || ! command -v postfix >/dev/null; then
  export PATH="$PATH:/usr/sbin"
fi
if ! command -v smtp-sink >/dev/null || ! command -v postfix >/dev/null; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
  export PATH="$PATH:/usr/sbin"
fi
[ -x "$bin" ] || (cd "$top" && cargo build --release -q)

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MX=$(free_port); SINK=$(free_port); LMTP=$(free_port)
pids=()
pfx="$work/postfix"
restore_default() { :; }
cleanup() {
  postfix -c "$pfx/etc" stop >/dev/null 2>&1 || true
  restore_default
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The upstream: Postfix's smtp-sink, dumping each transaction to a file.
mkdir -p "$work/sink" && chown postfix "$work/sink" 2>/dev/null || chmod 777 "$work/sink"
smtp-sink -u postfix -d "$work/sink/%Y%m%d%H%M%S." "127.0.0.1:$SINK" 100 &
pids+=($!)

# teamrelay between them.
cat >"$work/lists.toml" <<TOML
[server]
hostname = "relay.interop.test"
spool = "$work/spool"
[team]
domains = ["example.com"]
[[listen]]
address = "127.0.0.1:$MX"
mode = "mx"
[[listen]]
address = "127.0.0.1:$LMTP"
mode = "mx"
protocol = "lmtp"
[deliver]
team = "smtp://127.0.0.1:$SINK"
outside = "smtp://127.0.0.1:$SINK"
retry = ["1s"]
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com"]
archive_of = ["*@example.com"]
TOML
"$bin" serve --config "$work/lists.toml" 2>"$work/relay.log" &
pids+=($!)

# A private Postfix instance whose relayhost is teamrelay.
mkdir -p "$pfx/etc" "$pfx/queue" "$pfx/data"
chmod 755 "$work"; chown postfix "$pfx/data"
cp /etc/postfix/master.cf "$pfx/etc/" 2>/dev/null || cp /usr/share/postfix/master.cf.dist "$pfx/etc/master.cf"
: >"$pfx/etc/main.cf"
pc() { postconf -c "$pfx/etc" -e "$@"; }
pc "queue_directory = $pfx/queue" "data_directory = $pfx/data" "maillog_file = $work/postfix.log" \
   "maillog_file_prefixes = /var, /dev/stdout, /tmp" "myhostname = client.interop.test" "mydestination =" "inet_interfaces = loopback-only" \
   "relayhost = [127.0.0.1]:$MX" "smtp_dns_support_level = disabled" "compatibility_level = 3.6" \
   "mail_owner = postfix" "setgid_group = postdrop" "alternate_config_directories = $pfx/etc" \
   "smtp_tls_security_level = none" "smtpd_peername_lookup = no" "multi_instance_enable = no"
postconf -c "$pfx/etc" -MX smtp/inet >/dev/null 2>&1 || true
# Postfix only runs a non-default config directory that the default main.cf lists.
touch /etc/postfix/main.cf
current="$(postconf -h alternate_config_directories 2>/dev/null || true)"
postconf -e "alternate_config_directories = ${current:+$current, }$pfx/etc"
restore_default() { postconf -e "alternate_config_directories = $current"; }
postfix -c "$pfx/etc" check >/dev/null 2>&1 || true
postfix -c "$pfx/etc" start >/dev/null 2>&1 || { echo "interop: FAILED: postfix did not start"; cat "$work/postfix.log" 2>/dev/null; exit 1; }

for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$MX),1)" 2>/dev/null && break; sleep 0.1; done

printf 'From: Customer <customer@shop.example>\r\nTo: alice@example.com\r\nSubject: interop\r\nMessage-ID: <interop@shop.example>\r\n\r\nHello from Postfix.\r\n' \
  | sendmail -C "$pfx/etc" -f customer@shop.example alice@example.com

ok=0
for _ in $(seq 300); do
  # smtp-sink writes the file while receiving: count complete ones.
  n=$( (grep -l "Hello from Postfix." "$work"/sink/* 2>/dev/null || true) | wc -l)
  if [ "$n" -ge 2 ]; then ok=1; break; fi
  sleep 0.1
done
if [ "$ok" != 1 ]; then
  echo "interop: FAILED: the sink got $(ls "$work/sink" | wc -l) of 2 messages"
  echo "--- postfix log"; cat "$work/postfix.log" 2>/dev/null | tail -20
  echo "--- relay log"; tail -20 "$work/relay.log"
  exit 1
fi
copies=$( (grep -l "X-Teamrelay-Archive: customers-archive@example.com" "$work"/sink/* || true) | wc -l)
originals=$( (grep -L "X-Teamrelay-Archive" "$work"/sink/* || true) | wc -l)
grep -q "Hello from Postfix." "$work"/sink/* || { echo "interop: FAILED: body missing"; exit 1; }
grep -q "by client.interop.test" "$work"/sink/* || { echo "interop: FAILED: Postfix's Received missing"; exit 1; }
if [ "$copies" != 1 ] || [ "$originals" != 1 ]; then
  echo "interop: FAILED: $originals originals, $copies copies"; exit 1
fi
echo "interop: Postfix smtp -> teamrelay -> smtp-sink: 1 original and 1 archive copy"

# Second round: Postfix hands mail over with LMTP, as a content_filter would.
postconf -c "$pfx/etc" -e "relayhost =" "default_transport = lmtp:inet:127.0.0.1:$LMTP"
postfix -c "$pfx/etc" reload >/dev/null 2>&1
printf 'From: Customer <customer@shop.example>\r\nTo: bob@example.com\r\nSubject: over lmtp\r\nMessage-ID: <interop-lmtp@shop.example>\r\n\r\nHello over LMTP.\r\n' \
  | sendmail -C "$pfx/etc" -f customer@shop.example bob@example.com
ok=0
for _ in $(seq 300); do
  n=$( (grep -l "Hello over LMTP." "$work"/sink/* 2>/dev/null || true) | wc -l)
  if [ "$n" -ge 2 ]; then ok=1; break; fi
  sleep 0.1
done
if [ "$ok" != 1 ] || ! grep -q "with LMTP" $(grep -l "Hello over LMTP." "$work"/sink/*); then
  echo "interop: FAILED: LMTP round: $n of 2 messages"
  tail -20 "$work/postfix.log" 2>/dev/null; tail -20 "$work/relay.log"
  exit 1
fi
echo "interop: Postfix lmtp -> teamrelay -> smtp-sink: 1 original and 1 archive copy"
