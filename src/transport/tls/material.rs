//! [`TlsMaterial`]: what an endpoint loaded (the CA, its own certificate and key), and the
//! rustls server and client configurations built from it.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::revoke::Revocations;
use super::verify::{identity_of, StrandClientVerifier, StrandServerVerifier};
use super::{Identity, PeerRole, TlsError, ALPN};

/// What an endpoint needs for mutual TLS: the cluster CA and its own certificate and key.
pub struct TlsMaterial {
    identity: Identity,
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    revoked: Arc<Revocations>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        TlsMaterial {
            identity: self.identity.clone(),
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            revoked: self.revoked.clone(),
        }
    }
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("name", &self.identity.name)
            .field("role", &self.identity.role)
            .field("roles", &self.identity.roles)
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
            revoked: Arc::default(),
        };
        // Catch a certificate from another CA now, with a clear message, not at the first
        // handshake. Node certificates carry clientAuth too, so this one check covers both.
        let verifier = material.client_verifier()?;
        verifier
            .verify_client_cert(&material.cert, &[], UnixTime::now())
            .map_err(|e| bad("certificate", format!("not valid under this CA: {e}")))?;
        Ok(material)
    }

    /// This material with `revoked` as the revocation list its verifiers check; refused if
    /// its own certificate is on it.
    pub fn with_revocations(mut self, revoked: Revocations) -> Result<TlsMaterial, TlsError> {
        revoked
            .check(&self.identity.name, &self.cert)
            .map_err(|reason| TlsError::BadCertificate {
                what: "certificate".into(),
                reason,
            })?;
        self.revoked = Arc::new(revoked);
        Ok(self)
    }

    /// The revocation list the verifiers check.
    pub fn revocations(&self) -> &Revocations {
        &self.revoked
    }

    /// The holder's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Node or client certificate.
    pub fn role(&self) -> PeerRole {
        self.identity.role
    }

    /// The roles the certificate grants.
    pub fn roles(&self) -> crate::authz::RoleSet {
        self.identity.roles
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
            revoked: self.revoked.clone(),
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
            revoked: self.revoked.clone(),
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
