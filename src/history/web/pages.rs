//! The views: `/` (search and recent customers), `/customer/ADDR` (threads as a
//! timeline), `/thread/ID` (every message's text), `/search?q=` (hits with snippets),
//! `/message/ID.eml` (the kept message). maud escapes every value it renders.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::session::User;
use super::style::CSS;
use super::AppState;
use crate::address::Address;
use crate::history::query;
use crate::history::record::{rfc3339, Direction, MessageView};

/// Customers on the front page.
const RECENT: usize = 30;

/// A path segment, percent-encoded (Message-IDs may hold `/`, `%`, `?`).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2026-12-01 10:00` (UTC), shorter than RFC 3339 for people.
fn when(unix: i64) -> String {
    let s = rfc3339(unix);
    format!("{} {}", &s[..10], &s[11..16])
}

fn page(title: &str, user: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · teamrelay history" }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                header {
                    a.home href="/" { "Customer history" }
                    @if let Some(user) = user {
                        form.search action="/search" method="get" role="search" {
                            input type="search" name="q" placeholder="Search subjects and text" aria-label="Search";
                        }
                        span.who {
                            (user)
                            form action="/logout" method="post" { button.link type="submit" { "Log out" } }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn badge(d: Direction) -> Markup {
    let (class, label) = match d {
        Direction::Inbound => ("dir inbound", "← inbound"),
        Direction::Outbound => ("dir outbound", "→ outbound"),
    };
    html! { span class=(class) { (label) } }
}

/// "first – last" of a thread's messages, or one date.
fn span_of(messages: &[MessageView]) -> String {
    match (messages.first(), messages.last()) {
        (Some(a), Some(b)) if when(a.unix) != when(b.unix) => {
            format!("{} – {}", when(a.unix), when(b.unix))
        }
        (Some(a), _) => when(a.unix),
        _ => String::new(),
    }
}

fn message_line(m: &MessageView) -> Markup {
    html! {
        span.who-wrote { (m.from) } " → " (m.to.join(", "))
        @if !m.cc.is_empty() { " · cc " (m.cc.join(", ")) }
    }
}

/// The login form, with an error after a failed try.
pub fn login(error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            form.login.card action="/login" method="post" {
                h1 { "Log in" }
                @if let Some(e) = error { p.error { (e) } }
                label for="name" { "Name" }
                input #name type="text" name="name" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `/`.
pub async fn index(State(web): State<AppState>, Extension(User(user)): Extension<User>) -> Markup {
    web.history.index().flush().await;
    let recent = query::recent_customers(&web.history, RECENT);
    page(
        "Recent customers",
        Some(&user),
        html! {
            form.card action="/search" method="get" {
                h1 { "Search every conversation" }
                input type="search" name="q" placeholder="discount, invoice, a name…" aria-label="Search";
            }
            section.card {
                h2 { "Recent customers" }
                @if recent.is_empty() { p.meta { "Nothing kept yet." } }
                ul.plain {
                    @for r in &recent {
                        li {
                            a href={ "/customer/" (seg(&r.address)) } { (r.address) }
                            " " (badge(r.direction))
                            div.meta { (when(r.last)) " · " (r.subject) }
                        }
                    }
                }
            }
        },
    )
}

/// `/customer/ADDR`.
pub async fn customer(
    State(web): State<AppState>,
    Extension(User(user)): Extension<User>,
    Path(addr): Path<String>,
) -> Response {
    let Ok(a) = Address::parse(&addr) else {
        return not_found().await;
    };
    web.history.index().flush().await;
    let v = query::customer(&web.history, &a);
    page(
        &v.customer,
        Some(&user),
        html! {
            h1 { (v.customer) }
            @if v.threads.is_empty() { p.meta { "No kept messages with this customer." } }
            @for t in &v.threads {
                section.card {
                    h2 { a href={ "/thread/" (seg(&t.thread)) } { (t.subject) } }
                    div.meta {
                        (t.messages.len()) " message" @if t.messages.len() != 1 { "s" }
                        " · " (span_of(&t.messages))
                        @if let Some(o) = &t.owner { " · " span.owner { "owner " (o) } }
                    }
                    @for m in &t.messages {
                        div class={ "msg " (m.direction.as_str()) } {
                            (badge(m.direction)) " " span.meta { (when(m.unix)) }
                            div { (message_line(m)) }
                            @if m.subject != t.subject { div.meta { (m.subject) } }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

/// `/thread/ID`.
pub async fn thread(
    State(web): State<AppState>,
    Extension(User(user)): Extension<User>,
    Path(id): Path<String>,
) -> Response {
    web.history.index().flush().await;
    let messages = query::thread(&web.history, &id);
    let Some(first) = messages.first() else {
        return not_found().await;
    };
    let subject = first.view.subject.clone();
    page(
        &subject,
        Some(&user),
        html! {
            h1 { (subject) }
            p.meta {
                "Customers: "
                @for (i, c) in first.record.customers.iter().enumerate() {
                    @if i > 0 { ", " }
                    a href={ "/customer/" (seg(c)) } { (c) }
                }
            }
            @for m in &messages {
                article class={ "card msg " (m.view.direction.as_str()) } {
                    (badge(m.view.direction)) " " span.meta { (when(m.view.unix)) }
                    " · " a.meta href={ "/message/" (seg(&m.view.id)) ".eml" } { "raw .eml" }
                    div { (message_line(&m.view)) }
                    div.meta { (m.view.subject) }
                    @if !m.view.team.is_empty() { div.meta { "Team: " (m.view.team.join(", ")) } }
                    pre.body { (m.text) }
                }
            }
        },
    )
    .into_response()
}

/// The query string of `/search`.
#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `/search?q=WORDS`.
pub async fn search(
    State(web): State<AppState>,
    Extension(User(user)): Extension<User>,
    Query(q): Query<SearchQuery>,
) -> Markup {
    web.history.index().flush().await;
    let v = query::search(&web.history, &q.q, query::DEFAULT_LIMIT);
    let title = format!("Search: {}", q.q);
    page(
        &title,
        Some(&user),
        html! {
            h1 { "Search: " (q.q) }
            @if v.messages.is_empty() { p.meta { "Nothing found." } }
            @for m in &v.messages {
                section.card {
                    h2 { a href={ "/thread/" (seg(&thread_of(&web, m))) } { (m.subject) } }
                    div { (badge(m.direction)) " " span.meta { (when(m.unix)) } }
                    div { (message_line(m)) }
                    @if let Some(s) = &m.snippet { p.snippet { (s) } }
                }
            }
        },
    )
}

fn thread_of(web: &AppState, m: &MessageView) -> String {
    web.history
        .record(&m.id)
        .map(|r| r.thread)
        .unwrap_or_default()
}

/// `/message/ID.eml`: the message as kept.
pub async fn message(State(web): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(id) = file
        .strip_suffix(".eml")
        .filter(|i| i.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return not_found().await;
    };
    let Some((_, raw)) = web.history.message(id) else {
        return not_found().await;
    };
    (
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.eml\""),
            ),
        ],
        raw,
    )
        .into_response()
}

/// Anything else.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", None, html! { h1 { "Not found" } }),
    )
        .into_response()
}
