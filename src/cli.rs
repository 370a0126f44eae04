//! The command line (SPEC §7): `serve`, `check`, `route`, `passwd`, `away`, `queue`, `history`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// teamrelay: team lists and customer archives at the mail-transfer layer.
#[derive(Debug, Parser)]
#[command(name = "teamrelay", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One thing to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay (the main job).
    Serve {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and print domains, listeners, lists and archives.
    Check {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
    },
    /// Print, without sending, who would get what and why.
    Route {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
        /// Envelope sender (and From header); "<>" for the null sender.
        #[arg(long)]
        from: String,
        /// Envelope recipient (and To header); repeat for several.
        #[arg(long, required = true)]
        to: Vec<String>,
        /// An address in the Cc header only (not an envelope recipient).
        #[arg(long = "header-cc")]
        header_cc: Vec<String>,
        /// The Message-ID this message replies to (In-Reply-To).
        #[arg(long = "in-reply-to")]
        in_reply_to: Option<String>,
        /// Message-IDs of References, in order; repeat for several.
        #[arg(long)]
        references: Vec<String>,
        /// Read the headers (From, To, Cc, Message-ID, In-Reply-To, References, Subject,
        /// auto-reply markers) from this message file instead.
        #[arg(long)]
        message: Option<PathBuf>,
    },
    /// Read a password on stdin and print its argon2id hash for a `[[user]]`.
    Passwd,
    /// List, set or end absences (works while `serve` runs).
    Away {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
        /// The teammate; without it, list every absence.
        address: Option<String>,
        /// Away until the end of this UTC day (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Who gets their customer mail meanwhile (default: team.cover).
        #[arg(long)]
        cover: Option<String>,
        /// End the absence.
        #[arg(long)]
        back: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and steer the queue (works while `serve` runs).
    Queue {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// The customer history (SPEC §8; works while `serve` runs).
    History {
        #[arg(long, default_value = "lists.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: crate::history::cli::HistoryAction,
    },
}

/// `teamrelay queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// One line per queued message: id, age, sender, pending recipients, next try, last error.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Everything recorded about one message.
    Show { id: String },
    /// Try every pending recipient of a message now.
    Retry { id: String },
    /// Remove a message from the queue without delivering or bouncing it.
    Delete { id: String },
}
