//! The in-process tier: the relay runs inside the test's runtime (`Server::start` on
//! port-0 listeners, stopped by a token), and the session under a paused clock, so
//! timeouts are tested without waiting for them.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use common::inproc::{AsyncClient, AsyncUpstream, InProcess, TimedTxn};
use common::*;

/// Polls the fake upstream without blocking the runtime.
async fn until(upstream: &Upstream, n: usize) -> Vec<Txn> {
    for _ in 0..500 {
        if upstream.txns().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upstream.txns()
}

/// Polls an in-runtime fake until `f` holds for its transactions (at most ten seconds).
async fn until_async(up: &AsyncUpstream, f: impl Fn(&[TimedTxn]) -> bool) -> Vec<TimedTxn> {
    for _ in 0..500 {
        if f(&up.txns()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    up.txns()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_relay_delivers_the_original_and_the_archive_copies() {
    let mut relay = InProcess::start(&base_config("")).await;
    let team = relay.upstream("upteam");
    let (mut c, greeting) = AsyncClient::connect(relay.port("mx")).await;
    assert!(
        greeting.starts_with("220 relay.test ESMTP teamrelay"),
        "{greeting}"
    );
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "ip1@shop.example",
        "",
    );
    let done = c
        .send("customer@shop.example", &["alice@example.com"], &msg)
        .await;
    assert!(done.starts_with("250 2.0.0 OK queued as "), "{done}");
    let mut got: Vec<(String, String)> = until(&team, 2)
        .await
        .iter()
        .flat_map(|t| t.rcpts.iter().map(|r| (r.clone(), t.mail_from.clone())))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("alice@example.com".into(), "customer@shop.example".into()),
            (
                "bob@example.com".into(),
                "customers-archive-bounces@example.com".into()
            ),
            (
                "carol@example.com".into(),
                "customers-archive-bounces@example.com".into()
            ),
            (
                "dan@example.com".into(),
                "customers-archive-bounces@example.com".into()
            ),
        ]
    );
    relay.stop().await;
}

/// Cancelling the token is SIGTERM's drain: the transaction in flight gets its `250`
/// and stays in the spool for the next start (the worker stops taking new work); then
/// the relay stops and new connections are not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_drains_the_transaction_in_flight() {
    let mut relay = InProcess::start(&base_config("")).await;
    let team = relay.upstream("upteam");
    let port = relay.port("mx");
    let (mut c, _) = AsyncClient::connect(port).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    assert!(c
        .cmd("MAIL FROM:<alice@example.com>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.com>").await.starts_with("250"));
    relay.shutdown.cancel();
    assert!(c.cmd("DATA").await.starts_with("354"));
    let done = c.cmd("Subject: drain\r\n\r\nhello\r\n.").await;
    assert!(done.starts_with("250"), "{done}");
    let shared = relay.shared.clone();
    relay.stopped.await.unwrap();
    let queued = shared.spool.all();
    assert_eq!(
        queued.len() + team.txns().len(),
        1,
        "acknowledged exactly once"
    );
    let late = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(late.is_err(), "the listener still accepts after the drain");
}

/// SPEC §5 `idle_timeout` under a paused clock: five idle minutes pass at once, and the
/// client gets `421 4.4.2` and a closed connection, with the session over an in-memory
/// stream (no socket at all).
#[tokio::test(start_paused = true)]
async fn an_idle_session_gets_421_4_4_2_after_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let text = base_config("")
        .replace("{dir}", dir.path().to_str().unwrap())
        .replace("idle_timeout = \"5s\"", "idle_timeout = \"5m\"")
        .replace("{port:mx}", "2525")
        .replace("{port:relay}", "2526")
        .replace("{port:upteam}", "2600")
        .replace("{port:upout}", "2601");
    let config = teamrelay::config::parse(&text, std::path::Path::new("lists.toml")).unwrap();
    let spool = teamrelay::spool::Spool::open(&config.server.spool).unwrap();
    let listener = config.listen[0].clone();
    let shared = Arc::new(teamrelay::shared::Shared::new(
        config,
        spool,
        Arc::new(tokio::sync::Notify::new()),
    ));
    let (mut client, server) = tokio::io::duplex(4096);
    let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
    let session = tokio::spawn(teamrelay::smtp::session::run(
        Box::new(server),
        peer,
        listener,
        shared,
        CancellationToken::new(),
        teamrelay::smtp::session::Wire::Plain,
    ));
    client.write_all(b"EHLO client.example\r\n").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.ends_with("421 4.4.2 idle timeout, closing connection\r\n"),
        "{out}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(300),
        "{:?}",
        started.elapsed()
    );
    session.await.unwrap();
}

/// RFC 2920: to a next hop that offers PIPELINING the envelope goes in one write (MAIL,
/// every RCPT, DATA), and the replies are still judged one by one: the refused recipient
/// gets a DSN, the others are delivered in that same transaction. To one that does not
/// offer it (the team's here) the relay waits for each reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_envelope_is_pipelined_only_to_a_next_hop_that_offers_it() {
    let mut relay = InProcess::start(&base_config("")).await;
    let team = relay.async_upstream("upteam");
    let outside = relay.async_upstream("upout");
    outside.offer_pipelining();
    outside.refuse("gone@shop.example", "550 5.1.1 no such user");
    let (mut c, _) = AsyncClient::connect(relay.port("relay")).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    let to = ["one@shop.example", "gone@shop.example", "two@shop.example"];
    let msg = message(
        "alice@example.com",
        "one@shop.example",
        "p1@example.com",
        "",
    );
    let done = c.send("alice@example.com", &to, &msg).await;
    assert!(done.starts_with("250 "), "{done}");

    let out = until_async(&outside, |t| !t.is_empty()).await;
    assert_eq!(out.len(), 1, "one transaction for both customers");
    assert_eq!(out[0].txn.rcpts, ["one@shop.example", "two@shop.example"]);
    assert!(out[0].pipelined, "the envelope was not pipelined");
    let is_dsn = |t: &TimedTxn| t.txn.mail_from.is_empty();
    let inside = until_async(&team, |t| t.iter().any(is_dsn)).await;
    let dsn = inside.iter().find(|t| is_dsn(t)).expect("a DSN for gone@");
    assert_eq!(dsn.txn.rcpts, ["alice@example.com"]);
    let report = dsn.txn.text();
    assert!(
        report.contains("Final-Recipient: rfc822; gone@shop.example"),
        "{report}"
    );
    assert!(report.contains("Status: 5.1.1"), "{report}");
    assert!(!report.contains("rfc822; one@shop.example"), "{report}");
    assert!(
        inside.iter().all(|t| !t.pipelined),
        "pipelined to a next hop that did not offer it"
    );
    relay.stop().await;
}
