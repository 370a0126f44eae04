//! A renewed certificate is served after SIGHUP (what certbot's deploy hook
//! `systemctl reload teamrelay` relies on), and a session opened before the reload keeps
//! working.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

/// The certificate the listener on `port` presents (implicit TLS), as DER in hex.
fn served_cert(port: u16) -> String {
    let script = format!(
        "import ssl\nprint(ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(('127.0.0.1', {port}))).hex())"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The certificate in a PEM file, as DER in hex.
fn file_cert(path: &std::path::Path) -> String {
    let script = format!(
        "import ssl\nprint(ssl.PEM_cert_to_DER_cert(open({:?}).read()).hex())",
        path.display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sighup_serves_a_renewed_certificate_and_keeps_open_sessions() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let extra = format!(
        "[[listen]]\naddress = \"127.0.0.1:{{port:smtps}}\"\nmode = \"submission\"\ntls = \"implicit\"\n\n\
         [tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n",
        dir = certs.path().display()
    );
    let config = base_config("").replace("[deliver]", &format!("{extra}\n[deliver]"));
    let relay = Relay::start(&config);
    let port = relay.port("smtps");
    let old = file_cert(&certs.path().join("cert.pem"));
    assert!(
        !old.is_empty(),
        "python3 could not read the test certificate"
    );
    assert_eq!(
        served_cert(port),
        old,
        "the listener does not serve its [tls] cert"
    );

    // A plain session on the mx port, open across the reload.
    let mut open = Client::connect(relay.port("mx"));
    assert!(open.read_reply().starts_with("220"));
    assert!(open.cmd("EHLO before.example").starts_with("250"));

    // "Renewal": new files in place, then what `systemctl reload` sends.
    make_certs(certs.path());
    let new = file_cert(&certs.path().join("cert.pem"));
    assert_ne!(new, old);
    relay.signal("HUP");
    let renewed = wait_for(Duration::from_secs(10), || served_cert(port) == new);
    assert!(
        renewed,
        "still the old certificate after SIGHUP; log:\n{}",
        relay.log()
    );
    assert!(
        open.cmd("NOOP").starts_with("250"),
        "the session open before SIGHUP was dropped"
    );
}
