//! Opening a ready-to-send connection to a next hop: TCP or Unix socket, greeting,
//! EHLO/LHLO, STARTTLS (required, opportunistic or implicit), AUTH. mail-send does the
//! protocol steps; this module decides which ones a route needs.

use std::net::SocketAddr;
use std::time::Duration;

use mail_send::{Credentials, SmtpClient};
use smtp_proto::{EhloResponse, EXT_START_TLS};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use super::outcome::{from_error, from_reply, Outcome};
use super::tls;
use crate::config::{RouteAuth, Target, TargetTls};

/// Limit for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The transport under a connection.
pub enum Client {
    Tcp(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
    Unix(SmtpClient<UnixStream>),
}

/// A connection that has said EHLO/LHLO (and AUTH) and can run transactions.
pub struct Conn {
    pub client: Client,
    pub ehlo: EhloResponse<String>,
    pub lmtp: bool,
}

/// Opens a connection for `target`.
pub async fn open(
    target: &Target,
    auth: Option<&RouteAuth>,
    hostname: &str,
    timeout: Duration,
) -> Result<Conn, Outcome> {
    let creds = credentials(auth)?;
    let mut conn = match target {
        Target::Smtp { host, port, tls } => {
            smtp(host, *port, *tls, auth, hostname, timeout).await?
        }
        Target::Lmtp { host, port } => {
            let mut client = tcp(host, *port, timeout).await?;
            let ehlo = greet(&mut client, true, hostname).await?;
            Conn {
                client: Client::Tcp(client),
                ehlo,
                lmtp: true,
            }
        }
        Target::LmtpUnix(path) => {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|e| Outcome::Deferred(format!("connect {}: {e}", path.display())))?;
            let mut client = SmtpClient { stream, timeout };
            let ehlo = greet(&mut client, true, hostname).await?;
            Conn {
                client: Client::Unix(client),
                ehlo,
                lmtp: true,
            }
        }
        Target::Maildir(_) | Target::Mx => {
            return Err(Outcome::Deferred(format!(
                "internal: {target} is not opened as one connection"
            )))
        }
    };
    if let Some(creds) = creds {
        let r = match &mut conn.client {
            Client::Tcp(c) => c.authenticate(&creds, &conn.ehlo).await.map(|_| ()),
            Client::Tls(c) => c.authenticate(&creds, &conn.ehlo).await.map(|_| ()),
            Client::Unix(c) => c.authenticate(&creds, &conn.ehlo).await.map(|_| ()),
        };
        r.map_err(|e| from_error("AUTH", e))?;
    }
    Ok(conn)
}

async fn tcp(host: &str, port: u16, timeout: Duration) -> Result<SmtpClient<TcpStream>, Outcome> {
    let stage = format!("connect {host}:{port}");
    let addr = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Outcome::Deferred(format!("{stage}: cannot resolve")))?;
    connect(addr, timeout).await
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<SmtpClient<TcpStream>, Outcome> {
    let mut client = SmtpClient::connect(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| from_error(&format!("connect {addr}"), e))?;
    let _ = client.stream.set_nodelay(true);
    client.timeout = timeout;
    Ok(client)
}

/// Opens an SMTP connection to one address of an MX host (`mx` delivery): STARTTLS when
/// offered, as on `smtp://` (RFC 3207 opportunistic; the certificate is not checked,
/// since an MX name proves nothing without DANE or MTA-STS).
pub async fn open_mx(
    addr: SocketAddr,
    mx_host: &str,
    hostname: &str,
    timeout: Duration,
) -> Result<Conn, Outcome> {
    let client = connect(addr, timeout).await?;
    negotiate(client, mx_host, TargetTls::Opportunistic, None, hostname).await
}

/// The route's AUTH credentials, read from their file at connection time (so the secret
/// is never kept in the config or printed).
fn credentials(auth: Option<&RouteAuth>) -> Result<Option<Credentials<String>>, Outcome> {
    let Some(RouteAuth {
        username: Some(user),
        password_file: Some(file),
        ..
    }) = auth
    else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(file).map_err(|e| {
        Outcome::Deferred(format!("cannot read password_file {}: {e}", file.display()))
    })?;
    Ok(Some(Credentials::Plain {
        username: user.clone(),
        secret: secret.trim_end_matches(['\r', '\n']).to_string(),
    }))
}

async fn smtp(
    host: &str,
    port: u16,
    mode: TargetTls,
    auth: Option<&RouteAuth>,
    hostname: &str,
    timeout: Duration,
) -> Result<Conn, Outcome> {
    let ca = auth.and_then(|a| a.ca_file.as_deref());
    let client = tcp(host, port, timeout).await?;
    negotiate(client, host, mode, ca, hostname).await
}

/// Greeting, EHLO and TLS as `mode` asks, on a connected socket.
async fn negotiate(
    mut client: SmtpClient<TcpStream>,
    host: &str,
    mode: TargetTls,
    ca: Option<&std::path::Path>,
    hostname: &str,
) -> Result<Conn, Outcome> {
    if mode == TargetTls::Implicit {
        let connector = tls::connector(true, ca).map_err(Outcome::Deferred)?;
        let mut client = client
            .into_tls(&connector, host)
            .await
            .map_err(|e| from_error("TLS handshake", e))?;
        let ehlo = greet(&mut client, false, hostname).await?;
        return Ok(Conn {
            client: Client::Tls(Box::new(client)),
            ehlo,
            lmtp: false,
        });
    }
    let ehlo = greet(&mut client, false, hostname).await?;
    let offered = ehlo.has_capability(EXT_START_TLS);
    match (mode, offered) {
        (TargetTls::StartTls, false) => Err(Outcome::Deferred(
            "STARTTLS required but not offered".into(),
        )),
        (TargetTls::StartTls | TargetTls::Opportunistic, true) => {
            let connector =
                tls::connector(mode == TargetTls::StartTls, ca).map_err(Outcome::Deferred)?;
            let mut client = client
                .start_tls(&connector, host)
                .await
                .map_err(|e| from_error("STARTTLS", e))?;
            let ehlo = client
                .ehlo(hostname)
                .await
                .map_err(|e| from_error("EHLO after STARTTLS", e))?;
            Ok(Conn {
                client: Client::Tls(Box::new(client)),
                ehlo,
                lmtp: false,
            })
        }
        _ => Ok(Conn {
            client: Client::Tcp(client),
            ehlo,
            lmtp: false,
        }),
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
    let r = if lmtp {
        client.lhlo(hostname).await
    } else {
        client.ehlo(hostname).await
    };
    r.map_err(|e| from_error(if lmtp { "LHLO" } else { "EHLO" }, e))
}
