//! One SMTP/LMTP transaction with one result per recipient, over a connection from the
//! [`pool`](super::pool) or a new one. The envelope and DATA are driven step by step,
//! because mail-send's `send()` stops at the first refused recipient and reads one reply
//! after DATA — wrong for LMTP and for partial acceptance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail_send::SmtpClient;
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connection::{self, Client, Conn};
use super::convert::{self, Needs, Offers};
use super::message::{stuff_all, write_data};
use super::outcome::{from_error, from_reply, Outcome};
use super::pool::Pool;
use crate::config::{RouteAuth, Target};

/// Limit for sending the message body itself.
const SEND_TIMEOUT: Duration = Duration::from_secs(600);

/// The message body of a delivery: small ones are read once per try and kept in memory
/// for all of its transactions; large ones are streamed from the spool file.
#[derive(Clone)]
pub enum Body {
    Memory(Arc<[u8]>),
    File(PathBuf),
}

/// One transaction to make.
#[derive(Clone)]
pub struct Job<'a> {
    pub hostname: &'a str,
    /// Limit for each reply of the next hop (`deliver.timeout`).
    pub timeout: Duration,
    pub sender: Option<&'a str>,
    pub rcpts: Vec<String>,
    pub prefix: String,
    pub body: Body,
    /// What the next hop must offer to take the message unchanged.
    pub needs: Needs,
}

/// Results for every recipient of `job`.
pub type Results = Vec<(String, Outcome)>;

fn all(rcpts: &[String], o: Outcome) -> Results {
    rcpts.iter().map(|r| (r.clone(), o.clone())).collect()
}

/// Delivers `job` to a network target, reusing a pooled connection when there is one.
/// A pooled connection that turns out to be dead before anything was accepted is
/// replaced by a fresh one, once.
pub async fn deliver(
    pool: &Pool,
    key: &str,
    target: &Target,
    auth: Option<&RouteAuth>,
    job: &Job<'_>,
) -> Results {
    let open = || connection::open(target, auth, job.hostname, job.timeout);
    deliver_via(pool, key, open, job)
        .await
        .unwrap_or_else(|o| all(&job.rcpts, o))
}

/// Like [`deliver`], with the way to open a new connection given by the caller. `Err`
/// means no connection could be had (refused, unreachable, a greeting other than 220):
/// nothing was sent, and `mx` delivery moves on to the next address.
pub async fn deliver_via<F, Fut>(
    pool: &Pool,
    key: &str,
    open: F,
    job: &Job<'_>,
) -> Result<Results, Outcome>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Conn, Outcome>>,
{
    if let Some(mut conn) = pool.take(key) {
        match transact(&mut conn, job).await {
            Attempt::Done(results, reusable) => {
                if reusable {
                    pool.put(key, conn);
                }
                return Ok(results);
            }
            Attempt::Stale => {}
        }
    }
    let mut conn = open().await?;
    match transact(&mut conn, job).await {
        Attempt::Done(results, reusable) => {
            if reusable {
                pool.put(key, conn);
            }
            Ok(results)
        }
        Attempt::Stale => Ok(all(
            &job.rcpts,
            Outcome::Deferred("MAIL: connection lost".into()),
        )),
    }
}

/// How a transaction went.
enum Attempt {
    /// Results per recipient, and whether the connection can take another transaction.
    Done(Results, bool),
    /// The connection failed at MAIL, before anything was sent: try a new one.
    Stale,
}

async fn transact(conn: &mut Conn, job: &Job<'_>) -> Attempt {
    let lmtp = conn.lmtp;
    match &mut conn.client {
        Client::Tcp(c) => send(c, &conn.ehlo, lmtp, job).await,
        Client::Tls(c) => send(c, &conn.ehlo, lmtp, job).await,
        Client::Unix(c) => send(c, &conn.ehlo, lmtp, job).await,
    }
}

/// MAIL, one RCPT per recipient, DATA, and the reply (or, for LMTP, one reply per
/// accepted recipient).
async fn send<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    ehlo: &EhloResponse<String>,
    lmtp: bool,
    job: &Job<'_>,
) -> Attempt {
    let offers = Offers {
        smtputf8: ehlo.has_capability(smtp_proto::EXT_SMTP_UTF8),
        eight_bit_mime: ehlo.has_capability(smtp_proto::EXT_8BIT_MIME),
    };
    if let Some(refused) = convert::refusal(job.needs, offers) {
        // Nothing was sent: the connection stays good for another message.
        return Attempt::Done(all(&job.rcpts, refused), true);
    }
    let mail = format!(
        "MAIL FROM:<{}>{}\r\n",
        job.sender.unwrap_or(""),
        mail_params(ehlo, job)
    );
    let envelope = if ehlo.has_capability(smtp_proto::EXT_PIPELINING) {
        envelope_pipelined(client, mail, job).await
    } else {
        envelope_in_turn(client, mail, job).await
    };
    let (accepted, mut results) = match envelope {
        Ok(ready) => ready,
        Err(attempt) => return attempt,
    };
    let sent = tokio::time::timeout(SEND_TIMEOUT, write_body(&mut client.stream, job)).await;
    let failure = match sent {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("sending message: {e}")),
        Err(_) => Some("sending message: timed out".to_string()),
    };
    if let Some(why) = failure {
        results.extend(all(&accepted, Outcome::Deferred(why)));
        return Attempt::Done(results, false);
    }
    let want = if lmtp { accepted.len() } else { 1 };
    let replies = read_replies(&mut client.stream, want, job.timeout).await;
    let complete = replies.len() == want;
    for (i, rcpt) in accepted.iter().enumerate() {
        let reply = if lmtp {
            replies.get(i)
        } else {
            replies.first()
        };
        let outcome = match reply {
            Some(r) => from_reply("end of DATA", r),
            // No reply: the message may or may not have arrived. Retry: a possible
            // duplicate is better than a possible loss.
            None => Outcome::Deferred("end of DATA: no reply".into()),
        };
        results.push((rcpt.clone(), outcome));
    }
    let reusable = complete && replies.iter().all(|r| r.code != 421);
    Attempt::Done(results, reusable)
}

/// The recipients the next hop accepted (DATA said 354, the body comes next) with the
/// results of those it refused; or the whole attempt when the transaction ends here.
type Envelope = Result<(Vec<String>, Results), Attempt>;

/// MAIL, RCPT and DATA one after the other, each waiting for its reply.
async fn envelope_in_turn<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    mail: String,
    job: &Job<'_>,
) -> Envelope {
    match client.cmd(mail).await {
        Ok(r) if r.code / 100 == 2 => {}
        Ok(r) => return Err(mail_refused(client, &r, job, true).await),
        Err(mail_send::Error::Io(_) | mail_send::Error::UnparseableReply) => {
            return Err(Attempt::Stale)
        }
        Err(e) => return Err(Attempt::Done(all(&job.rcpts, from_error("MAIL", e)), false)),
    }
    let (mut accepted, mut results) = (Vec::new(), Vec::new());
    for (i, rcpt) in job.rcpts.iter().enumerate() {
        match client.cmd(format!("RCPT TO:<{rcpt}>\r\n")).await {
            Ok(r) if r.code / 100 == 2 => accepted.push(rcpt.clone()),
            Ok(r) => results.push((rcpt.clone(), from_reply("RCPT", &r))),
            Err(e) => {
                results.extend(all(&job.rcpts[i..], from_error("RCPT", e)));
                return Err(Attempt::Done(results, false));
            }
        }
    }
    if accepted.is_empty() {
        let reusable = rset(client).await;
        return Err(Attempt::Done(results, reusable));
    }
    match client.cmd("DATA\r\n").await {
        Ok(r) if r.code == 354 => Ok((accepted, results)),
        Ok(r) => {
            results.extend(all(&accepted, from_reply("DATA", &r)));
            let reusable = rset(client).await;
            Err(Attempt::Done(results, reusable))
        }
        Err(e) => {
            results.extend(all(&accepted, from_error("DATA", e)));
            Err(Attempt::Done(results, false))
        }
    }
}

/// RFC 2920 PIPELINING: MAIL, every RCPT and DATA in one write, then their replies in
/// order, so the envelope costs one round trip instead of two plus one per recipient.
/// The replies are judged as if the commands had been sent one by one.
async fn envelope_pipelined<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    mail: String,
    job: &Job<'_>,
) -> Envelope {
    let mut batch = mail;
    for rcpt in &job.rcpts {
        batch.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
    }
    batch.push_str("DATA\r\n");
    let written = async {
        client.stream.write_all(batch.as_bytes()).await?;
        client.stream.flush().await
    };
    if tokio::time::timeout(job.timeout, written)
        .await
        .map_or(true, |w| w.is_err())
    {
        return Err(Attempt::Stale);
    }
    let want = job.rcpts.len() + 2;
    let replies = read_replies(&mut client.stream, want, job.timeout).await;
    let Some(mail_reply) = replies.first() else {
        // Not even MAIL was answered: nothing was accepted (a dead pooled connection).
        return Err(Attempt::Stale);
    };
    let data_reply = replies.get(want - 1);
    // A DATA that got 354 although nothing before it may go on: the server now waits for
    // a body. Dropping the connection makes it abandon the transaction.
    let data_open = data_reply.is_some_and(|r| r.code == 354);
    if mail_reply.code / 100 != 2 {
        let complete = replies.len() == want && !data_open;
        return Err(mail_refused(client, mail_reply, job, complete).await);
    }
    let (mut accepted, mut results) = (Vec::new(), Vec::new());
    for (i, rcpt) in job.rcpts.iter().enumerate() {
        match replies.get(i + 1) {
            Some(r) if r.code / 100 == 2 => accepted.push(rcpt.clone()),
            Some(r) => results.push((rcpt.clone(), from_reply("RCPT", r))),
            None => results.push((
                rcpt.clone(),
                Outcome::Deferred("RCPT: connection lost".into()),
            )),
        }
    }
    match data_reply {
        Some(_) if accepted.is_empty() => {
            let reusable = !data_open && rset(client).await;
            Err(Attempt::Done(results, reusable))
        }
        Some(r) if r.code == 354 => Ok((accepted, results)),
        Some(r) => {
            results.extend(all(&accepted, from_reply("DATA", r)));
            let reusable = rset(client).await;
            Err(Attempt::Done(results, reusable))
        }
        None => {
            results.extend(all(
                &accepted,
                Outcome::Deferred("DATA: connection lost".into()),
            ));
            Err(Attempt::Done(results, false))
        }
    }
}

/// Every recipient gets the MAIL refusal; the connection is kept (after RSET) when it is
/// still in step (`in_step`) and the server did not say 421.
async fn mail_refused<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    reply: &Response<String>,
    job: &Job<'_>,
    in_step: bool,
) -> Attempt {
    let results = all(&job.rcpts, from_reply("MAIL", reply));
    let reusable = in_step && reply.code != 421 && rset(client).await;
    Attempt::Done(results, reusable)
}

/// Ends a failed transaction so the connection can be reused; false if it cannot.
async fn rset<T: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<T>) -> bool {
    matches!(client.cmd("RSET\r\n").await, Ok(r) if r.code / 100 == 2)
}

async fn write_body<W: AsyncWrite + Unpin>(out: &mut W, job: &Job<'_>) -> std::io::Result<()> {
    match &job.body {
        Body::Memory(bytes) => {
            let wire = stuff_all(&job.prefix, bytes);
            out.write_all(&wire).await?;
            out.flush().await
        }
        Body::File(path) => {
            let mut file = tokio::fs::File::open(path).await?;
            write_data(out, &job.prefix, &mut file).await
        }
    }
}

/// `SMTPUTF8` when the message needs it (the server offers it, or [`convert::refusal`]
/// stopped the transaction); `BODY=8BITMIME` whenever offered (harmless for 7-bit).
fn mail_params(ehlo: &EhloResponse<String>, job: &Job<'_>) -> String {
    let mut p = String::new();
    if ehlo.has_capability(smtp_proto::EXT_8BIT_MIME) {
        p.push_str(" BODY=8BITMIME");
    }
    if job.needs.smtputf8 && ehlo.has_capability(smtp_proto::EXT_SMTP_UTF8) {
        p.push_str(" SMTPUTF8");
    }
    p
}

/// Reads up to `n` replies, keeping bytes that belong to the next one (LMTP servers
/// send several in one packet). Stops early on error or timeout.
async fn read_replies<T: AsyncRead + Unpin>(
    stream: &mut T,
    n: usize,
    timeout: Duration,
) -> Vec<Response<String>> {
    let mut out = Vec::with_capacity(n);
    let mut parser = ResponseReceiver::default();
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    while out.len() < n {
        if pending.is_empty() {
            let read = tokio::time::timeout(timeout, stream.read(&mut buf)).await;
            match read {
                Ok(Ok(k)) if k > 0 => pending.extend_from_slice(&buf[..k]),
                _ => break,
            }
        }
        let mut iter = pending.iter();
        match parser.parse(&mut iter) {
            Ok(reply) => {
                let rest = iter.as_slice().to_vec();
                pending = rest;
                out.push(reply);
                parser.reset();
            }
            Err(smtp_proto::Error::NeedsMoreData { .. }) => pending.clear(),
            Err(_) => break,
        }
    }
    out
}
