//! The read side as values: a customer's threads, a domain's customers, search hits,
//! a thread, the recent customers, an mboxrd export. The CLI prints them, the web page
//! renders them.

use std::collections::{BTreeMap, HashMap};

use super::index::By;
use super::record::{
    rfc3339, CustomerSummary, CustomerView, DomainView, MessageView, Record, SearchView, ThreadView,
};
use super::store::History;
use crate::address::Address;

/// Default `--limit` of `search`.
pub const DEFAULT_LIMIT: usize = 50;

/// Records oldest first (date, then acceptance order).
fn by_date(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
    v
}

/// The messages of one thread, oldest first.
pub fn thread_records(h: &History, thread: &str) -> Vec<Record> {
    by_date(h.records(&h.index().ids(By::Thread, thread)))
}

fn thread_view(thread: &str, records: &[Record]) -> Option<ThreadView> {
    let first = records.first()?;
    let last = records.last()?;
    Some(ThreadView {
        thread: thread.to_string(),
        subject: first.subject.clone(),
        first: rfc3339(first.date),
        last: rfc3339(last.date),
        owner: records.iter().rev().find_map(|r| r.owner.clone()),
        messages: records.iter().map(Record::view).collect(),
    })
}

/// `history show ADDR`: the customer's threads, newest last activity first.
pub fn customer(h: &History, addr: &Address) -> CustomerView {
    let mine = h.records(&h.index().ids(By::Customer, addr.key()));
    let mut threads: Vec<String> = mine.iter().map(|r| r.thread.clone()).collect();
    threads.sort();
    threads.dedup();
    let mut views: Vec<(i64, ThreadView)> = threads
        .iter()
        .filter_map(|t| {
            let records = thread_records(h, t);
            let last = records.last()?.date;
            Some((last, thread_view(t, &records)?))
        })
        .collect();
    views.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.thread.cmp(&b.1.thread)));
    CustomerView {
        customer: addr.to_string(),
        threads: views.into_iter().map(|(_, v)| v).collect(),
    }
}

/// `history show @DOMAIN`: its customers, most recent first.
pub fn domain(h: &History, domain: &str) -> DomainView {
    let domain = domain.trim_start_matches('@').to_lowercase();
    let records = h.records(&h.index().ids(By::Domain, &domain));
    let mut per: HashMap<String, (String, usize, i64)> = HashMap::new();
    for r in &records {
        for c in r.customers.iter().filter_map(|c| Address::parse(c).ok()) {
            if c.domain() != domain {
                continue;
            }
            let e = per
                .entry(c.key().to_string())
                .or_insert_with(|| (c.to_string(), 0, i64::MIN));
            e.1 += 1;
            e.2 = e.2.max(r.date);
        }
    }
    let mut customers: Vec<(i64, CustomerSummary)> = per
        .into_values()
        .map(|(address, messages, last)| {
            (
                last,
                CustomerSummary {
                    address,
                    messages,
                    last: rfc3339(last),
                },
            )
        })
        .collect();
    customers.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.address.cmp(&b.1.address)));
    DomainView {
        domain,
        customers: customers.into_iter().map(|(_, c)| c).collect(),
    }
}

/// `history search WORDS`: messages containing every word, newest first.
pub fn search(h: &History, words: &str, limit: usize) -> SearchView {
    let tokens = h.index().tokens(words);
    let messages = h
        .index()
        .search(words, limit)
        .iter()
        .filter_map(|id| h.message(id))
        .map(|(r, raw)| {
            let mut v = r.view();
            v.customers = Some(r.customers.clone());
            v.snippet = Some(super::text::snippet(
                &super::text::searchable(&raw),
                &tokens,
            ));
            v
        })
        .collect();
    SearchView {
        query: words.to_string(),
        messages,
    }
}

/// One message of a thread with its readable text.
pub struct ThreadMessage {
    pub record: Record,
    pub view: MessageView,
    pub text: String,
}

/// A thread with every message's text, oldest first.
pub fn thread(h: &History, thread: &str) -> Vec<ThreadMessage> {
    thread_records(h, thread)
        .into_iter()
        .filter_map(|r| h.message(&r.id))
        .map(|(record, raw)| ThreadMessage {
            view: record.view(),
            text: super::text::body(&raw),
            record,
        })
        .collect()
}

/// One line of the recent-customers list.
pub struct Recent {
    pub address: String,
    pub last: i64,
    pub subject: String,
    pub direction: super::record::Direction,
}

/// The customers of the most recent messages, most recent first.
pub fn recent_customers(h: &History, n: usize) -> Vec<Recent> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for r in h.records(&h.index().recent(n * 20)) {
        for c in &r.customers {
            if out.len() < n && seen.insert(c.to_lowercase(), ()).is_none() {
                out.push(Recent {
                    address: c.clone(),
                    last: r.date,
                    subject: r.subject.clone(),
                    direction: r.direction,
                });
            }
        }
    }
    out
}

/// `history export ADDR`: the customer's messages, oldest first, as mboxrd.
pub fn export(h: &History, addr: &Address) -> Vec<u8> {
    let mut out = Vec::new();
    for r in by_date(h.records(&h.index().ids(By::Customer, addr.key()))) {
        if let Some((record, raw)) = h.message(&r.id) {
            super::mbox::append(&mut out, &record, &raw);
        }
    }
    out
}

/// `history show` as text.
pub fn format_customer(v: &CustomerView) -> String {
    let mut out = String::new();
    if v.threads.is_empty() {
        out.push_str(&format!("no kept messages with {}\n", v.customer));
    }
    for t in &v.threads {
        out.push_str(&format!(
            "{}  ({} message{}, {} .. {}, owner {})\n",
            t.subject,
            t.messages.len(),
            if t.messages.len() == 1 { "" } else { "s" },
            t.first,
            t.last,
            t.owner.as_deref().unwrap_or("-")
        ));
        for m in &t.messages {
            out.push_str(&format!(
                "  {}  {:<8} {} -> {}  {}\n",
                m.date,
                m.direction.as_str(),
                m.from,
                m.to.join(", "),
                m.subject
            ));
        }
    }
    out
}

/// `history show @DOMAIN` as text.
pub fn format_domain(v: &DomainView) -> String {
    let mut out = String::new();
    if v.customers.is_empty() {
        out.push_str(&format!("no kept messages with @{}\n", v.domain));
    }
    for c in &v.customers {
        out.push_str(&format!(
            "{}  {} messages  last {}\n",
            c.address, c.messages, c.last
        ));
    }
    out
}

/// `history search` as text.
pub fn format_search(v: &SearchView) -> String {
    let mut out = String::new();
    if v.messages.is_empty() {
        out.push_str("nothing found\n");
    }
    for m in &v.messages {
        out.push_str(&format!(
            "{}  {:<8} {} -> {}  {}\n    {}\n",
            m.date,
            m.direction.as_str(),
            m.from,
            m.to.join(", "),
            m.subject,
            m.snippet.as_deref().unwrap_or("")
        ));
    }
    out
}
