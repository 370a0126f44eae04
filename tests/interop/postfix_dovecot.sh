#!/usr/bin/env bash
# The Postfix + Dovecot recipe of deploy/PROVIDERS.md, executed for real: a private
# Postfix instance and a private Dovecot instance configured from the very files in
# deploy/postfix-dovecot/ (only ports and paths substituted, so the recipe and this test
# cannot drift), teamrelay running deploy/lists.postfix-dovecot.toml (same), and
# smtp-sink standing in for the Internet. Checks over IMAP what every mailbox holds.
#
# Installs Postfix and Dovecot from Debian packages if missing. Everything runs on
# 127.0.0.1 on free ports under a temp dir; every process is started here and stopped by
# its PID (Postfix with `postfix -c DIR stop`); /etc/postfix/main.cf's
# alternate_config_directories is put back at the end. Exits non-zero on any failed check.
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
# TEAMRELAY_BIN: the binary to test (CI passes the debug build it already has).
bin="${TEAMRELAY_BIN:-$top/target/release/teamrelay}"
recipe="$top/deploy/postfix-dovecot"
export PATH="$PATH:/usr/sbin:/usr/bin"

if ! command -v postfix >/dev/null || ! command -v dovecot >/dev/null \
   || [ ! -x /usr/lib/dovecot/lmtp ] || [ ! -x /usr/lib/dovecot/imap ]; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix dovecot-lmtpd dovecot-imapd >/dev/null
fi
[ -x "$bin" ] || (cd "$top" && cargo build --release -q)

work="$(mktemp -d)"
chmod 755 "$work"
pfx="$work/postfix"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SMTP=$(free_port); SUBM=$(free_port); MXF=$(free_port); REINJ=$(free_port)
RELAY=$(free_port); SINK=$(free_port); IMAP=$(free_port); ADMIN=$(free_port)
pids=()
dovecot_pid=""
created_vmail=""
restore_default() { :; }
cleanup() {
  postfix -c "$pfx/etc" stop >/dev/null 2>&1 || true
  restore_default
  [ -n "$dovecot_pid" ] && kill "$dovecot_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $dovecot_pid; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  [ -n "$created_vmail" ] && userdel vmail 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail_logs() {
  echo "--- postfix log"; tail -40 "$work/postfix.log" 2>/dev/null || true
  echo "--- dovecot log"; tail -20 "$work/dovecot.log" 2>/dev/null || true
  echo "--- teamrelay log"; tail -30 "$work/relay.log" 2>/dev/null || true
}
die() { echo "postfix_dovecot: FAIL: $*"; fail_logs; exit 1; }

# The recipe's paths and ports -> this private instance's.
subst() {
  sed -e "s#/etc/letsencrypt/live/mail.example.com/#$work/tls/#g" \
      -e "s#/etc/postfix/#$pfx/etc/#g" \
      -e "s#/var/spool/postfix#$pfx/queue#g" \
      -e "s#/etc/dovecot/users#$work/dovecot/users#g" \
      -e "s#/var/mail/vhosts#$work/mail#g" \
      -e "s#^base_dir = .*#base_dir = $work/dovecot/run#" \
      -e "s#^state_dir = .*#state_dir = $work/dovecot/state#" \
      -e "s#^log_path = .*#log_path = $work/dovecot.log#" \
      -e "s#^listen = \*, ::\$#listen = 127.0.0.1#" \
      -e "s#address = \*, ::#address = 127.0.0.1#" \
      -e "s#port = 143#port = $IMAP#" \
      -e "s#^smtp      inet#127.0.0.1:$SMTP inet#" \
      -e "s#^submission inet#127.0.0.1:$SUBM inet#" \
      -e "s#:10025\b#:$MXF#g" \
      -e "s#:10026\b#:$REINJ#g" \
      -e "s#:10027\b#:$RELAY#g" \
      -e "s#:9025\b#:$ADMIN#g" \
      -e "s#/var/lib/teamrelay/spool#$work/spool#g" \
      "$@"
}

# A certificate for mail.example.com (the recipe's Let's Encrypt files).
mkdir -p "$work/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.com \
  -keyout "$work/tls/privkey.pem" -out "$work/tls/fullchain.pem" >/dev/null 2>&1
chmod 644 "$work/tls/privkey.pem"

# --- The "Internet": smtp-sink, one file per transaction.
mkdir -p "$work/sink" && chown postfix "$work/sink"
smtp-sink -u postfix -d "$work/sink/%Y%m%d%H%M%S." "127.0.0.1:$SINK" 100 &
pids+=($!)

# --- Postfix: instance basics, then the recipe's main.cf and master.cf.
mkdir -p "$pfx/etc" "$pfx/queue" "$pfx/data"
chown postfix "$pfx/data"
cp /etc/postfix/master.cf "$pfx/etc/" 2>/dev/null || cp /usr/share/postfix/master.cf.dist "$pfx/etc/master.cf"
: >"$pfx/etc/main.cf"
pc() { postconf -c "$pfx/etc" -e "$@"; }
pc "queue_directory = $pfx/queue" "data_directory = $pfx/data" "maillog_file = $work/postfix.log" \
   "maillog_file_prefixes = /var, /dev/stdout, /tmp" "compatibility_level = 3.6" \
   "mail_owner = postfix" "setgid_group = postdrop" "alternate_config_directories = $pfx/etc" \
   "multi_instance_enable = no"
while IFS= read -r line; do
  pc "$line"
done < <(subst "$recipe/main.cf" | grep -v '^#' | grep .)
# This instance only: loopback, and the "Internet" is smtp-sink (no DNS here).
pc "inet_interfaces = loopback-only" "inet_protocols = ipv4" "alias_maps =" "alias_database =" "relayhost = [127.0.0.1]:$SINK" \
   "smtp_dns_support_level = disabled" "smtpd_peername_lookup = no"
postconf -c "$pfx/etc" -MX smtp/inet submission/inet pickup/unix >/dev/null 2>&1 || true
subst "$recipe/master.cf" | grep -v '^#' >>"$pfx/etc/master.cf"
for map in teamrelay_recipients teamrelay_transport teamrelay_aliases sender_logins; do
  subst "$recipe/$map" >"$pfx/etc/$map"
  postmap -c "$pfx/etc" "$pfx/etc/$map"
done
touch /etc/postfix/main.cf
current="$(postconf -h alternate_config_directories 2>/dev/null || true)"
postconf -e "alternate_config_directories = ${current:+$current, }$pfx/etc"
restore_default() { postconf -e "alternate_config_directories = $current"; }
postfix -c "$pfx/etc" check >"$work/postfix-check.log" 2>&1 || true
postfix -c "$pfx/etc" start >/dev/null 2>&1 || die "postfix did not start: $(cat "$work/postfix-check.log")"

# --- Dovecot: the recipe's dovecot.conf, its users file made here.
id vmail >/dev/null 2>&1 || { useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin vmail; created_vmail=1; }
mkdir -p "$work/dovecot/run" "$work/dovecot/state" "$work/mail"
chown vmail:vmail "$work/mail"
hash="$(doveadm pw -s SHA512-CRYPT -p secret)"
for u in alice bob carol dan; do echo "$u@example.com:$hash"; done >"$work/dovecot/users"
subst "$recipe/dovecot.conf" >"$work/dovecot/dovecot.conf"
dovecot -c "$work/dovecot/dovecot.conf" || die "dovecot did not start"
for _ in $(seq 100); do [ -s "$work/dovecot/run/master.pid" ] && break; sleep 0.1; done
dovecot_pid="$(cat "$work/dovecot/run/master.pid" 2>/dev/null)" || die "no dovecot master.pid"

# --- teamrelay: the recipe's lists.toml.
subst "$top/deploy/lists.postfix-dovecot.toml" >"$work/lists.toml"
grep -q "127.0.0.1:$MXF" "$work/lists.toml" || die "port substitution in lists.toml"
"$bin" check --config "$work/lists.toml" >/dev/null || die "teamrelay check refused the recipe's config"
"$bin" serve --config "$work/lists.toml" 2>"$work/relay.log" &
pids+=($!)

wait_port() { for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for p in $SMTP $SUBM $REINJ $MXF $RELAY $IMAP $SINK; do wait_port "$p" || die "nothing listens on port $p"; done
for _ in $(seq 100); do [ -S "$pfx/queue/private/dovecot-lmtp" ] && [ -S "$pfx/queue/private/auth" ] && break; sleep 0.1; done
[ -S "$pfx/queue/private/dovecot-lmtp" ] || die "no Dovecot LMTP socket in Postfix's queue directory"

# --- Local sendmail (pickup) goes through teamrelay too.
printf 'From: alice@example.com\nTo: Customer Two <customer2@shop.example>\nSubject: from sendmail\nMessage-ID: <pick1@example.com>\n\nSent with sendmail on the box.\n' \
  | sendmail -C "$pfx/etc" -f alice@example.com customer2@shop.example

export SMTP SUBM IMAP
export SINKDIR="$work/sink"
python3 - <<'PY' || { fail_logs; exit 1; }
import email, imaplib, os, smtplib, ssl, sys, time, glob

SMTP, SUBM, IMAP = int(os.environ["SMTP"]), int(os.environ["SUBM"]), int(os.environ["IMAP"])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
failed = []

def check(name, ok, detail=""):
    print(("PASS" if ok else "FAIL") + ": " + name + ("" if ok else "  (" + detail + ")"))
    if not ok: failed.append(name)

def msg(frm, to, mid, subject, cc=None):
    head = f"From: {frm}\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
    return (head + f"Subject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: Tue, 01 Dec 2026 22:00:00 +0000\r\n\r\n{subject}: body\r\n").encode()

def inbound(frm, rcpts, data):
    with smtplib.SMTP("127.0.0.1", SMTP, "customer.example") as s:
        refused = s.sendmail(frm, rcpts, data)
        check(f"port 25 accepts every recipient of {rcpts}", not refused, str(refused))

def submit(user, rcpts, data):
    with smtplib.SMTP("127.0.0.1", SUBM, "laptop.example") as s:
        s.starttls(context=ctx); s.login(user, "secret")
        refused = s.sendmail(user, rcpts, data)
        check(f"submission accepts {user} -> {rcpts}", not refused, str(refused))

# Port 587 without TLS and login must not send anything.
with smtplib.SMTP("127.0.0.1", SUBM, "laptop.example") as s:
    code, _ = s.mail("alice@example.com")
    check("submission refuses MAIL without TLS and login", code >= 500, str(code))
# A logged-in user cannot send as a teammate (smtpd_sender_login_maps).
with smtplib.SMTP("127.0.0.1", SUBM, "laptop.example") as s:
    s.starttls(context=ctx); s.login("alice@example.com", "secret")
    s.mail("bob@example.com"); code, _ = s.rcpt("customer@shop.example")
    check("submission refuses alice sending as bob", code >= 500, str(code))
# Port 25 is not a relay.
with smtplib.SMTP("127.0.0.1", SMTP, "customer.example") as s:
    s.mail("spam@evil.example"); code, _ = s.rcpt("victim@elsewhere.example")
    check("port 25 refuses relaying to an outside address", code >= 500, str(code))
# Port 25 takes every address teamrelay answers for, and no other.
with smtplib.SMTP("127.0.0.1", SMTP, "customer.example") as s:
    for rcpt in ("sales-bounces@example.com", "customers-archive@example.com",
                 "customers-archive-bounces@example.com", "postmaster@example.com"):
        s.mail("customer@shop.example"); code, _ = s.rcpt(rcpt); s.rset()
        check(f"port 25 accepts {rcpt}", code == 250, str(code))
    s.mail("customer@shop.example"); code, _ = s.rcpt("nobody@example.com")
    check("port 25 refuses an unknown team address", code == 550, str(code))

inbound("customer@shop.example", ["alice@example.com"],
        msg("Customer <customer@shop.example>", "alice@example.com", "in1@shop.example", "inbound"))
submit("alice@example.com", ["customer@shop.example"],
       msg("alice@example.com", "Customer <customer@shop.example>", "out1@example.com", "outbound"))
submit("alice@example.com", ["bob@example.com"],
       msg("alice@example.com", "bob@example.com", "int1@example.com", "internal"))
inbound("customer@shop.example", ["alice@example.com", "private@example.com"],
        msg("Customer <customer@shop.example>", "alice@example.com", "priv1@shop.example", "private"))
inbound("customer@shop.example", ["sales@example.com"],
        msg("Customer <customer@shop.example>", "sales@example.com", "list1@shop.example", "to the list"))

USERS = ["alice", "bob", "carol", "dan"]
def mailbox(user):
    """(message-id, is archive copy, headers) of every message in the user's INBOX."""
    m = imaplib.IMAP4("127.0.0.1", IMAP); m.starttls(ssl_context=ctx)
    m.login(f"{user}@example.com", "secret"); m.select("INBOX", readonly=True)
    _, data = m.search(None, "ALL"); out = []
    for n in data[0].split():
        _, parts = m.fetch(n, "(BODY.PEEK[HEADER])")
        h = email.message_from_bytes(parts[0][1])
        out.append((h.get("Message-ID", "").strip("<> "), "X-Teamrelay-Archive" in h, h))
    m.logout(); return out

def sink():
    """(message-id, rcpt args, text) of every complete smtp-sink transaction."""
    out = []
    for f in glob.glob(os.environ["SINKDIR"] + "/*"):
        t = open(f, errors="replace").read()
        if "body" not in t and "sendmail on the box" not in t: continue
        mid = next((l.split(":", 1)[1].strip().strip("<>") for l in t.splitlines() if l.lower().startswith("message-id:")), "")
        rcpts = [l.split(":", 1)[1].strip() for l in t.splitlines() if l.startswith("X-Rcpt-Args:")]
        out.append((mid, rcpts, t))
    return out

# Expected: (user, message-id) -> (count, archive copy?)
want = {}
for u in USERS:
    want[(u, "in1@shop.example")] = (1, u != "alice")
    want[(u, "out1@example.com")] = (0 if u == "alice" else 1, True)
    want[(u, "pick1@example.com")] = (0 if u == "alice" else 1, True)
    want[(u, "int1@example.com")] = (1 if u == "bob" else 0, False)
    want[(u, "priv1@shop.example")] = (1 if u == "alice" else 0, False)
    want[(u, "list1@shop.example")] = (1, u in ("carol", "dan"))
total = sum(c for c, _ in want.values())

deadline = time.time() + 90
while time.time() < deadline:
    have = sum(len(mailbox(u)) for u in USERS)
    if have >= total and len(sink()) >= 2: break
    time.sleep(1)
time.sleep(3)  # a duplicate or a loop would show up now

boxes = {u: mailbox(u) for u in USERS}
for (u, mid), (count, archive) in sorted(want.items()):
    got = [a for m, a, _ in boxes[u] if m == mid]
    kind = "archive copy" if archive else "original"
    check(f"{u} has {count} {kind if count else 'message'} of <{mid}>",
          len(got) == count and all(a == archive for a in got), f"got {len(got)}, archive flags {got}")
for u in ("alice", "bob"):
    lid = [h.get("List-Id", "") for m, a, h in boxes[u] if m == "list1@shop.example"]
    check(f"{u}'s sales@ delivery carries List-Id <sales.example.com>", lid == ["<sales.example.com>"], str(lid))
known = {m for (_, m) in want}
strays = [(u, m, h.get("From", "")) for u in USERS for m, _, h in boxes[u] if m not in known]
check("no other mail in any mailbox (no bounce, no DSN, no loop)", not strays, str(strays))
for u in USERS:
    hops = [len(h.get_all("Received", [])) for _, _, h in boxes[u]]
    check(f"{u}'s messages took few hops (no loop)", all(n < 10 for n in hops), str(hops))

out = sink()
for mid, rcpt in (("out1@example.com", "customer@shop.example"), ("pick1@example.com", "customer2@shop.example")):
    got = [r for m, r, _ in out if m == mid]
    check(f"the next hop got <{mid}> once, for {rcpt}", len(got) == 1 and any(rcpt in x for x in got[0]), str(got))
    copies = [t for m, _, t in out if m == mid and "X-Teamrelay-Archive" in t]
    check(f"the customer's copy of <{mid}> carries no archive header", not copies)
others = [m for m, _, _ in out if m not in ("out1@example.com", "pick1@example.com")]
check("the next hop got nothing else (no bounce to a customer, no private mail)", not others, str(others))
sys.exit(1 if failed else 0)
PY

# --- Both queues drained.
for _ in $(seq 50); do
  postqueue -c "$pfx/etc" -p 2>/dev/null | grep -q "Mail queue is empty" && break; sleep 0.2
done
if postqueue -c "$pfx/etc" -p 2>/dev/null | grep -q "Mail queue is empty"; then
  echo "PASS: Postfix's queue is empty"
else
  echo "FAIL: Postfix's queue is not empty:"; postqueue -c "$pfx/etc" -p; fail_logs; exit 1
fi
left="$("$bin" queue --config "$work/lists.toml" list --json)"
if python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]) == [] else 1)' "$left"; then
  echo "PASS: teamrelay's queue is empty"
else
  echo "FAIL: teamrelay's queue is not empty: $left"; fail_logs; exit 1
fi
if grep -Eq "status=bounced|loops back to myself|too many hops" "$work/postfix.log"; then
  echo "FAIL: Postfix bounced or looped:"; grep -E "status=bounced|loops back|too many hops" "$work/postfix.log"; exit 1
fi
echo "PASS: no bounce and no loop in Postfix's log"
echo "postfix_dovecot: PASS: the Postfix + Dovecot recipe works as PROVIDERS.md says"
