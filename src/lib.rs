//! teamrelay: a small mail-transfer agent that sits in front of a team's provider,
//! expands team lists and copies every customer conversation to archive lists.
//!
//! A message travels through the modules in this order:
//!
//! 1. [`config`] — `lists.toml`, validated once; every other module trusts it.
//! 2. [`smtp`] — listeners and sessions: the envelope and the body arrive.
//! 3. [`route`] — pure policy: list expansion, archive copies, the header blocks, team
//!    awareness; it decides from what [`memory`] recalls and says what to remember.
//! 4. [`spool`] — the message and its plan made durable before the `250`.
//! 5. [`deliver`] — SMTP/LMTP/Maildir clients, retries, bounces.
//!
//! [`address`] is the one address type all of them share; [`history`] keeps the
//! customer-facing messages for the team to read, search and erase (SPEC §8).

pub mod address;
pub mod away;
pub mod cli;
pub mod config;
pub mod control;
pub mod deliver;
pub mod history;
pub mod logfmt;
pub mod maillog;
pub mod memory;
pub mod metrics;
pub mod private_fs;
pub mod queue;
pub mod route;
pub mod serve;
pub mod shared;
pub mod smtp;
pub mod spool;
