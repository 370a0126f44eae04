//! A whole SMTP (or LMTP) session over an in-memory stream: whatever the client sends,
//! the session ends, never panics, and every line it writes is a reply line.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use teamrelay::config::Config;
use teamrelay::shared::Shared;
use teamrelay::smtp::session;
use teamrelay::spool::Spool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

struct World {
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    config: Config,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        };
        let dir = base.join(format!("teamrelay-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let text = format!(
            r#"
[server]
hostname = "fuzz.test"
spool = "{d}/spool"
max_message_size = 100000
max_recipients = 5
idle_timeout = "1s"
[team]
domains = ["example.com"]
private_address = "private@example.com"
[[listen]]
address = "127.0.0.1:1"
mode = "mx"
[[listen]]
address = "127.0.0.1:2"
mode = "relay"
allow = ["127.0.0.0/8"]
[[listen]]
address = "127.0.0.1:3"
mode = "mx"
protocol = "lmtp"
[deliver]
team = "maildir://{d}/mail"
outside = "maildir://{d}/mail"
[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com"]
archive_of = ["*@example.com"]
"#,
            d = dir.display()
        );
        let config =
            teamrelay::config::parse(&text, Path::new("fuzz.toml")).expect("valid fuzz config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let shared = runtime.block_on(async {
            let spool = Spool::open(&config.server.spool).expect("spool");
            Arc::new(Shared::new(
                config.clone(),
                spool,
                Arc::new(tokio::sync::Notify::new()),
            ))
        });
        World {
            runtime,
            shared,
            config,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    let w = world();
    let listener = w.config.listen[which as usize % w.config.listen.len()].clone();
    let output = w.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let peer = "127.0.0.1:40000".parse().expect("addr");
        let session = tokio::spawn(session::run(
            Box::new(server),
            peer,
            listener,
            w.shared.clone(),
            CancellationToken::new(),
            session::Wire::Plain,
        ));
        let mut out = Vec::new();
        let talk = async {
            let _ = client.write_all(input).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut out).await;
        };
        tokio::time::timeout(Duration::from_secs(10), talk)
            .await
            .expect("session hung");
        tokio::time::timeout(Duration::from_secs(10), session)
            .await
            .expect("session did not end")
            .expect("session panicked");
        out
    });
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "not a reply line: {:?}",
            String::from_utf8_lossy(line)
        );
    }
});
