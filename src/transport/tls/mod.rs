//! TLS material for mutual authentication: certificates, their files, and the verifiers.
//!
//! A cluster has one CA. Every node and client holds a certificate signed by it that
//! names the holder in a URI subject alternative name (node names contain `_`, so DNS-name
//! validation cannot be used):
//!
//! ```text
//!   ca.pem / ca.key                 the cluster CA (CN "strand cluster CA")
//!   node-NAME.pem / .key            URI strand://node/NAME,   EKU serverAuth + clientAuth
//!   client-NAME.pem / .key          URI strand://client/NAME, EKU clientAuth only
//!   (both)                          URI strand://role/ROLE, one per role it grants
//! ```
//!
//! The roles ([`crate::authz::Role`]: admin, operator, viewer, controller, participant,
//! spectator, store) say what the holder may do; a certificate without a role, or with one
//! strand does not know, is refused.
//!
//! Verification is webpki's (chain to the CA, validity, key usage), then strand's own check
//! of the name and role in the URI: a server must present a node certificate (a client
//! certificate fails webpki's serverAuth check and the role check); a server accepts node
//! and client certificates and reports which one in [`Identity::role`]. Whether the node's
//! name is the one a caller expected is checked by the transport on each request.
//!
//! Everything here is synchronous; keys are written with mode 0600, files are written to a
//! temporary name and renamed into place so a reader never sees half a file.
//!
//! ```text
//!   tls/mod.rs       names, identities, TlsError
//!   tls/issue.rs     the CA and the certificates it signs (rcgen)
//!   tls/dir.rs       the TLS directory on disk (files, modes, atomic writes)
//!   tls/material.rs  TlsMaterial: loaded material → rustls server/client configurations
//!   tls/verify.rs    the SAN name check and strand's client/server certificate verifiers
//!   tls/revoke.rs    the revocation list (DIR/revoked.txt: serials and names)
//!   tls/der.rs       just enough DER to read a certificate's subject and URI SANs
//! ```

use std::fmt;
use std::path::PathBuf;

use super::PeerRole;
use crate::authz::RoleSet;

mod der;
mod dir;
mod issue;
mod material;
mod revoke;
mod verify;

pub use dir::TlsDir;
pub use issue::{generate_ca, issue_certificate, CertAndKey};
pub use material::TlsMaterial;
pub use revoke::{serial_hex, Revocations, REVOKED_FILE};
pub use verify::identity_of;

/// The ALPN protocol every strand endpoint speaks.
pub const ALPN: &[u8] = b"strand/1";

/// The URI prefix that names a node in its certificate.
pub const NODE_URI_PREFIX: &str = "strand://node/";
/// The URI prefix that names a client in its certificate.
pub const CLIENT_URI_PREFIX: &str = "strand://client/";

/// The URI prefix of a role a certificate grants (`strand://role/participant`).
pub const ROLE_URI_PREFIX: &str = "strand://role/";

/// The longest name a certificate may carry.
pub const MAX_NAME_LEN: usize = 128;

/// Why TLS material could not be made, read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A node or client name that strand cannot put in a certificate.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's or parser's description.
        reason: String,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's description.
        reason: String,
    },
    /// A file exists and overwriting was not asked for.
    #[error("{path} already exists (use --force to replace it)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The directory has no CA (certificate or key) to sign with.
    #[error("no CA in {dir}: run `strand tls ca generate --dir {dir}` first")]
    NoCa {
        /// The TLS directory.
        dir: PathBuf,
    },
    /// The directory has no certificate for this name.
    #[error("no {role} certificate for {name:?} in {dir}: run `strand tls {role} generate --name {name} --dir {dir}`")]
    NoCertificate {
        /// The TLS directory.
        dir: PathBuf,
        /// The name asked for.
        name: String,
        /// `node` or `client`.
        role: RoleName,
    },
    /// A certificate is not one strand can use (no strand name, wrong role, not signed by the
    /// CA, unparsable).
    #[error("certificate {what}: {reason}")]
    BadCertificate {
        /// Which certificate (a path or a description).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Key or certificate generation failed.
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's description.
        reason: String,
    },
    /// rustls or quinn refused the configuration built from the material.
    #[error("TLS configuration: {reason}")]
    Config {
        /// What was refused.
        reason: String,
    },
}

/// `node` or `client`, as printed in file names and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleName(pub PeerRole);

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            PeerRole::Node => "node",
            PeerRole::Client => "client",
        })
    }
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The node or client name.
    pub name: String,
    /// Node or client certificate.
    pub role: PeerRole,
    /// The roles it grants (never empty).
    pub roles: RoleSet,
}

/// Checks that `name` can name a node or client: 1 to 128 characters of ASCII letters,
/// digits, `_`, `-` and `.`, starting with a letter, digit or `_`.
pub fn validate_name(name: &str) -> Result<(), TlsError> {
    let bad = |reason: &str| TlsError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("it is longer than {MAX_NAME_LEN} characters")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed (use letters, digits, '_', '-' and '.')"
        )));
    }
    if name.starts_with(['-', '.']) {
        return Err(bad("it must start with a letter, a digit or '_'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["localhost_12913", "store-1", "a", "_x", "n.example"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", &"x".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
