//! The customer history (SPEC §8): every customer-facing message that no whole-message
//! rule skips, kept once per Message-ID, searchable, exportable, erasable, and served
//! to the team on the command line and on a web page.
//!
//! - [`keep`] — what is kept and the thread rule (pure);
//! - [`store`] — files, durability, erasure, retention;
//! - [`index`] — tantivy: by customer, domain, thread, Message-ID, words;
//! - [`query`] — `show`, `search`, `export` as values;
//! - [`backfill`] — archive copies of the past for a new teammate;
//! - [`admin`] — the CLI's requests, answered by `serve` over a socket or locally;
//! - [`web`] — the read-only web page.

pub mod admin;
pub mod backfill;
pub mod cli;
mod files;
pub mod index;
pub mod keep;
mod mbox;
pub mod query;
pub mod record;
pub mod store;
mod text;
pub mod web;
mod writer;

pub use keep::{is_kept, Accepted};
pub use store::History;
