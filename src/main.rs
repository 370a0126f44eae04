//! Thin entry point: parse the command line, set up logging, dispatch, and map the
//! outcome to SPEC §7's exit codes (0 ok, 1 runtime failure, 2 bad usage or config).

use std::process::ExitCode;

use clap::Parser;

use teamrelay::address::Address;
use teamrelay::cli::{Cli, Command, QueueAction};
use teamrelay::config::{self, Config};
use teamrelay::route::{self, Envelope, Ingress, MessageFacts};

/// mimalloc instead of glibc's malloc: every message allocates and frees buffers across
/// threads, and glibc's malloc/free were ~17% of the relay's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything teamrelay writes holds customer mail (SPEC §6): private from the start,
    // including the files libraries create.
    teamrelay::private_fs::restrict_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    run(cli.command)
}

/// Runs one subcommand; every one but `passwd` first loads its configuration.
fn run(command: Command) -> ExitCode {
    match command {
        Command::Serve { config } => with_config(&config.clone(), |c| run_serve(c, config)),
        Command::Check { config } => with_config(&config, |c| {
            print!("{}", config::summary(&c));
            for w in config::warnings(&c, teamrelay::spool::now() as i64) {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }),
        Command::Route {
            config,
            from,
            to,
            header_cc,
            in_reply_to,
            references,
            message,
        } => with_config(&config, |c| {
            let thread = (message.as_deref(), in_reply_to.as_deref(), &references[..]);
            route_command(&c, &from, &to, &header_cc, thread)
        }),
        Command::Passwd => passwd_command(),
        Command::Away {
            config,
            address,
            until,
            cover,
            back,
            json,
        } => with_config(&config, |c| {
            ExitCode::from(teamrelay::away::command(
                &c,
                address.as_deref(),
                until.as_deref(),
                cover.as_deref(),
                back,
                json,
            ))
        }),
        Command::Queue { config, action } => with_config(&config, |c| queue_command(&c, action)),
        Command::History { config, action } => {
            with_config(&config, |c| teamrelay::history::cli::run(&c, action))
        }
    }
}

/// `f` on the loaded configuration, or the exit code for a configuration that does not
/// load (its errors printed).
fn with_config(path: &std::path::Path, f: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match load(path) {
        Ok(c) => f(c),
        Err(code) => code,
    }
}

fn run_serve(config: Config, path: std::path::PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .fmt_fields(teamrelay::logfmt::Logfmt)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("teamrelay serve: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(teamrelay::serve::serve(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot run");
            eprintln!("teamrelay serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// Loads the config or prints every problem and returns exit code 2.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        let n = errors.0.len();
        eprintln!(
            "{n} problem{} found; nothing was started.",
            if n == 1 { "" } else { "s" }
        );
        ExitCode::from(2)
    })
}

fn passwd_command() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut input) {
        eprintln!("teamrelay passwd: cannot read stdin: {e}");
        return ExitCode::from(1);
    }
    // One trailing newline is the end of the line, not part of the password.
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("teamrelay passwd: empty password");
        return ExitCode::from(2);
    }
    match teamrelay::smtp::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("teamrelay passwd: {e}");
            ExitCode::from(1)
        }
    }
}

fn queue_command(c: &Config, action: QueueAction) -> ExitCode {
    use teamrelay::queue::{self, Answer};
    let (request, json) = match &action {
        QueueAction::List { json } => ("list".to_string(), *json),
        QueueAction::Show { id } => (format!("show {id}"), true),
        QueueAction::Retry { id } => (format!("retry {id}"), false),
        QueueAction::Delete { id } => (format!("delete {id}"), false),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("teamrelay queue: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(queue::request(&c.server.spool, &request)) {
        Ok(Answer::List(items)) if json => println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        ),
        Ok(Answer::List(items)) => print!("{}", queue::format_list(&items)),
        Ok(Answer::Show(entry)) => println!(
            "{}",
            serde_json::to_string_pretty(&entry).unwrap_or_default()
        ),
        Ok(Answer::Done(text)) => println!("{text}"),
        Ok(Answer::Error(e)) | Err(e) => {
            eprintln!("teamrelay queue: {e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn parse_addr(what: &str, s: &str) -> Result<Address, ExitCode> {
    let bare = s.trim().trim_start_matches('<').trim_end_matches('>');
    Address::parse(bare).map_err(|e| {
        eprintln!("teamrelay route: {what} {s:?} is not an email address ({e})");
        ExitCode::from(2)
    })
}

/// `route`'s thread options: a message file, In-Reply-To, References.
type ThreadOptions<'a> = (Option<&'a std::path::Path>, Option<&'a str>, &'a [String]);

fn route_command(
    c: &Config,
    from: &str,
    to: &[String],
    cc: &[String],
    thread: ThreadOptions,
) -> ExitCode {
    let run = || -> Result<String, ExitCode> {
        let sender = match from.trim() {
            "<>" | "" => None,
            s => Some(parse_addr("--from", s)?),
        };
        let recipients = to
            .iter()
            .map(|t| parse_addr("--to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let cc = cc
            .iter()
            .map(|t| parse_addr("--header-cc", t))
            .collect::<Result<Vec<_>, _>>()?;
        let facts = MessageFacts {
            from: sender.iter().cloned().collect(),
            to: recipients.clone(),
            cc,
            ..MessageFacts::default()
        };
        let facts = teamrelay::memory::cli::facts_with(facts, thread.0, thread.1, thread.2)
            .map_err(|e| {
                eprintln!("teamrelay route: {e}");
                ExitCode::from(2)
            })?;
        let memory = teamrelay::memory::cli::recall(c, &facts);
        let envelope = Envelope { sender, recipients };
        let plan = route::plan(c, &envelope, &facts, &memory, Ingress::Normal);
        Ok(route::explain(c, &envelope, &plan))
    };
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
