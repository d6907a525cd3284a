//! Verification: the SAN name check ([`identity_of`]) and strand's verifiers. webpki checks
//! the chain to the CA, validity and key usage; then strand checks the name and role in the
//! certificate's URI: a server must present a node certificate, a server accepts node and
//! client certificates.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    DigitallySignedStruct, DistinguishedName as TlsDistinguishedName, RootCertStore, SignatureScheme,
};

use super::revoke::Revocations;
use super::{
    der, validate_name, Identity, PeerRole, TlsError, CLIENT_URI_PREFIX, NODE_URI_PREFIX, ROLE_URI_PREFIX,
};
use crate::authz::{Role, RoleSet};

/// Reads the strand identity (name, kind and roles) from a DER certificate. Exactly one
/// strand name URI must be present, with a valid name, and at least one role URI, each a role
/// strand knows.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Identity, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        what: "presented by the peer".into(),
        reason,
    };
    let uris = der::san_uris(cert.as_ref()).map_err(|e| bad(format!("unparsable: {e}")))?;
    let mut found: Option<(String, PeerRole)> = None;
    let mut roles = RoleSet::NONE;
    for uri in uris {
        let named = if let Some(name) = uri.strip_prefix(NODE_URI_PREFIX) {
            (name.to_string(), PeerRole::Node)
        } else if let Some(name) = uri.strip_prefix(CLIENT_URI_PREFIX) {
            (name.to_string(), PeerRole::Client)
        } else if let Some(role) = uri.strip_prefix(ROLE_URI_PREFIX) {
            roles = roles.with(Role::parse(role).map_err(|e| bad(e.to_string()))?);
            continue;
        } else {
            continue;
        };
        if found.is_some() {
            return Err(bad("more than one strand name".into()));
        }
        validate_name(&named.0).map_err(|e| bad(e.to_string()))?;
        found = Some(named);
    }
    let (name, role) = found.ok_or_else(|| bad("no strand://node/ or strand://client/ name".into()))?;
    if roles.is_empty() {
        return Err(bad(format!(
            "{name:?} carries no strand://role/ (issued before roles existed?): reissue it with `strand tls {} generate --name {name} --role ROLE --force`",
            super::RoleName(role)
        )));
    }
    Ok(Identity { name, role, roles })
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
pub(super) struct StrandServerVerifier {
    pub(super) roots: Arc<RootCertStore>,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) revoked: Arc<Revocations>,
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
        self.revoked
            .check(&identity.name, end_entity)
            .map_err(cert_error)?;
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
pub(super) struct StrandClientVerifier {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) revoked: Arc<Revocations>,
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
        let identity = identity_of(end_entity).map_err(|e| cert_error(e.to_string()))?;
        self.revoked
            .check(&identity.name, end_entity)
            .map_err(cert_error)?;
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

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;

    use super::super::{generate_ca, issue_certificate, TlsMaterial};
    use super::*;

    #[test]
    fn truncated_certificates_never_panic() {
        let ca = generate_ca("ca").unwrap();
        let roles = RoleSet::of(Role::Store);
        let node = issue_certificate(&ca, "n1", PeerRole::Node, roles, &[], &[]).unwrap();
        let der = CertificateDer::from_pem_slice(node.cert_pem.as_bytes())
            .unwrap()
            .to_vec();
        assert_eq!(
            der::san_uris(&der).unwrap(),
            vec!["strand://node/n1".to_string(), "strand://role/store".to_string()]
        );
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
}
