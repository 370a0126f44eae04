//! Secrets and certificates, checked as part of validation so a file that cannot work
//! never starts a server and `check` says why: `[tls]` loaded into a rustls server
//! config (TLS 1.2 and 1.3 only, ring as the one crypto provider), the leaf
//! certificate's names and expiry for `check` to print, and `[[user]]` password hashes.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, ALL_VERSIONS};

/// Loads certificate chain and key; the error names the file and what is wrong.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    // ALL_VERSIONS is TLS 1.2 and 1.3: rustls has nothing older.
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not go together: {e}"))?;
    Ok(Arc::new(config))
}

/// What `check` prints about the served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// DNS names of the subjectAltName extension, else the subject's common name.
    pub names: Vec<String>,
    /// The end of the validity period, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads the first (leaf) certificate of a PEM file.
pub fn certificate_info(cert: &Path) -> Result<CertificateInfo, String> {
    let der = CertificateDer::pem_file_iter(cert)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no certificate")?
        .map_err(|e| e.to_string())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            parsed
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    Ok(CertificateInfo {
        names,
        not_after: parsed.validity().not_after.timestamp(),
    })
}

/// Why a `password_hash` can never verify a password, if it cannot: not a PHC string,
/// not argon2, bad parameters, or a salt or output that does not decode (the sample's
/// `$argon2id$…$REPLACE$…` placeholder is caught here, SPEC §2).
pub fn check_password_hash(phc: &str) -> Result<(), String> {
    use argon2::password_hash::PasswordHash;
    let hash = PasswordHash::new(phc).map_err(|e| format!("not a PHC string ({e})"))?;
    if !matches!(hash.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(format!("algorithm {} is not argon2", hash.algorithm));
    }
    argon2::Params::try_from(&hash).map_err(|e| format!("bad parameters ({e})"))?;
    let salt = hash.salt.ok_or("no salt")?;
    let mut buf = [0u8; 64];
    let salt_len = salt
        .decode_b64(&mut buf)
        .map_err(|e| format!("salt does not decode ({e})"))?
        .len();
    if salt_len < argon2::MIN_SALT_LEN {
        return Err("salt too short".into());
    }
    match hash.hash {
        Some(out) if out.len() >= argon2::Params::MIN_OUTPUT_LEN => Ok(()),
        _ => Err("no hash output".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_that_cannot_work_are_refused() {
        let good = crate::smtp::hash_password("secret").unwrap();
        assert_eq!(check_password_hash(&good), Ok(()));
        for bad in [
            "$argon2id$v=19$m=19456,t=2,p=1$REPLACE$WITH_OUTPUT_OF_teamrelay_passwd",
            "$argon2id$...",
            "plain",
            "$2b$12$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
        ] {
            assert!(check_password_hash(bad).is_err(), "{bad} should be refused");
        }
    }
}
