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
    out
}
