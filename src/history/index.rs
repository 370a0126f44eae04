//! The history's index (tantivy): which messages concern a customer, a domain, a
//! thread, a Message-ID, and which contain some words. It holds only ids, dates and
//! index terms — the records and messages are the files — so it can always be rebuilt
//! from them, and a message is kept (durable) before it is indexed.
//!
//! One thread owns the writer: additions arrive over a channel and are committed at
//! most a second later, or at once when a reader asks for a fresh view. Erasure deletes
//! the documents, commits, merges every segment (so no segment still holds a deleted
//! document's terms) and collects the old files.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING,
};
use tantivy::{DocAddress, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::oneshot;
use tracing::warn;

use super::record::Record;
use crate::address::Address;

/// Writer memory: small, the history indexes a few messages a second.
const WRITER_MEMORY: usize = 20 * 1024 * 1024;
/// How long an addition may wait for its commit. Readers (CLI, web page) ask for a
/// commit before they look, so this only bounds the work lost to a crash (re-indexed
/// from the files at start) and sets how many small segments the merges must join.
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// Which exact-match field to look in.
#[derive(Debug, Clone, Copy)]
pub enum By {
    Customer,
    Domain,
    Thread,
    MessageId,
    Participant,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    message_id: Field,
    thread: Field,
    customer: Field,
    domain: Field,
    participant: Field,
    date: Field,
    accepted: Field,
    text: Field,
}

enum Job {
    Add(Box<Record>, Vec<u8>),
    Remove(Vec<String>, oneshot::Sender<Result<(), String>>),
    Flush(oneshot::Sender<()>),
}

/// Message-IDs kept but not yet visible to searches, with their (id, thread).
pub type Pending = Arc<Mutex<HashMap<String, (String, String)>>>;

/// Handle to the index; cheap to clone.
#[derive(Clone)]
pub struct Index {
    index: tantivy::Index,
    reader: IndexReader,
    f: Fields,
    jobs: mpsc::Sender<Job>,
}

/// The queue id (16 hex digits) as the index's number.
fn num(id: &str) -> Option<u64> {
    u64::from_str_radix(id, 16).ok()
}

fn hex(n: u64) -> String {
    format!("{n:016X}")
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        message_id: b.add_text_field("message_id", STRING),
        thread: b.add_text_field("thread", STRING),
        customer: b.add_text_field("customer", STRING),
        domain: b.add_text_field("domain", STRING),
        participant: b.add_text_field("participant", STRING),
        date: b.add_i64_field("date", FAST),
        accepted: b.add_u64_field("accepted", FAST),
        // Which documents hold a word, nothing more: search is "every word", so term
        // frequencies and positions (phrase queries) would only cost CPU and disk.
        text: b.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("default")
                    .set_index_option(IndexRecordOption::Basic),
            ),
        ),
    };
    (b.build(), f)
}

impl Index {
    /// Opens (creating) the index in `dir` and starts its writer thread.
    pub fn open(dir: &Path, pending: Pending) -> Result<Index, String> {
        let (schema, f) = schema();
        let mmap = MmapDirectory::open(dir).map_err(|e| format!("history index: {e}"))?;
        let index = tantivy::Index::open_or_create(mmap, schema)
            .map_err(|e| format!("history index {}: {e}", dir.display()))?;
        let writer: IndexWriter = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| format!("history index (is another teamrelay using it?): {e}"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| format!("history index: {e}"))?;
        let (jobs, rx) = mpsc::channel();
        let me = Index {
            index,
            reader,
            f,
            jobs,
        };
        let worker = me.clone();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("history-index".into())
            .spawn(move || worker.run(writer, rx, pending, &dir))
            .map_err(|e| e.to_string())?;
        Ok(me)
    }

    /// Indexes a kept message (visible within a second, or at the next [`Index::flush`]).
    pub fn add(&self, record: Record, raw: Vec<u8>) {
        let _ = self.jobs.send(Job::Add(Box::new(record), raw));
    }

    /// Makes every addition so far visible to searches.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Deletes documents and leaves no trace of them in the index files.
    pub async fn remove(&self, ids: Vec<String>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Remove(ids, tx))
            .map_err(|_| "history index stopped".to_string())?;
        rx.await.map_err(|_| "history index stopped".to_string())?
    }

    fn run(&self, mut w: IndexWriter, rx: mpsc::Receiver<Job>, pending: Pending, dir: &Path) {
        let mut added: Vec<String> = Vec::new();
        let mut last = std::time::Instant::now();
        loop {
            // Under a steady stream of additions the timeout never fires: commit on age.
            if !added.is_empty() && last.elapsed() >= COMMIT_EVERY {
                self.commit(&mut w, &mut added, &pending, dir);
                last = std::time::Instant::now();
            }
            let job = match rx.recv_timeout(COMMIT_EVERY) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match job {
                Some(Job::Add(record, raw)) => {
                    self.write_doc(&w, &record, &raw);
                    added.extend(record.message_id.clone());
                    continue;
                }
                Some(Job::Flush(done)) => {
                    self.commit(&mut w, &mut added, &pending, dir);
                    let _ = done.send(());
                }
                Some(Job::Remove(ids, done)) => {
                    self.commit(&mut w, &mut added, &pending, dir);
                    let _ = done.send(self.erase(&mut w, &ids, dir));
                }
                None => self.commit(&mut w, &mut added, &pending, dir),
            }
        }
        self.commit(&mut w, &mut added, &pending, dir);
    }

    fn write_doc(&self, w: &IndexWriter, r: &Record, raw: &[u8]) {
        let Some(id) = num(&r.id) else { return };
        let f = self.f;
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.id, id);
        if let Some(m) = &r.message_id {
            doc.add_text(f.message_id, m);
        }
        doc.add_text(f.thread, &r.thread);
        let mut domains = HashSet::new();
        for c in r.customers.iter().filter_map(|c| Address::parse(c).ok()) {
            doc.add_text(f.customer, c.key());
            if domains.insert(c.domain().to_string()) {
                doc.add_text(f.domain, c.domain());
            }
        }
        for p in r.participants.iter().filter_map(|p| Address::parse(p).ok()) {
            doc.add_text(f.participant, p.key());
        }
        doc.add_i64(f.date, r.date);
        doc.add_u64(f.accepted, r.accepted);
        doc.add_text(f.text, super::text::searchable(raw));
        // Re-indexing (after a crash between keeping and committing) replaces.
        w.delete_term(Term::from_field_u64(f.id, id));
        if let Err(e) = w.add_document(doc) {
            warn!(id = %r.id, error = %e, "history: cannot index message");
        }
    }

    fn commit(&self, w: &mut IndexWriter, added: &mut Vec<String>, pending: &Pending, dir: &Path) {
        if added.is_empty() {
            return;
        }
        if let Err(e) = w.commit() {
            warn!(error = %e, "history: index commit failed; retrying in a second");
            return;
        }
        let _ = self.reader.reload();
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        for m in added.drain(..) {
            p.remove(&m);
        }
        drop(p);
        super::files::private_tree(dir);
    }

    /// Delete, commit, merge everything, collect garbage: afterwards no index file
    /// holds a term of the deleted documents.
    fn erase(&self, w: &mut IndexWriter, ids: &[String], dir: &Path) -> Result<(), String> {
        for n in ids.iter().filter_map(|i| num(i)) {
            w.delete_term(Term::from_field_u64(self.f.id, n));
        }
        w.commit()
            .map_err(|e| format!("history index commit: {e}"))?;
        let segments = self
            .index
            .searchable_segment_ids()
            .map_err(|e| e.to_string())?;
        if !segments.is_empty() {
            w.merge(&segments)
                .wait()
                .map_err(|e| format!("history index merge: {e}"))?;
        }
        self.reader.reload().map_err(|e| e.to_string())?;
        w.garbage_collect_files()
            .wait()
            .map_err(|e| format!("history index cleanup: {e}"))?;
        super::files::private_tree(dir);
        Ok(())
    }

    fn term(&self, by: By, value: &str) -> Term {
        let f = match by {
            By::Customer => self.f.customer,
            By::Domain => self.f.domain,
            By::Thread => self.f.thread,
            By::MessageId => self.f.message_id,
            By::Participant => self.f.participant,
        };
        Term::from_field_text(f, value)
    }

    /// Ids of the messages with this exact value.
    pub fn ids(&self, by: By, value: &str) -> Vec<String> {
        let q = TermQuery::new(self.term(by, value), IndexRecordOption::Basic);
        self.ids_of(&q)
    }

    fn ids_of(&self, q: &dyn Query) -> Vec<String> {
        let searcher = self.reader.searcher();
        let Ok(hits) = searcher.search(q, &DocSetCollector) else {
            return Vec::new();
        };
        let mut out: Vec<String> = hits
            .into_iter()
            .filter_map(|a| self.id_at(&searcher, a))
            .collect();
        out.sort();
        out
    }

    fn id_at(&self, searcher: &tantivy::Searcher, a: DocAddress) -> Option<String> {
        let col = searcher
            .segment_reader(a.segment_ord)
            .fast_fields()
            .u64("id")
            .ok()?;
        col.first(a.doc_id).map(hex)
    }

    /// The id of the kept message with this Message-ID.
    pub fn by_message_id(&self, mid: &str) -> Option<String> {
        self.ids(By::MessageId, mid).into_iter().next()
    }

    /// Messages containing every word (as the index tokenizes them), newest first.
    pub fn search(&self, words: &str, limit: usize) -> Vec<String> {
        let tokens = self.tokens(words);
        if tokens.is_empty() || limit == 0 {
            return Vec::new();
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = tokens
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.f.text, t),
                    IndexRecordOption::Basic,
                ));
                (Occur::Must, q)
            })
            .collect();
        self.newest(&BooleanQuery::new(clauses), limit)
    }

    /// The most recent messages, newest first.
    pub fn recent(&self, limit: usize) -> Vec<String> {
        self.newest(&AllQuery, limit)
    }

    fn newest(&self, q: &dyn Query, limit: usize) -> Vec<String> {
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit).order_by_fast_field::<i64>("date", Order::Desc);
        let Ok(hits) = searcher.search(q, &top) else {
            return Vec::new();
        };
        hits.into_iter()
            .filter_map(|(_, a)| self.id_at(&searcher, a))
            .collect()
    }

    /// The words of `text` as the index sees them (lower-cased tokens).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.f.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            if !out.contains(&t.text) {
                out.push(t.text.clone());
            }
        }
        out
    }

    /// Every indexed message: (id, accepted).
    pub fn all(&self) -> Vec<(String, u64)> {
        let searcher = self.reader.searcher();
        let mut out = Vec::new();
        for seg in searcher.segment_readers() {
            let (Ok(ids), Ok(acc)) = (
                seg.fast_fields().u64("id"),
                seg.fast_fields().u64("accepted"),
            ) else {
                continue;
            };
            for doc in seg.doc_ids_alive() {
                if let (Some(i), Some(a)) = (ids.first(doc), acc.first(doc)) {
                    out.push((hex(i), a));
                }
            }
        }
        out.sort();
        out
    }
}
