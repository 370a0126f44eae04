//! Time under a paused clock (the in-process tier): retries follow `deliver.retry`, a
//! message gives up after `max_queue_time` with one DSN, and the memories
//! (`private_memory`, `auto_away`, `owner_memory`) last as long as configured and no
//! longer. Days pass in
//! milliseconds: the relay's clock (`spool::now`) follows tokio's, and the fake next hops
//! run as tasks of the same runtime ([`AsyncUpstream`]), so the clock only moves when
//! everything waits for it.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::inproc::{AsyncClient, AsyncUpstream, InProcess, TimedTxn};
use common::*;

const HOUR: u64 = 3600;
const DAY: u64 = 86400;
const CUSTOMER: &str = "customer@shop.example";

/// The base config with these `[deliver]` timing lines and extra `[team]` keys.
fn config(timing: &str, team: &str) -> String {
    let text = base_config(team);
    let base_timing = "retry = [\"1s\"]\nmax_queue_time = \"1h\"";
    assert!(text.contains(base_timing));
    text.replace(base_timing, timing)
}

/// One message through listener `listener`; returns when it was acknowledged.
async fn send(relay: &InProcess, listener: &str, from: &str, to: &[&str], text: &str) -> Instant {
    let (mut c, _) = AsyncClient::connect(relay.port(listener)).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    let msg = format!("{}\r\n", text.trim().replace('\n', "\r\n"));
    let done = c.send(from, to, msg.as_bytes()).await;
    assert!(done.starts_with("250 "), "{done}");
    c.cmd("QUIT").await;
    Instant::now()
}

/// A customer's message to alice through the MX listener, and a minute for its delivery.
async fn customer_writes(relay: &InProcess, text: &str) {
    send(relay, "mx", CUSTOMER, &["alice@example.com"], text).await;
    pass(60).await;
}

/// A relay for the memory tests (retries a minute apart, nothing expires), with these
/// `[team]` keys, and its two fake next hops (team, outside).
async fn memory_relay(team_keys: &str) -> (InProcess, AsyncUpstream, AsyncUpstream) {
    let timing = "retry = [\"1m\"]\nmax_queue_time = \"5d\"";
    let mut relay = InProcess::start(&config(timing, team_keys)).await;
    let team = relay.async_upstream("upteam");
    let outside = relay.async_upstream("upout");
    (relay, team, outside)
}

async fn pass(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Seconds from `start` to each transaction.
fn offsets(txns: &[TimedTxn], start: Instant) -> Vec<u64> {
    txns.iter().map(|t| (t.at - start).as_secs()).collect()
}

fn near(got: &[u64], want: &[u64]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.abs_diff(*w) <= 2)
}

/// The transactions carrying this Message-ID.
fn with_id(up: &AsyncUpstream, id: &str) -> Vec<TimedTxn> {
    up.txns()
        .into_iter()
        .filter(|t| t.txn.text().contains(&format!("Message-ID: <{id}>")))
        .collect()
}

/// SPEC §6 `deliver.retry`: the delays in turn, the last one repeating, until the next
/// hop takes the message; then it leaves the spool and nobody gets a DSN.
#[tokio::test(start_paused = true)]
async fn retries_follow_deliver_retry_and_the_last_delay_repeats() {
    let timing = "retry = [\"10m\", \"1h\"]\nmax_queue_time = \"5d\"";
    let mut relay = InProcess::start(&config(timing, "")).await;
    let team = relay.async_upstream("upteam");
    team.answer(&[
        "451 4.3.0 try later",
        "451 4.3.0 try later",
        "452 4.2.2 mailbox full",
    ]);
    let internal = "From: alice@example.com\nTo: bob@example.com\nSubject: lunch\nMessage-ID: <t1@example.com>\n\nNoon?";
    let accepted = send(
        &relay,
        "relay",
        "alice@example.com",
        &["bob@example.com"],
        internal,
    )
    .await;
    pass(3 * HOUR).await;
    let tries = team.txns();
    let at = offsets(&tries, accepted);
    assert!(
        near(&at, &[0, 600, 600 + HOUR, 600 + 2 * HOUR]),
        "tries at {at:?} s"
    );
    assert!(tries
        .iter()
        .all(|t| t.txn.mail_from == "alice@example.com" && t.txn.rcpts == ["bob@example.com"]));
    assert_eq!(tries.last().unwrap().reply, "250 2.0.0 ok");
    assert!(relay.shared.spool.is_empty(), "delivered but still queued");
    relay.stop().await;
}

/// SPEC §6 `max_queue_time`: a recipient still deferred after it gets up to the last try
/// (`retry` apart), then one DSN with status 5.4.7 and the last error to the sender, and
/// the message leaves the spool. The archive copies, delivered at once, are not retried.
#[tokio::test(start_paused = true)]
async fn a_message_deferred_past_max_queue_time_bounces_once_with_5_4_7() {
    let timing = "retry = [\"1h\"]\nmax_queue_time = \"2d\"";
    let mut relay = InProcess::start(&config(timing, "")).await;
    let team = relay.async_upstream("upteam");
    let outside = relay.async_upstream("upout");
    outside.answer(&["451 4.7.1 greylisted, come back later"; 100]);
    let text = format!("From: alice@example.com\nTo: {CUSTOMER}\nSubject: Your quote\nMessage-ID: <q9@example.com>\n\nHere it is.");
    let accepted = send(&relay, "relay", "alice@example.com", &[CUSTOMER], &text).await;
    // The relay's clock (it follows the paused one) when the message arrived.
    let arrival = teamrelay::spool::now() as i64;
    let dsns = |team: &AsyncUpstream| -> Vec<TimedTxn> {
        team.txns()
            .into_iter()
            .filter(|t| t.txn.mail_from.is_empty())
            .collect()
    };

    pass(DAY).await;
    assert!(dsns(&team).is_empty(), "a DSN before max_queue_time");
    assert_eq!(relay.shared.spool.len(), 1);
    let copies = |team: &AsyncUpstream| -> Vec<String> {
        let mut rcpts: Vec<String> = with_id(team, "q9@example.com")
            .into_iter()
            .filter(|t| !t.txn.mail_from.is_empty())
            .flat_map(|t| t.txn.rcpts)
            .collect();
        rcpts.sort();
        rcpts
    };
    let archived = copies(&team);
    assert_eq!(
        archived,
        ["bob@example.com", "carol@example.com", "dan@example.com"],
        "the archive copies, once each"
    );

    pass(DAY + 2 * HOUR).await;
    let tries = outside.txns();
    let at = offsets(&tries, accepted);
    let want: Vec<u64> = (0..=48).map(|h| h * HOUR).collect();
    assert!(near(&at, &want), "tries at {at:?} s");
    let bounced = dsns(&team);
    assert_eq!(bounced.len(), 1, "one DSN");
    let dsn = &bounced[0];
    assert_eq!(dsn.txn.rcpts, ["alice@example.com"]);
    let waited = (dsn.at - accepted).as_secs();
    assert!(waited.abs_diff(2 * DAY) <= 2, "DSN after {waited} s");
    let report = dsn.txn.text();
    assert!(report.contains("Status: 5.4.7"), "{report}");
    assert!(report.contains("Action: failed"), "{report}");
    assert!(
        report
            .contains("Diagnostic-Code: smtp; gave up after 2d: end of DATA: 451 4.7.1 greylisted"),
        "{report}"
    );
    let date = mail_parser::MessageParser::default()
        .parse(report.as_bytes())
        .and_then(|m| m.date().map(|d| d.to_timestamp()))
        .expect("a Date field");
    assert!(
        date.abs_diff(arrival + 2 * DAY as i64) <= 2,
        "DSN dated {date}, arrival {arrival}"
    );
    assert!(relay.shared.spool.is_empty(), "expired but still queued");
    assert_eq!(copies(&team), archived, "archive copies sent again");
    relay.stop().await;
}

/// SPEC §9 `auto_away`: a teammate's auto-reply marks them away for exactly that long:
/// a customer's mail the next day also goes to the cover, after `auto_away` it does not.
#[tokio::test(start_paused = true)]
async fn an_auto_reply_marks_its_sender_away_for_auto_away_and_no_longer() {
    let team_keys = "cover = \"dan@example.com\"\nauto_away = \"2d\"";
    let (relay, team, _outside) = memory_relay(team_keys).await;
    let vacation = format!("From: Alice <alice@example.com>\nTo: {CUSTOMER}\nSubject: Re: Order 1234\nMessage-ID: <vac1@example.com>\nAuto-Submitted: auto-replied\n\nI am on holiday.");
    send(&relay, "relay", "alice@example.com", &[CUSTOMER], &vacation).await;
    let customer_mail = |id: &str| {
        format!("From: {CUSTOMER}\nTo: alice@example.com\nSubject: Order 1234\nMessage-ID: <{id}>\n\nWhere is it?")
    };
    let covered = |id: &str| {
        with_id(&team, id)
            .iter()
            .find(|t| t.txn.rcpts == ["dan@example.com"])
            .and_then(|t| header(&t.txn.text(), "X-Teamrelay-Cover").map(str::to_string))
    };

    pass(DAY).await;
    customer_writes(&relay, &customer_mail("c1@shop.example")).await;
    let cover = covered("c1@shop.example").expect("a cover copy within auto_away");
    assert!(
        cover.starts_with("alice@example.com away until 20"),
        "{cover}"
    );

    pass(DAY + HOUR).await;
    customer_writes(&relay, &customer_mail("c2@shop.example")).await;
    assert!(
        with_id(&team, "c2@shop.example")
            .iter()
            .any(|t| t.txn.rcpts == ["alice@example.com"]),
        "the original reaches alice"
    );
    assert_eq!(
        covered("c2@shop.example"),
        None,
        "still away after auto_away"
    );
    relay.stop().await;
}

/// SPEC §9 `owner_memory`: whoever opened a thread owns it for that long: a customer's
/// reply within it carries `X-Teamrelay-Owner` on its archive copies, one after it none.
#[tokio::test(start_paused = true)]
async fn a_threads_owner_is_remembered_for_owner_memory_and_then_forgotten() {
    let team_keys = "owner_memory = \"3d\"";
    let (relay, team, _outside) = memory_relay(team_keys).await;
    for thread in ["early", "late"] {
        let opening = format!("From: alice@example.com\nTo: {CUSTOMER}\nSubject: Quote {thread}\nMessage-ID: <{thread}@example.com>\n\nHere is the quote.");
        send(&relay, "relay", "alice@example.com", &[CUSTOMER], &opening).await;
    }
    let reply = |thread: &str| {
        format!("From: {CUSTOMER}\nTo: alice@example.com\nSubject: Re: Quote\nMessage-ID: <re-{thread}@shop.example>\nIn-Reply-To: <{thread}@example.com>\n\nThanks.")
    };
    let owner_on_copy = |thread: &str| {
        let txns = with_id(&team, &format!("re-{thread}@shop.example"));
        let copy = txns
            .iter()
            .find(|t| t.txn.rcpts.contains(&"bob@example.com".to_string()))
            .expect("an archive copy for bob");
        header(&copy.txn.text(), "X-Teamrelay-Owner").map(str::to_string)
    };

    pass(2 * DAY + 23 * HOUR).await;
    customer_writes(&relay, &reply("early")).await;
    assert_eq!(owner_on_copy("early").as_deref(), Some("alice@example.com"));

    pass(2 * HOUR).await;
    customer_writes(&relay, &reply("late")).await;
    assert_eq!(
        owner_on_copy("late"),
        None,
        "owner remembered past owner_memory"
    );
    relay.stop().await;
}

/// SPEC §4 `private_memory`: a customer's reply to a message Bcc'd to the private address
/// stays off the archive while the memory lasts; once it has lapsed, a reply to that old
/// thread is customer mail like any other and is archived.
#[tokio::test(start_paused = true)]
async fn a_private_thread_stays_private_for_private_memory() {
    let team_keys = "private_memory = \"3d\"";
    let (relay, team, outside) = memory_relay(team_keys).await;
    let private = format!("From: alice@example.com\nTo: {CUSTOMER}\nSubject: Your salary\nMessage-ID: <pv1@example.com>\n\nConfidential.");
    let to = [CUSTOMER, "private@example.com"];
    send(&relay, "relay", "alice@example.com", &to, &private).await;
    pass(60).await;
    let out = with_id(&outside, "pv1@example.com");
    assert_eq!(out.len(), 1, "the private message reaches the customer");
    assert_eq!(out[0].txn.rcpts, [CUSTOMER]);
    assert!(
        with_id(&team, "pv1@example.com").is_empty(),
        "a private message was archived"
    );
    let reply = |id: &str| {
        format!("From: {CUSTOMER}\nTo: alice@example.com\nSubject: Re: Your salary\nMessage-ID: <{id}>\nIn-Reply-To: <pv1@example.com>\nReferences: <pv1@example.com>\n\nThanks.")
    };
    let receivers = |id: &str| -> Vec<String> {
        let mut r: Vec<String> = with_id(&team, id)
            .into_iter()
            .flat_map(|t| t.txn.rcpts)
            .collect();
        r.sort();
        r
    };

    pass(2 * DAY + 23 * HOUR).await;
    customer_writes(&relay, &reply("pr1@shop.example")).await;
    assert_eq!(
        receivers("pr1@shop.example"),
        ["alice@example.com"],
        "archived within private_memory"
    );

    pass(2 * HOUR).await;
    customer_writes(&relay, &reply("pr2@shop.example")).await;
    assert_eq!(
        receivers("pr2@shop.example"),
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dan@example.com"
        ],
        "not archived after private_memory"
    );
    relay.stop().await;
}
