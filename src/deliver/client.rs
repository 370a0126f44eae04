//! SMTP and LMTP delivery with one result per recipient. mail-send makes the connection
//! (TCP, TLS, EHLO, AUTH); the envelope and DATA are driven step by step here, because
//! mail-send's `send()` stops at the first refused recipient and reads one reply after
//! DATA — wrong for LMTP and for partial acceptance.

use std::path::Path;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient};
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Response, EXT_START_TLS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::message::{open_body, write_data};
use super::outcome::{from_error, from_reply, Outcome};
use super::tls;
use crate::config::{RouteAuth, Target, TargetTls};

/// Limit for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for sending the message body itself.
const SEND_TIMEOUT: Duration = Duration::from_secs(600);

/// One transaction to make.
pub struct Job<'a> {
    pub hostname: &'a str,
    /// Limit for each reply of the next hop (`deliver.timeout`).
    pub timeout: Duration,
    pub sender: Option<&'a str>,
    pub rcpts: Vec<String>,
    pub prefix: String,
    pub body: &'a Path,
}

/// Results for every recipient of `job`.
pub type Results = Vec<(String, Outcome)>;

fn all(rcpts: &[String], o: Outcome) -> Results {
    rcpts.iter().map(|r| (r.clone(), o.clone())).collect()
}

/// Delivers `job` to a network target.
pub async fn deliver(target: &Target, auth: Option<&RouteAuth>, job: &Job<'_>) -> Results {
    match target {
        Target::Smtp { host, port, tls } => smtp(host, *port, *tls, auth, job).await,
        Target::Lmtp { host, port } => match connect(host, *port, job.timeout).await {
            Ok(client) => greet_and_send(client, true, None, job).await,
            Err(o) => all(&job.rcpts, o),
        },
        Target::LmtpUnix(path) => match tokio::net::UnixStream::connect(path).await {
            Ok(stream) => {
                let client = SmtpClient { stream, timeout: job.timeout };
                greet_and_send(client, true, None, job).await
            }
            Err(e) => all(&job.rcpts, Outcome::Deferred(format!("connect {}: {e}", path.display()))),
        },
        Target::Maildir(_) => all(&job.rcpts, Outcome::Deferred("internal: maildir is not a network target".into())),
    }
}

async fn connect(host: &str, port: u16, timeout: Duration) -> Result<SmtpClient<TcpStream>, Outcome> {
    let stage = format!("connect {host}:{port}");
    let addr = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Outcome::Deferred(format!("{stage}: cannot resolve")))?;
    let mut client = SmtpClient::connect(addr, CONNECT_TIMEOUT).await.map_err(|e| from_error(&stage, e))?;
    client.timeout = timeout;
    Ok(client)
}

fn credentials(auth: Option<&RouteAuth>) -> Result<Option<Credentials<String>>, Outcome> {
    let Some(RouteAuth { username: Some(user), password_file: Some(file), .. }) = auth else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(file)
        .map_err(|e| Outcome::Deferred(format!("cannot read password_file {}: {e}", file.display())))?;
    Ok(Some(Credentials::Plain { username: user.clone(), secret: secret.trim_end_matches(['\r', '\n']).to_string() }))
}

async fn smtp(host: &str, port: u16, mode: TargetTls, auth: Option<&RouteAuth>, job: &Job<'_>) -> Results {
    let creds = match credentials(auth) {
        Ok(c) => c,
        Err(o) => return all(&job.rcpts, o),
    };
    let ca = auth.and_then(|a| a.ca_file.as_deref());
    let client = match connect(host, port, job.timeout).await {
        Ok(c) => c,
        Err(o) => return all(&job.rcpts, o),
    };
    if mode == TargetTls::Implicit {
        let connector = match tls::connector(true, ca) {
            Ok(c) => c,
            Err(e) => return all(&job.rcpts, Outcome::Deferred(e)),
        };
        return match client.into_tls(&connector, host).await {
            Ok(c) => greet_and_send(c, false, creds.as_ref(), job).await,
            Err(e) => all(&job.rcpts, from_error("TLS handshake", e)),
        };
    }
    let mut client = client;
    let ehlo = match greet(&mut client, false, job.hostname).await {
        Ok(e) => e,
        Err(o) => return all(&job.rcpts, o),
    };
    let offered = ehlo.has_capability(EXT_START_TLS);
    match (mode, offered) {
        (TargetTls::StartTls, false) => {
            all(&job.rcpts, Outcome::Deferred("STARTTLS required but not offered".into()))
        }
        (TargetTls::StartTls | TargetTls::Opportunistic, true) => {
            let connector = match tls::connector(mode == TargetTls::StartTls, ca) {
                Ok(c) => c,
                Err(e) => return all(&job.rcpts, Outcome::Deferred(e)),
            };
            match client.start_tls(&connector, host).await {
                Ok(mut tls_client) => match tls_client.ehlo(job.hostname).await {
                    Ok(ehlo) => send(&mut tls_client, &ehlo, false, creds.as_ref(), job).await,
                    Err(e) => all(&job.rcpts, from_error("EHLO after STARTTLS", e)),
                },
                Err(e) => all(&job.rcpts, from_error("STARTTLS", e)),
            }
        }
        _ => send(&mut client, &ehlo, false, creds.as_ref(), job).await,
    }
}

/// Reads the greeting and says EHLO (or LHLO).
async fn greet<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    lmtp: bool,
    hostname: &str,
) -> Result<EhloResponse<String>, Outcome> {
    let greeting = client.read().await.map_err(|e| from_error("greeting", e))?;
    if greeting.code != 220 {
        return Err(from_reply("greeting", &greeting));
    }
    let r = if lmtp { client.lhlo(hostname).await } else { client.ehlo(hostname).await };
    r.map_err(|e| from_error(if lmtp { "LHLO" } else { "EHLO" }, e))
}

async fn greet_and_send<T: AsyncRead + AsyncWrite + Unpin>(
    mut client: SmtpClient<T>,
    lmtp: bool,
    creds: Option<&Credentials<String>>,
    job: &Job<'_>,
) -> Results {
    match greet(&mut client, lmtp, job.hostname).await {
        Ok(ehlo) => send(&mut client, &ehlo, lmtp, creds, job).await,
        Err(o) => all(&job.rcpts, o),
    }
}

/// AUTH (if configured), MAIL, one RCPT per recipient, DATA, and the reply (or, for
/// LMTP, one reply per accepted recipient).
async fn send<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    ehlo: &EhloResponse<String>,
    lmtp: bool,
    creds: Option<&Credentials<String>>,
    job: &Job<'_>,
) -> Results {
    if let Some(creds) = creds {
        if let Err(e) = client.authenticate(creds, ehlo).await {
            return all(&job.rcpts, from_error("AUTH", e));
        }
    }
    let mut results = Vec::new();
    let mail = format!("MAIL FROM:<{}>{}\r\n", job.sender.unwrap_or(""), mail_params(ehlo, job));
    match client.cmd(mail).await {
        Ok(r) if r.code / 100 == 2 => {}
        Ok(r) => return all(&job.rcpts, from_reply("MAIL", &r)),
        Err(e) => return all(&job.rcpts, from_error("MAIL", e)),
    }
    let mut accepted = Vec::new();
    for (i, rcpt) in job.rcpts.iter().enumerate() {
        match client.cmd(format!("RCPT TO:<{rcpt}>\r\n")).await {
            Ok(r) if r.code / 100 == 2 => accepted.push(rcpt.clone()),
            Ok(r) => results.push((rcpt.clone(), from_reply("RCPT", &r))),
            Err(e) => {
                results.extend(all(&job.rcpts[i..], from_error("RCPT", e)));
                return results;
            }
        }
    }
    if accepted.is_empty() {
        let _ = client.cmd("QUIT\r\n").await;
        return results;
    }
    match client.cmd("DATA\r\n").await {
        Ok(r) if r.code == 354 => {}
        Ok(r) => {
            results.extend(all(&accepted, from_reply("DATA", &r)));
            return results;
        }
        Err(e) => {
            results.extend(all(&accepted, from_error("DATA", e)));
            return results;
        }
    }
    let sent = tokio::time::timeout(SEND_TIMEOUT, async {
        let mut body = open_body(job.body).await?;
        write_data(&mut client.stream, &job.prefix, &mut body).await
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            results.extend(all(&accepted, Outcome::Deferred(format!("sending message: {e}"))));
            return results;
        }
        Err(_) => {
            results.extend(all(&accepted, Outcome::Deferred("sending message: timed out".into())));
            return results;
        }
    }
    let want = if lmtp { accepted.len() } else { 1 };
    let replies = read_replies(&mut client.stream, want, job.timeout).await;
    for (i, rcpt) in accepted.iter().enumerate() {
        let reply = if lmtp { replies.get(i) } else { replies.first() };
        let outcome = match reply {
            Some(r) => from_reply("end of DATA", r),
            // No reply: the message may or may not have arrived. Retry: a possible
            // duplicate is better than a possible loss.
            None => Outcome::Deferred("end of DATA: no reply".into()),
        };
        results.push((rcpt.clone(), outcome));
    }
    let _ = client.cmd("QUIT\r\n").await;
    results
}

/// `SMTPUTF8` when an address needs it and the server offers it; `BODY=8BITMIME` always
/// when offered (we cannot cheaply know the body is 7-bit).
fn mail_params(ehlo: &EhloResponse<String>, job: &Job<'_>) -> String {
    let mut p = String::new();
    if ehlo.has_capability(smtp_proto::EXT_8BIT_MIME) {
        p.push_str(" BODY=8BITMIME");
    }
    let utf8 = job.sender.is_some_and(|s| !s.is_ascii()) || job.rcpts.iter().any(|r| !r.is_ascii());
    if utf8 && ehlo.has_capability(smtp_proto::EXT_SMTP_UTF8) {
        p.push_str(" SMTPUTF8");
    }
    p
}

/// Reads up to `n` replies, keeping bytes that belong to the next one (LMTP servers
/// send several in one packet). Stops early on error or timeout.
async fn read_replies<T: AsyncRead + Unpin>(stream: &mut T, n: usize, timeout: Duration) -> Vec<Response<String>> {
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
