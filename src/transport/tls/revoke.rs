//! The revocation list: `DIR/revoked.txt` in the TLS directory, one revoked certificate per
//! line — `serial HEX` (as `openssl x509 -serial` or `strand tls show` print it) or
//! `name NAME` (every certificate of that name) — `#` starts a comment. The verifiers of
//! both sides refuse a revoked peer; a node reloads the list with its certificates
//! (`transport::reload`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rustls::pki_types::CertificateDer;

use super::{der, validate_name, TlsError};

/// The file's name in the TLS directory.
pub const REVOKED_FILE: &str = "revoked.txt";

/// Revoked certificates, by serial and by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    serials: BTreeSet<String>,
    names: BTreeSet<String>,
}

/// A serial as hex, upper case, without separators or leading zero bytes.
fn normalize_serial(hex: &str) -> Option<String> {
    let digits: String = hex.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0').to_ascii_uppercase();
    Some(if trimmed.is_empty() { "0".into() } else { trimmed })
}

/// A certificate's serial, as [`Revocations`] keeps it.
pub fn serial_hex(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let bytes = der::serial(cert.as_ref()).map_err(|e| TlsError::BadCertificate {
        what: "certificate".into(),
        reason: format!("unparsable serial: {e}"),
    })?;
    let mut hex = String::new();
    for b in bytes {
        let _ = write!(hex, "{b:02X}");
    }
    Ok(normalize_serial(&hex).unwrap_or_else(|| "0".into()))
}

impl Revocations {
    /// Parses the file's text; a line that is neither `serial HEX` nor `name NAME` is an
    /// error naming its line number.
    pub fn parse(text: &str) -> Result<Revocations, String> {
        let mut out = Revocations::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            match line.split_once(char::is_whitespace).map(|(k, v)| (k, v.trim())) {
                Some(("serial", v)) => {
                    out.serials
                        .insert(normalize_serial(v).ok_or_else(|| bad("not a hex serial"))?);
                }
                Some(("name", v)) => {
                    validate_name(v).map_err(|e| bad(&e.to_string()))?;
                    out.names.insert(v.to_string());
                }
                _ => return Err(bad("expected `serial HEX` or `name NAME`")),
            }
        }
        Ok(out)
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.names.is_empty()
    }

    /// Why the certificate named `name` is revoked, if it is.
    pub fn check(&self, name: &str, cert: &CertificateDer<'_>) -> Result<(), String> {
        if self.names.contains(name) {
            return Err(format!("the certificate of {name:?} is revoked (by name)"));
        }
        if !self.serials.is_empty() {
            let serial = serial_hex(cert).map_err(|e| e.to_string())?;
            if self.serials.contains(&serial) {
                return Err(format!(
                    "the certificate of {name:?} is revoked (serial {serial})"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::super::{generate_ca, issue_certificate, PeerRole};
    use super::*;
    use crate::authz::{Role, RoleSet};

    #[test]
    fn revoked_by_serial_or_by_name() {
        let ca = generate_ca("ca").unwrap();
        let issue = |name: &str| {
            let c = issue_certificate(&ca, name, PeerRole::Node, RoleSet::of(Role::Store), &[], &[]).unwrap();
            CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()
        };
        let (a, b, c) = (issue("store-1"), issue("store-2"), issue("store-3"));
        let serial = serial_hex(&a).unwrap();
        // openssl prints serials with colons or without, in either case.
        let spaced: String = serial.to_ascii_lowercase();
        let text = format!("# revoked\nserial {spaced}\n\nname store-2   # lost laptop\n");
        let r = Revocations::parse(&text).unwrap();
        assert!(r.check("store-1", &a).unwrap_err().contains("serial"));
        assert!(r.check("store-2", &b).unwrap_err().contains("by name"));
        assert!(r.check("store-3", &c).is_ok());
        assert!(Revocations::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        for (text, line) in [
            ("serial xyz", 1),
            ("\nname a b", 2),
            ("revoke store-1", 1),
            ("serial", 1),
        ] {
            let e = Revocations::parse(text).unwrap_err();
            assert!(e.starts_with(&format!("line {line}:")), "{text:?}: {e}");
        }
    }
}
