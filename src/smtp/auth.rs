//! STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954) for submission listeners.
//!
//! STARTTLS forgets everything said before it (EHLO, AUTH) and throws away anything the
//! client pipelined behind it: those bytes arrived in clear and could have been injected
//! by someone in the middle (the STARTTLS command-injection class of bugs).

use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use tracing::{info, warn};

use super::session::Session;
use super::Reply;
use crate::config::{ListenTls, Mode};

/// Pause before answering a wrong password, against guessing.
pub const FAILED_AUTH_DELAY: Duration = Duration::from_secs(1);

impl Session {
    /// Whether AUTH is offered: submission listeners, once TLS is on or on loopback.
    pub fn auth_offered(&self) -> bool {
        self.listener.mode == Mode::Submission
            && self.auth_user.is_none()
            && (self.tls_active || self.peer.ip().is_loopback())
    }

    /// Ends a transaction in progress (RSET, a new EHLO), including a BDAT transfer.
    pub async fn reset_transaction(&mut self) {
        self.txn = None;
        if let Some(chunks) = self.bdat.take() {
            chunks.discard().await;
        }
    }

    pub(super) async fn starttls(&mut self) {
        if self.listener.tls != ListenTls::StartTls || self.tls_active {
            return self.reply(Reply::not_implemented());
        }
        let Some(tls) = self.config.tls.clone() else {
            return self.reply(Reply::new(454, "4.7.0", "TLS not available"));
        };
        if self.has_pending_input() {
            warn!(peer = %self.peer, "discarding commands pipelined after STARTTLS");
            self.discard_input();
        }
        self.reply(Reply::new(220, "2.0.0", "ready to start TLS"));
        if self.flush().await.is_err() {
            self.closing = true;
            return;
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
        let plain = self.take_stream();
        match tokio::time::timeout(super::HANDSHAKE_TIMEOUT, acceptor.accept(plain)).await {
            Ok(Ok(stream)) => {
                self.set_stream(Box::new(stream));
                self.tls_active = true;
                self.helo = None;
                self.esmtp = false;
                self.auth_user = None;
                self.reset_transaction().await;
            }
            Ok(Err(e)) => {
                info!(peer = %self.peer, error = %e, "TLS handshake failed");
                self.closing = true;
            }
            Err(_) => {
                info!(peer = %self.peer, "TLS handshake timed out");
                self.closing = true;
            }
        }
    }

    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) {
        if self.listener.mode != Mode::Submission {
            return self.reply(Reply::not_implemented());
        }
        if self.helo.is_none() || self.auth_user.is_some() || self.txn.is_some() {
            return self.reply(Reply::bad_sequence("AUTH not allowed now"));
        }
        if !self.tls_active && !self.peer.ip().is_loopback() {
            return self.reply(Reply::new(538, "5.7.11", "encryption required for AUTH"));
        }
        let creds = match mechanism {
            smtp_proto::AUTH_PLAIN => self.auth_plain(initial).await,
            smtp_proto::AUTH_LOGIN => self.auth_login(initial).await,
            _ => return self.reply(Reply::new(504, "5.5.4", "mechanism not supported")),
        };
        let Some((user, password)) = creds else {
            return;
        };
        let hash = self.config.user(&user).map(|u| u.password_hash.clone());
        if verify(hash, &password).await {
            info!(peer = %self.peer, user = %user, "authenticated");
            self.auth_user = Some(user);
            self.reply(Reply::new(235, "2.7.0", "authentication succeeded"));
        } else {
            info!(peer = %self.peer, user = %user, "authentication failed");
            crate::metrics::auth_failure();
            tokio::time::sleep(FAILED_AUTH_DELAY).await;
            self.reply(Reply::new(
                535,
                "5.7.8",
                "authentication credentials invalid",
            ));
        }
    }

    /// Reads one base64 response line after a `334` challenge; `None` (with the reply
    /// given) when the client cancels or sends junk.
    async fn challenge(&mut self, prompt: &str) -> Option<Vec<u8>> {
        self.reply(Reply::new(334, "", prompt));
        let Some(line) = self.read_auth_line().await else {
            self.closing = true;
            return None;
        };
        self.decode_response(String::from_utf8_lossy(&line).trim())
    }

    fn decode_response(&mut self, text: &str) -> Option<Vec<u8>> {
        if text == "*" {
            self.reply(Reply::new(501, "5.7.0", "authentication cancelled"));
            return None;
        }
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                self.reply(Reply::new(501, "5.5.2", "cannot decode response"));
                None
            }
        }
    }

    async fn auth_plain(&mut self, initial: String) -> Option<(String, String)> {
        let raw = if initial.is_empty() {
            self.challenge("").await?
        } else {
            self.decode_response(&initial)?
        };
        // authzid NUL authcid NUL password
        let mut parts = raw.split(|&b| b == 0);
        let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
        match (user, pass, parts.next()) {
            (Some(u), Some(p), None) => Some((
                String::from_utf8_lossy(u).into_owned(),
                String::from_utf8_lossy(p).into_owned(),
            )),
            _ => {
                self.reply(Reply::new(501, "5.5.2", "malformed AUTH PLAIN response"));
                None
            }
        }
    }

    async fn auth_login(&mut self, initial: String) -> Option<(String, String)> {
        let user = if initial.is_empty() {
            self.challenge("VXNlcm5hbWU6").await?
        } else {
            self.decode_response(&initial)?
        };
        let pass = self.challenge("UGFzc3dvcmQ6").await?;
        Some((
            String::from_utf8_lossy(&user).into_owned(),
            String::from_utf8_lossy(&pass).into_owned(),
        ))
    }
}

/// argon2 verification off the async threads (it is deliberately slow). An unknown user
/// is simply a failure, after the same delay as a wrong password.
pub async fn verify(hash: Option<String>, password: &str) -> bool {
    let Some(hash) = hash else { return false };
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// `teamrelay passwd`: an argon2id hash of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
        .map_err(|e| format!("cannot read random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_salts_differ() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        let h = PasswordHash::new(&a).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &h)
            .is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &h).is_err());
    }
}
