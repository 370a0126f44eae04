//! One behaviour suite for both memory backends (SPEC §4, §9, §10): the spool's sled and
//! a real `redis-server`. Each check is what the policy relies on: private threads,
//! who has a Message-ID, the copy claim, the thread rule, the first owner, recent
//! replies, absences, and expiry.

mod common;

use std::time::Duration;

use common::redis::Redis;
use teamrelay::config::MemoryConfig;
use teamrelay::memory::{Backend, RedisMemory, Remembered, SpoolMemory};
use teamrelay::route::{Absence, MessageFacts, Query, RecentReply, Remember};
use teamrelay::spool::Spool;

fn query(raw: &str) -> Query {
    Query::of(&MessageFacts::from_message(
        raw.replace('\n', "\r\n").as_bytes(),
    ))
}

fn remember(id: &str) -> Remember {
    Remember {
        message_id: Some(id.into()),
        private_ttl: 3600,
        delivered_ttl: 3600,
        owner_ttl: 3600,
        reply_ttl: 3600,
        ..Remember::default()
    }
}

/// Records, committing the spool backend's ops as the session does.
async fn record(b: &dyn Backend, spool: &Spool, r: &Remember) -> Remembered {
    let mut x = b.remember(r).await.expect("remember");
    spool.commit(std::mem::take(&mut x.ops)).await.unwrap();
    x
}

async fn suite(b: &dyn Backend, spool: &Spool) {
    let name = b.name();
    // Nothing known: the thread is the fallback of §8.
    let m = b
        .recall(&query("Message-ID: <m2@x>\nIn-Reply-To: <m1@x>\n\n"))
        .await
        .unwrap();
    assert!(
        !m.thread_private && m.already_has.is_empty() && m.owner.is_none(),
        "{name}"
    );
    assert_eq!(m.thread, "m1@x", "{name}");
    assert!(m.now > 0);
    // The first message of a thread: private, delivered, claimed, owned, replied.
    let mut r = remember("m1@x");
    r.private = true;
    r.delivered = vec!["alice@example.com".into()];
    r.claims = vec!["bob@example.com".into()];
    r.thread = Some("root@x".into());
    r.owner = Some("alice@example.com".into());
    r.reply = Some(RecentReply {
        from: "alice@example.com".into(),
        message_id: "m1@x".into(),
        at: 100,
        subject: "Re: order".into(),
        excerpt: "It ships.".into(),
    });
    assert!(record(b, spool, &r).await.lost.is_empty(), "{name}");
    let m = b
        .recall(&query(
            "Message-ID: <m2@x>\nReferences: <zz@x> <m1@x>\nIn-Reply-To: <m1@x>\n\n",
        ))
        .await
        .unwrap();
    assert!(m.thread_private, "{name}: privacy follows the thread");
    assert_eq!(m.thread, "root@x", "{name}: first known reference wins");
    assert_eq!(
        m.owner.map(|o| o.to_string()).as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(m.recent.len(), 1, "{name}");
    assert_eq!(m.recent[0].excerpt, "It ships.");
    let m = b.recall(&query("Message-ID: <m1@x>\n\n")).await.unwrap();
    let mut has: Vec<String> = m.already_has.iter().map(|a| a.to_string()).collect();
    has.sort();
    assert_eq!(has, ["alice@example.com", "bob@example.com"], "{name}");
    // A second claim for a member who has the message is lost; a new one is not.
    let mut again = remember("m1@x");
    again.claims = vec!["bob@example.com".into(), "carol@example.com".into()];
    let lost: Vec<String> = record(b, spool, &again)
        .await
        .lost
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(lost, ["bob@example.com"], "{name}");
    // Two sessions claiming at the same instant, before either committed: one wins.
    let mut one = remember("race@x");
    one.claims = vec!["dan@example.com".into()];
    let first = b.remember(&one).await.unwrap();
    let second = b.remember(&one).await.unwrap();
    assert!(first.lost.is_empty(), "{name}");
    assert_eq!(second.lost.len(), 1, "{name}: the second claim is lost");
    spool.commit(first.ops).await.unwrap();
    // A message that could not be spooled gives its claims back.
    let mut gone = remember("rel@x");
    gone.claims = vec!["bob@example.com".into()];
    assert!(b.remember(&gone).await.unwrap().lost.is_empty());
    b.release(&gone).await.unwrap();
    assert!(
        b.remember(&gone).await.unwrap().lost.is_empty(),
        "{name}: claimable again"
    );
    // The first owner stays.
    let mut other = remember("m3@x");
    other.thread = Some("root@x".into());
    other.owner = Some("bob@example.com".into());
    record(b, spool, &other).await;
    let m = b
        .recall(&query("Message-ID: <m4@x>\nIn-Reply-To: <m3@x>\n\n"))
        .await
        .unwrap();
    assert_eq!(m.thread, "root@x");
    assert_eq!(
        m.owner.map(|o| o.to_string()).as_deref(),
        Some("alice@example.com"),
        "{name}"
    );
    // Absences: set, listed with the recall, ended; ended ones are not listed.
    let until = teamrelay::spool::now() + 86400;
    let a = Absence {
        address: "dan@example.com".into(),
        until,
        cover: Some("carol@example.com".into()),
        source: "manual".into(),
    };
    b.set_absence(a.clone()).await.unwrap();
    b.set_absence(Absence {
        address: "erin@example.com".into(),
        until: 5,
        ..a.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        b.absences().await.unwrap(),
        std::slice::from_ref(&a),
        "{name}"
    );
    assert_eq!(
        b.recall(&query("\n")).await.unwrap().absences,
        [a],
        "{name}"
    );
    assert!(b.end_absence("dan@example.com").await.unwrap());
    assert!(!b.end_absence("dan@example.com").await.unwrap(), "{name}");
    assert!(b.absences().await.unwrap().is_empty());
    // Expiry: a one-second memory is gone two seconds later.
    let mut short = remember("e1@x");
    short.private = true;
    short.private_ttl = 1;
    short.delivered_ttl = 1;
    short.delivered = vec!["alice@example.com".into()];
    record(b, spool, &short).await;
    assert!(
        b.recall(&query("Message-ID: <e1@x>\n\n"))
            .await
            .unwrap()
            .thread_private
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let m = b.recall(&query("Message-ID: <e1@x>\n\n")).await.unwrap();
    assert!(
        !m.thread_private && m.already_has.is_empty(),
        "{name}: expired"
    );
}

#[tokio::test]
async fn the_spool_backend_keeps_every_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    suite(&SpoolMemory::new(spool.clone()), &spool).await;
}

#[tokio::test]
async fn the_redis_backend_keeps_every_memory() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let m = MemoryConfig {
        url: format!("redis://127.0.0.1:{}/0", redis.port),
        password_file: None,
        ca_file: None,
    };
    suite(&RedisMemory::open(&m), &spool).await;
}

#[tokio::test]
async fn the_redis_backend_takes_its_password_from_a_file_and_fails_fast_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let m = MemoryConfig {
        url: format!("redis://127.0.0.1:{port}/0"),
        password_file: None,
        ca_file: None,
    };
    let started = std::time::Instant::now();
    let r = RedisMemory::open(&m)
        .recall(&query("Message-ID: <a@x>\n\n"))
        .await;
    assert!(r.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A password-protected Redis: the password comes from password_file.
    let mut redis = Redis::start();
    redis.stop();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &redis.port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "s3cret",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let child = Guard(child);
    let port = redis.port;
    assert!(common::wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let pass = dir.path().join("redis.pass");
    std::fs::write(&pass, "s3cret\n").unwrap();
    let url = format!("redis://127.0.0.1:{port}/0");
    let without = RedisMemory::open(&MemoryConfig {
        url: url.clone(),
        password_file: None,
        ca_file: None,
    });
    assert!(without.absences().await.is_err(), "no password: refused");
    let with = RedisMemory::open(&MemoryConfig {
        url,
        password_file: Some(pass),
        ca_file: None,
    });
    assert!(with.absences().await.unwrap().is_empty());
    drop(child);
}

/// Kills the child when the test ends, even on a failed assertion.
struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn rediss_urls_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certs(dir.path());
    let port = common::free_port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(dir.path().join("cert.pem"))
        .arg("--tls-key-file")
        .arg(dir.path().join("key.pem"))
        .arg("--tls-ca-cert-file")
        .arg(dir.path().join("ca.pem"))
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _child = Guard(child);
    assert!(common::wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    // The test CA is not in the system roots: verified TLS refuses it...
    let verified = RedisMemory::open(&MemoryConfig {
        url: format!("rediss://127.0.0.1:{port}/0"),
        password_file: None,
        ca_file: None,
    });
    assert!(verified.absences().await.is_err());
    // ...and with `ca_file` naming it, the certificate is verified and trusted.
    let trusted = RedisMemory::open(&MemoryConfig {
        url: format!("rediss://127.0.0.1:{port}/0"),
        password_file: None,
        ca_file: Some(dir.path().join("ca.pem")),
    });
    assert!(trusted.absences().await.unwrap().is_empty());
    let mut r = remember("tls@x");
    r.delivered = vec!["alice@example.com".into()];
    assert!(trusted.remember(&r).await.unwrap().lost.is_empty());
    let m = trusted
        .recall(&query("Message-ID: <tls@x>\n\n"))
        .await
        .unwrap();
    assert_eq!(m.already_has.len(), 1);
    // Plain text to a TLS port fails.
    let plain = RedisMemory::open(&MemoryConfig {
        url: format!("redis://127.0.0.1:{port}/0"),
        password_file: None,
        ca_file: None,
    });
    assert!(plain.absences().await.is_err());
}
