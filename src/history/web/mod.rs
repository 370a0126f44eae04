//! The history's web page (SPEC §8): server-rendered, read-only views of the same store
//! the CLI reads, for team members who log in with their `[[user]]` name and password.
//!
//! Every response carries the §8 Content-Security-Policy and runs no script. Every
//! method but GET and HEAD, outside `/login` and `/logout`, gets `405`; every page but
//! `/login` answers `303` to `/login` without a session. Values from mail are escaped
//! by maud.

mod pages;
mod session;
mod style;
mod tls;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::History;
use crate::shared::Shared;

/// The §8 policy: no script, no frames, no fetches; inline styles only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'";

/// What every handler shares.
pub struct Web {
    pub history: History,
    pub shared: Arc<Shared>,
    pub sessions: session::Sessions,
    /// Served over TLS: the cookie is `Secure`.
    pub secure: bool,
}

type AppState = Arc<Web>;

/// The router, with the guard in front of every route.
pub fn router(web: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/customer/{addr}", get(pages::customer))
        .route("/thread/{id}", get(pages::thread))
        .route("/search", get(pages::search))
        .route("/message/{file}", get(pages::message))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", get(session::logout).post(session::logout))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web)
}

/// Method and session checks, and the security headers on every answer.
async fn guard(State(web): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let open = path == "/login" || path == "/logout";
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let mut resp = if !open && !read {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "read-only\n",
        )
            .into_response()
    } else if open {
        next.run(req).await
    } else {
        match web.sessions.user(req.headers()) {
            Some(user) => {
                req.extensions_mut().insert(session::User(user));
                next.run(req).await
            }
            None => Redirect::to("/login").into_response(),
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Serves the page until `shutdown`; over TLS from the first byte when `tls` is given.
pub async fn run(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    history: History,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let web = Arc::new(Web {
        history,
        shared,
        sessions: session::Sessions::default(),
        secure: tls.is_some(),
    });
    let app = router(web);
    info!(listen = ?listener.local_addr().ok(), tls = tls.is_some(), "history web page");
    let stop = shutdown.clone();
    let result = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
        Some(config) => {
            axum::serve(tls::Listener::new(listener, config, shutdown.clone()), app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "history web page stopped");
    }
}
