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
//! ```
//!
//! Verification is webpki's (chain to the CA, validity, key usage), then strand's own check
//! of the name and role in the URI: a server must present a node certificate (a client
//! certificate fails webpki's serverAuth check and the role check); a server accepts node
//! and client certificates and reports which one in [`Identity::role`]. Whether the node's
//! name is the one a caller expected is checked by the transport on each request.
//!
//! Everything here is synchronous; keys are written with mode 0600, files are written to a
//! temporary name and renamed into place so a reader never sees half a file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName as TlsDistinguishedName, RootCertStore, SignatureScheme,
};

use super::PeerRole;

/// The ALPN protocol every strand endpoint speaks.
pub const ALPN: &[u8] = b"strand/1";

/// The URI prefix that names a node in its certificate.
pub const NODE_URI_PREFIX: &str = "strand://node/";
/// The URI prefix that names a client in its certificate.
pub const CLIENT_URI_PREFIX: &str = "strand://client/";

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

/// Reads the strand identity (name and role) from a DER certificate. Exactly one strand URI
/// must be present, with a valid name.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        what: "presented by the peer".into(),
        reason,
    };
    let uris = der::san_uris(cert.as_ref()).map_err(|e| bad(format!("unparsable: {e}")))?;
    let mut found: Option<Identity> = None;
    for uri in uris {
        let identity = if let Some(name) = uri.strip_prefix(NODE_URI_PREFIX) {
            Identity {
                name: name.to_string(),
                role: PeerRole::Node,
            }
        } else if let Some(name) = uri.strip_prefix(CLIENT_URI_PREFIX) {
            Identity {
                name: name.to_string(),
                role: PeerRole::Client,
            }
        } else {
            continue;
        };
        if found.is_some() {
            return Err(bad("more than one strand name".into()));
        }
        validate_name(&identity.name).map_err(|e| bad(e.to_string()))?;
        found = Some(identity);
    }
    found.ok_or_else(|| bad("no strand://node/ or strand://client/ name".into()))
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
}

impl fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The validity window of generated certificates: from the start of last year for `years`.
fn validity(params: &mut CertificateParams, years: i32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Whole years are enough precision for a validity window that starts a year back.
    let year = 1970 + (now / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + years, 1, 1);
}

fn gen_err(what: &str) -> impl Fn(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Generate {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

/// The issuer for certificates signed by the CA in `ca_pem`: its subject, read from the
/// certificate so issued certificates name it byte for byte, and its key.
fn ca_issuer(ca_pem: &str, key: KeyPair) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        what: "CA".into(),
        reason,
    };
    let der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    for (oid, value) in der::subject(der.as_ref()).map_err(|e| bad(format!("unparsable subject: {e}")))? {
        let value = match value {
            der::DnString::Utf8(s) => rcgen::DnValue::Utf8String(s),
            der::DnString::Printable(s) => {
                rcgen::DnValue::PrintableString(s.try_into().map_err(|e: rcgen::Error| bad(e.to_string()))?)
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.key_usages = ca_key_usages();
    Ok(Issuer::new(params, key))
}

/// Generates a new cluster CA (ECDSA P-256, valid 20 years).
pub fn generate_ca(common_name: &str) -> Result<CertAndKey, TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err("a CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "strand");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    validity(&mut params, 20);
    let cert = params.self_signed(&key).map_err(gen_err("the CA certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a node or client certificate for `name`, signed by `ca` (ECDSA P-256, valid 5
/// years). `ips` and `dns` add optional IP and DNS subject alternative names.
pub fn issue_certificate(
    ca: &CertAndKey,
    name: &str,
    role: PeerRole,
    ips: &[IpAddr],
    dns: &[String],
) -> Result<CertAndKey, TlsError> {
    validate_name(name)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| TlsError::BadCertificate {
        what: "CA key".into(),
        reason: e.to_string(),
    })?;
    let issuer = ca_issuer(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err("a key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "strand");
    params.distinguished_name = dn;
    let uri = match role {
        PeerRole::Node => format!("{NODE_URI_PREFIX}{name}"),
        PeerRole::Client => format!("{CLIENT_URI_PREFIX}{name}"),
    };
    let uri = uri.try_into().map_err(gen_err("the name's URI"))?;
    params.subject_alt_names.push(SanType::URI(uri));
    for ip in ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for d in dns {
        let dns_name = d
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| TlsError::InvalidName {
                name: d.clone(),
                reason: format!("not a DNS name: {e}"),
            })?;
        params.subject_alt_names.push(SanType::DnsName(dns_name));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        PeerRole::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        PeerRole::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 5);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(gen_err("the certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A TLS directory: the CA and the certificates of the nodes and clients that run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDir {
    path: PathBuf,
}

impl TlsDir {
    /// The directory at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TlsDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `DIR/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.path.join("ca.pem")
    }

    /// `DIR/ca.key`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.path.join("ca.key")
    }

    /// `DIR/node-NAME.pem` or `DIR/client-NAME.pem`.
    pub fn cert_path(&self, name: &str, role: PeerRole) -> PathBuf {
        self.path.join(format!("{}-{name}.pem", RoleName(role)))
    }

    /// `DIR/node-NAME.key` or `DIR/client-NAME.key`.
    pub fn key_path(&self, name: &str, role: PeerRole) -> PathBuf {
        self.path.join(format!("{}-{name}.key", RoleName(role)))
    }

    /// Whether the CA certificate exists.
    pub fn has_ca(&self) -> bool {
        self.ca_cert_path().exists()
    }

    /// Whether the CA's key exists (so certificates can be issued here).
    pub fn has_ca_key(&self) -> bool {
        self.ca_key_path().exists()
    }

    /// Whether `name`'s certificate and key exist.
    pub fn has_certificate(&self, name: &str, role: PeerRole) -> bool {
        self.cert_path(name, role).exists() && self.key_path(name, role).exists()
    }

    /// Creates the directory (mode 0700) if needed.
    pub fn create(&self) -> Result<(), TlsError> {
        create_private_dir(&self.path)
    }

    /// Reads the CA certificate and key.
    pub fn read_ca(&self) -> Result<CertAndKey, TlsError> {
        if !self.has_ca() || !self.has_ca_key() {
            return Err(TlsError::NoCa {
                dir: self.path.clone(),
            });
        }
        Ok(CertAndKey {
            cert_pem: read_text(&self.ca_cert_path())?,
            key_pem: read_text(&self.ca_key_path())?,
        })
    }

    /// Generates a CA and writes `ca.pem` and `ca.key`; refuses to replace them unless
    /// `force`. Returns the files written.
    pub fn create_ca(&self, common_name: &str, force: bool) -> Result<Vec<PathBuf>, TlsError> {
        let files = [self.ca_cert_path(), self.ca_key_path()];
        refuse_existing(&files, force)?;
        self.create()?;
        let ca = generate_ca(common_name)?;
        write_file(&files[1], ca.key_pem.as_bytes(), 0o600)?;
        write_file(&files[0], ca.cert_pem.as_bytes(), 0o644)?;
        Ok(files.to_vec())
    }

    /// Issues `name`'s certificate with this directory's CA and writes it and its key;
    /// refuses to replace them unless `force`. Returns the files written.
    pub fn issue(
        &self,
        name: &str,
        role: PeerRole,
        ips: &[IpAddr],
        dns: &[String],
        force: bool,
    ) -> Result<Vec<PathBuf>, TlsError> {
        validate_name(name)?;
        let ca = self.read_ca()?;
        let files = [self.cert_path(name, role), self.key_path(name, role)];
        refuse_existing(&files, force)?;
        let issued = issue_certificate(&ca, name, role, ips, dns)?;
        write_file(&files[1], issued.key_pem.as_bytes(), 0o600)?;
        write_file(&files[0], issued.cert_pem.as_bytes(), 0o644)?;
        Ok(files.to_vec())
    }

    /// Loads the material `name` needs to run as `role`: the CA certificate and its own
    /// certificate and key.
    pub fn load(&self, name: &str, role: PeerRole) -> Result<TlsMaterial, TlsError> {
        validate_name(name)?;
        if !self.has_ca() {
            return Err(TlsError::NoCa {
                dir: self.path.clone(),
            });
        }
        if !self.has_certificate(name, role) {
            return Err(TlsError::NoCertificate {
                dir: self.path.clone(),
                name: name.to_string(),
                role: RoleName(role),
            });
        }
        let cert_path = self.cert_path(name, role);
        let material = TlsMaterial::from_pem(
            &read_text(&self.ca_cert_path())?,
            &read_text(&cert_path)?,
            &read_text(&self.key_path(name, role))?,
        )
        .map_err(|e| match e {
            TlsError::BadCertificate { reason, .. } => TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason,
            },
            other => other,
        })?;
        if material.name() != name || material.role() != role {
            return Err(TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason: format!(
                    "it names {} {:?}, expected {} {name:?}",
                    RoleName(material.role()),
                    material.name(),
                    RoleName(role)
                ),
            });
        }
        Ok(material)
    }
}

fn refuse_existing(files: &[PathBuf], force: bool) -> Result<(), TlsError> {
    if !force {
        if let Some(existing) = files.iter().find(|f| f.exists()) {
            return Err(TlsError::Exists {
                path: existing.clone(),
            });
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Creates `dir` and its parents; the directory itself gets mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_err = |e: std::io::Error| TlsError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(write_err)
}

/// Writes `bytes` to `path` atomically: a new temporary file with `mode` in the same
/// directory, synced, then renamed over `path`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |p: &Path, e: std::io::Error| TlsError::Write {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(path, e));
    }
    Ok(())
}

/// What an endpoint needs for mutual TLS: the cluster CA and its own certificate and key.
pub struct TlsMaterial {
    identity: Identity,
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            identity: self.identity.clone(),
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("name", &self.identity.name)
            .field("role", &self.identity.role)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Material from PEM text: the CA certificate, the holder's certificate and its key.
    /// The name and role come from the certificate, which must be signed by the CA.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<TlsMaterial, TlsError> {
        let bad = |what: &str, reason: String| TlsError::BadCertificate {
            what: what.to_string(),
            reason,
        };
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| bad("CA", e.to_string()))?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad("certificate", e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("key", e.to_string()))?;
        let identity = identity_of(&cert).map_err(|e| match e {
            TlsError::BadCertificate { reason, .. } => bad("certificate", reason),
            other => other,
        })?;
        let material = TlsMaterial {
            identity,
            ca,
            cert,
            key,
        };
        // Catch a certificate from another CA now, with a clear message, not at the first
        // handshake. Node certificates carry clientAuth too, so this one check covers both.
        let verifier = material.client_verifier()?;
        verifier
            .verify_client_cert(&material.cert, &[], UnixTime::now())
            .map_err(|e| bad("certificate", format!("not valid under this CA: {e}")))?;
        Ok(material)
    }

    /// The holder's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Node or client certificate.
    pub fn role(&self) -> PeerRole {
        self.identity.role
    }

    /// A 32-byte secret derived from the private key, stable across restarts: the seed of the
    /// QUIC stateless-reset key, so a restarted node can tell peers their old connection is
    /// gone.
    pub(crate) fn reset_seed(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"strand stateless reset key v1\0");
        ctx.update(self.key.secret_der());
        let digest = ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| TlsError::BadCertificate {
            what: "CA".into(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(roots))
    }

    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .build()
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })
    }

    /// The rustls server configuration: this certificate, TLS 1.3, ALPN `strand/1`, and a
    /// client certificate from the CA required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        if self.identity.role != PeerRole::Node {
            return Err(TlsError::Config {
                reason: format!(
                    "{:?} holds a client certificate; only node certificates can serve",
                    self.identity.name
                ),
            });
        }
        let verifier = Arc::new(StrandClientVerifier {
            inner: self.client_verifier()?,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client configuration: this certificate as the client certificate, and a
    /// server that must present a node certificate from the CA.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let verifier = Arc::new(StrandServerVerifier {
            roots: self.roots()?,
            provider: provider(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.cert.clone()], self.key.clone_key())
            .map_err(|e| TlsError::Config {
                reason: e.to_string(),
            })?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_error(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
        StrandCertError(reason),
    ))))
}

/// A strand-specific certificate rejection, carried through rustls into the handshake error.
#[derive(Debug)]
struct StrandCertError(String);

impl fmt::Display for StrandCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StrandCertError {}

/// The client side's check of a server: chains to the CA for serverAuth (webpki), and is a
/// node certificate with a valid strand name. The expected node name is checked per request.
#[derive(Debug)]
struct StrandServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for StrandServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let identity = identity_of(end_entity).map_err(|e| cert_error(e.to_string()))?;
        if identity.role != PeerRole::Node {
            return Err(cert_error(format!(
                "the server presented a client certificate ({:?}); only nodes serve",
                identity.name
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server side's check of a client: webpki's client verifier (a certificate from the CA
/// is required), then a valid strand name of either role.
#[derive(Debug)]
struct StrandClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for StrandClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[TlsDistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        identity_of(end_entity).map_err(|e| cert_error(e.to_string()))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Just enough DER to read a certificate's subject and its URI subject alternative names.
/// Every read is bounds-checked; malformed input is an error, never a panic. (The chain and
/// signatures are verified by webpki, not here.)
mod der {
    /// A value read from a subject attribute.
    pub enum DnString {
        /// UTF8String.
        Utf8(String),
        /// PrintableString.
        Printable(String),
    }

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const OCTET_STRING: u8 = 0x04;
    const BOOLEAN: u8 = 0x01;
    const UTF8_STRING: u8 = 0x0c;
    const PRINTABLE_STRING: u8 = 0x13;
    const VERSION: u8 = 0xa0;
    const EXTENSIONS: u8 = 0xa3;
    const URI: u8 = 0x86;
    /// 2.5.29.17, subjectAltName.
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

    /// One tag-length-value: (tag, contents, what follows).
    fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
        let (&tag, rest) = input.split_first().ok_or("truncated: no tag")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte tags are not used in certificates".into());
        }
        let (&first, rest) = rest.split_first().ok_or("truncated: no length")?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad length".into());
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(format!("truncated: {len} bytes declared, {} left", rest.len()));
        }
        Ok((tag, &rest[..len], &rest[len..]))
    }

    fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
        let (tag, contents, rest) = tlv(input)?;
        if tag != want {
            return Err(format!("expected tag {want:#04x}, found {tag:#04x}"));
        }
        Ok((contents, rest))
    }

    /// The TBSCertificate's fields up to and including the subject: (subject, what follows).
    fn to_subject(cert: &[u8]) -> Result<(&[u8], &[u8]), String> {
        let (cert, _) = expect(cert, SEQUENCE)?;
        let (tbs, _) = expect(cert, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&VERSION) {
            rest = tlv(rest)?.2;
        }
        // serial, signature algorithm, issuer, validity
        for _ in 0..4 {
            rest = tlv(rest)?.2;
        }
        expect(rest, SEQUENCE)
    }

    /// The subject's attributes, in order: (OID arcs, string value).
    pub fn subject(cert: &[u8]) -> Result<Vec<(Vec<u64>, DnString)>, String> {
        let (mut rdns, _) = to_subject(cert)?;
        let mut out = Vec::new();
        while !rdns.is_empty() {
            let (mut set, rest) = expect(rdns, SET)?;
            rdns = rest;
            while !set.is_empty() {
                let (atv, rest) = expect(set, SEQUENCE)?;
                set = rest;
                let (oid, value) = expect(atv, OID)?;
                let (tag, text, _) = tlv(value)?;
                let text = std::str::from_utf8(text)
                    .map_err(|_| "a subject attribute is not UTF-8".to_string())?
                    .to_string();
                let value = match tag {
                    UTF8_STRING => DnString::Utf8(text),
                    PRINTABLE_STRING => DnString::Printable(text),
                    other => {
                        return Err(format!(
                            "subject attribute string type {other:#04x} is not supported"
                        ))
                    }
                };
                out.push((oid_arcs(oid)?, value));
            }
        }
        Ok(out)
    }

    fn oid_arcs(oid: &[u8]) -> Result<Vec<u64>, String> {
        let mut arcs = Vec::new();
        let mut acc: u64 = 0;
        for (i, &b) in oid.iter().enumerate() {
            if acc > (u64::MAX >> 7) {
                return Err("OID arc too large".into());
            }
            acc = (acc << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (acc / 40).min(2);
                    arcs.push(first);
                    arcs.push(acc - first * 40);
                } else {
                    arcs.push(acc);
                }
                acc = 0;
            } else if i + 1 == oid.len() {
                return Err("truncated OID".into());
            }
        }
        if arcs.is_empty() {
            return Err("empty OID".into());
        }
        Ok(arcs)
    }

    /// Every URI in the subjectAltName extension (none if there is no such extension).
    pub fn san_uris(cert: &[u8]) -> Result<Vec<String>, String> {
        let (_, mut rest) = to_subject(cert)?;
        rest = tlv(rest)?.2; // subjectPublicKeyInfo
        let mut uris = Vec::new();
        while !rest.is_empty() {
            let (tag, contents, next) = tlv(rest)?;
            rest = next;
            if tag != EXTENSIONS {
                continue;
            }
            let (mut exts, _) = expect(contents, SEQUENCE)?;
            while !exts.is_empty() {
                let (ext, next) = expect(exts, SEQUENCE)?;
                exts = next;
                let (oid, mut body) = expect(ext, OID)?;
                if body.first() == Some(&BOOLEAN) {
                    body = tlv(body)?.2;
                }
                let (value, _) = expect(body, OCTET_STRING)?;
                if oid != SAN_OID {
                    continue;
                }
                let (mut names, _) = expect(value, SEQUENCE)?;
                while !names.is_empty() {
                    let (tag, name, next) = tlv(names)?;
                    names = next;
                    if tag == URI {
                        let uri = std::str::from_utf8(name).map_err(|_| "a URI is not ASCII".to_string())?;
                        uris.push(uri.to_string());
                    }
                }
            }
        }
        Ok(uris)
    }
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

    #[test]
    fn issued_certificates_carry_name_and_role() {
        let ca = generate_ca("test CA").unwrap();
        let node = issue_certificate(&ca, "localhost_12913", PeerRole::Node, &[], &[]).unwrap();
        let m = TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
        assert_eq!(m.name(), "localhost_12913");
        assert_eq!(m.role(), PeerRole::Node);
        let client = issue_certificate(
            &ca,
            "admin",
            PeerRole::Client,
            &["127.0.0.1".parse().unwrap()],
            &["example.org".into()],
        )
        .unwrap();
        let m = TlsMaterial::from_pem(&ca.cert_pem, &client.cert_pem, &client.key_pem).unwrap();
        assert_eq!((m.name(), m.role()), ("admin", PeerRole::Client));
        assert!(m.server_config().is_err(), "a client certificate cannot serve");
    }

    #[test]
    fn material_from_another_ca_is_refused_at_load() {
        let ca = generate_ca("one").unwrap();
        let other = generate_ca("two").unwrap();
        let node = issue_certificate(&other, "n1", PeerRole::Node, &[], &[]).unwrap();
        let err = TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn issuing_reads_the_ca_subject_back_exactly() {
        // A CA with an unusual common name still chains: the issuer name is read, not assumed.
        let ca = generate_ca("Ünïcode CA / test").unwrap();
        let node = issue_certificate(&ca, "n1", PeerRole::Node, &[], &[]).unwrap();
        assert!(TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).is_ok());
        let der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let subject = der::subject(der.as_ref()).unwrap();
        assert_eq!(subject.len(), 2);
        assert_eq!(subject[0].0, vec![2, 5, 4, 3]);
    }

    #[test]
    fn truncated_certificates_never_panic() {
        let ca = generate_ca("ca").unwrap();
        let node = issue_certificate(&ca, "n1", PeerRole::Node, &[], &[]).unwrap();
        let der = CertificateDer::from_pem_slice(node.cert_pem.as_bytes())
            .unwrap()
            .to_vec();
        assert_eq!(der::san_uris(&der).unwrap(), vec!["strand://node/n1".to_string()]);
        for cut in 0..der.len() {
            let _ = der::san_uris(&der[..cut]);
            let _ = der::subject(&der[..cut]);
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = identity_of(&CertificateDer::from(flipped.clone()));
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn garbage_certificates_are_errors() {
        assert!(identity_of(&CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff])).is_err());
        assert!(identity_of(&CertificateDer::from(Vec::new())).is_err());
        assert!(TlsMaterial::from_pem("nope", "nope", "nope").is_err());
    }

    #[test]
    fn directory_layout_and_overwrite_protection() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TlsDir::new(tmp.path().join("tls"));
        assert!(matches!(
            dir.issue("n1", PeerRole::Node, &[], &[], false),
            Err(TlsError::NoCa { .. })
        ));
        let written = dir.create_ca("strand cluster CA", false).unwrap();
        assert_eq!(written, vec![dir.ca_cert_path(), dir.ca_key_path()]);
        assert!(matches!(dir.create_ca("x", false), Err(TlsError::Exists { .. })));
        dir.issue("n1", PeerRole::Node, &[], &[], false).unwrap();
        assert!(matches!(
            dir.issue("n1", PeerRole::Node, &[], &[], false),
            Err(TlsError::Exists { .. })
        ));
        dir.issue("n1", PeerRole::Node, &[], &[], true).unwrap();
        let m = dir.load("n1", PeerRole::Node).unwrap();
        assert_eq!(m.name(), "n1");
        assert!(matches!(
            dir.load("n2", PeerRole::Node),
            Err(TlsError::NoCertificate { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.key_path("n1", PeerRole::Node))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(dir.ca_key_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
