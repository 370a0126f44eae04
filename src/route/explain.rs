//! A plan in plain words, for `teamrelay route` and for logs.

use std::fmt::Write;

use super::*;

/// Describes the plan: who gets the original, who gets a list delivery or an archive
/// copy from which list, who was skipped and why.
pub fn explain(config: &Config, envelope: &Envelope, plan: &Plan) -> String {
    let mut out = String::new();
    let sender = envelope
        .sender
        .as_ref()
        .map_or("<> (null sender)".to_string(), |s| s.to_string());
    let rcpts: Vec<String> = envelope.recipients.iter().map(|r| r.to_string()).collect();
    let _ = writeln!(out, "From {sender} to {}", rcpts.join(", "));
    let _ = writeln!(out);
    if plan.deliveries.is_empty() {
        let _ = writeln!(out, "Nothing is delivered.");
    }
    for d in &plan.deliveries {
        let what = match &d.kind {
            DeliveryKind::Original => "original".to_string(),
            DeliveryKind::List(l) => format!("list delivery from {l}"),
            DeliveryKind::Archive(l) => format!("archive copy from {l}"),
        };
        let target = match d.route {
            RouteKind::Team => &config.deliver.team,
            RouteKind::Outside => &config.deliver.outside,
        };
        let from = d
            .sender
            .as_ref()
            .map_or("<>".to_string(), |s| s.to_string());
        let _ = writeln!(out, "{what}:");
        for r in &d.recipients {
            let _ = writeln!(out, "    {r}");
        }
        let _ = writeln!(
            out,
            "  route {} ({target}), envelope sender {from}",
            d.route
        );
        if !d.headers.is_empty() {
            let names: Vec<String> = d.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
            let _ = writeln!(out, "  adds headers:");
            for n in names {
                let _ = writeln!(out, "    {n}");
            }
        }
    }
    let _ = writeln!(out);
    match &plan.archive_skip {
        Some(why) => {
            let _ = writeln!(out, "No archive copies: {why}.");
        }
        None => {
            let _ = writeln!(out, "Archive copies: {}.", plan.archive_copies());
        }
    }
    if plan.private {
        let _ = writeln!(
            out,
            "The Message-ID is remembered as private: replies stay off the archives."
        );
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "Skipped:");
        for s in &plan.skipped {
            let _ = writeln!(out, "    {}: {}", s.address, s.reason);
        }
    }
    awareness(&mut out, plan);
    out
}

/// The §9 part: thread, owner, absences, cover, assignment, collision.
fn awareness(out: &mut String, plan: &Plan) {
    let _ = writeln!(out);
    let _ = writeln!(out, "Team awareness:");
    if plan.thread.is_empty() {
        let _ = writeln!(out, "    thread: none (the message names no Message-ID)");
    } else {
        let _ = writeln!(out, "    thread: <{}>", plan.thread);
    }
    match (&plan.owner, &plan.remember.owner) {
        (Some(o), _) => {
            let _ = writeln!(out, "    owner: {o}");
        }
        (None, Some(new)) => {
            let _ = writeln!(out, "    owner: none yet; {new} becomes the owner");
        }
        (None, None) => {
            let _ = writeln!(out, "    owner: none");
        }
    }
    if plan.away.is_empty() {
        let _ = writeln!(out, "    away: nobody");
    }
    for a in &plan.away {
        let _ = writeln!(out, "    away: {a}");
    }
    for (absent, until, cover) in &plan.covered {
        let who: Vec<String> = cover.iter().map(|c| c.to_string()).collect();
        let who = if who.is_empty() {
            "nobody new (the cover already gets it)".to_string()
        } else {
            who.join(", ")
        };
        let _ = writeln!(
            out,
            "    cover: {absent} is away until {until}; also delivered to {who}"
        );
    }
    for (list, owner) in &plan.assigned {
        let _ = writeln!(
            out,
            "    assigned: {list} went to {owner} alone (assign = \"owner\": the thread's owner); the other members are judged by the archive step"
        );
    }
    for note in &plan.assign_notes {
        let _ = writeln!(out, "    assign: {note}");
    }
    if let Some(a) = &plan.remember.away {
        let _ = writeln!(
            out,
            "    auto-reply: marks {} away until {}, cover {}",
            a.address,
            a.until_date(),
            a.cover.as_deref().unwrap_or("nobody")
        );
    }
    if let Some(c) = &plan.collision {
        let _ = writeln!(
            out,
            "    collision: {} answered this thread {} min ago in a reply this one does not reference; {} gets a notice",
            c.other.from,
            c.ago_secs / 60,
            c.to
        );
    }
}
