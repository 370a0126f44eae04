//! TLS for outbound connections, with the one crypto provider the build has (ring).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A connector that verifies the server against `ca_file` (or the system roots), or —
/// for opportunistic STARTTLS, like Postfix's `may` — accepts any certificate.
pub fn connector(verify: bool, ca_file: Option<&Path>) -> Result<TlsConnector, String> {
    if !verify {
        return mail_send::smtp::tls::build_tls_connector(true);
    }
    let Some(ca) = ca_file else {
        return mail_send::smtp::tls::build_tls_connector(false);
    };
    let mut roots = RootCertStore::empty();
    let certs =
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
