//! Logging in: the `[[user]]` names and argon2 hashes of submission AUTH, checked the
//! same way (and after a failure, the same one-second pause), then a random session id
//! in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS). Sessions live in
//! memory: a restart logs everyone out, which is the safe direction.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tracing::info;

use super::{pages, AppState};

/// The cookie's name.
const COOKIE: &str = "teamrelay_session";
/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The logged-in user of a request.
#[derive(Clone)]
pub struct User(pub String);

/// Open sessions: id → (user, expiry).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, (String, Instant)>>);

impl Sessions {
    /// The user of the session the request's cookie names, if it is open.
    pub fn user(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers)?;
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, until)| *until > now);
        map.get(&id).map(|(u, _)| u.clone())
    }

    fn open(&self, user: &str) -> Option<String> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), (user.to_string(), Instant::now() + LIFETIME));
        Some(id)
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The form's fields.
#[derive(Deserialize)]
pub struct Login {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// GET /login.
pub async fn login_form() -> Response {
    pages::login(None).into_response()
}

/// POST /login.
pub async fn login(State(web): State<AppState>, Form(form): Form<Login>) -> Response {
    let config = web.shared.config();
    let hash = config.user(&form.name).map(|u| u.password_hash.clone());
    if !crate::smtp::verify_password(hash, &form.password).await {
        info!(user = %form.name, "history web page: login failed");
        tokio::time::sleep(crate::smtp::FAILED_AUTH_DELAY).await;
        return (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("Wrong name or password.")),
        )
            .into_response();
    }
    let Some(id) = web.sessions.open(&form.name) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session\n",
        )
            .into_response();
    };
    info!(user = %form.name, "history web page: logged in");
    let secure = if web.secure { "; Secure" } else { "" };
    let set = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        LIFETIME.as_secs()
    );
    ([(header::SET_COOKIE, set)], Redirect::to("/")).into_response()
}

/// GET or POST /logout.
pub async fn logout(State(web): State<AppState>, headers: HeaderMap) -> Response {
    web.sessions.close(&headers);
    let secure = if web.secure { "; Secure" } else { "" };
    let set = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    ([(header::SET_COOKIE, set)], Redirect::to("/login")).into_response()
}
