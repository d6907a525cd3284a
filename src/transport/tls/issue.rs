//! Certificate issuance (rcgen): the cluster CA and the node and client certificates it
//! signs, each naming its holder in a URI subject alternative name.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::{der, validate_name, PeerRole, TlsError, CLIENT_URI_PREFIX, NODE_URI_PREFIX, ROLE_URI_PREFIX};
use crate::authz::RoleSet;

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

/// Issues a node or client certificate for `name` granting `roles`, signed by `ca` (ECDSA
/// P-256, valid 5 years). `ips` and `dns` add optional IP and DNS subject alternative names.
pub fn issue_certificate(
    ca: &CertAndKey,
    name: &str,
    role: PeerRole,
    roles: RoleSet,
    ips: &[IpAddr],
    dns: &[String],
) -> Result<CertAndKey, TlsError> {
    validate_name(name)?;
    if roles.is_empty() {
        return Err(TlsError::Generate {
            what: format!("a certificate for {name:?}"),
            reason: "it must grant at least one role".into(),
        });
    }
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
    for r in roles.iter() {
        let uri = format!("{ROLE_URI_PREFIX}{r}")
            .try_into()
            .map_err(gen_err("the role's URI"))?;
        params.subject_alt_names.push(SanType::URI(uri));
    }
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

#[cfg(test)]
mod tests {
    use super::super::TlsMaterial;
    use super::*;
    use crate::authz::Role;

    fn node_roles() -> RoleSet {
        RoleSet::of(Role::Participant)
    }

    #[test]
    fn issued_certificates_carry_name_and_role() {
        let ca = generate_ca("test CA").unwrap();
        let node = issue_certificate(&ca, "localhost_12913", PeerRole::Node, node_roles(), &[], &[]).unwrap();
        let m = TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
        assert_eq!(m.name(), "localhost_12913");
        assert_eq!(m.role(), PeerRole::Node);
        assert_eq!(m.roles(), node_roles());
        let client = issue_certificate(
            &ca,
            "admin",
            PeerRole::Client,
            RoleSet::of(Role::Admin).with(Role::Viewer),
            &["127.0.0.1".parse().unwrap()],
            &["example.org".into()],
        )
        .unwrap();
        let m = TlsMaterial::from_pem(&ca.cert_pem, &client.cert_pem, &client.key_pem).unwrap();
        assert_eq!((m.name(), m.role()), ("admin", PeerRole::Client));
        assert_eq!(m.roles().to_string(), "admin,viewer");
        assert!(m.server_config().is_err(), "a client certificate cannot serve");
    }

    #[test]
    fn material_from_another_ca_is_refused_at_load() {
        let ca = generate_ca("one").unwrap();
        let other = generate_ca("two").unwrap();
        let node = issue_certificate(&other, "n1", PeerRole::Node, node_roles(), &[], &[]).unwrap();
        let err = TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn issuing_reads_the_ca_subject_back_exactly() {
        // A CA with an unusual common name still chains: the issuer name is read, not assumed.
        let ca = generate_ca("Ünïcode CA / test").unwrap();
        let node = issue_certificate(&ca, "n1", PeerRole::Node, node_roles(), &[], &[]).unwrap();
        assert!(TlsMaterial::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).is_ok());
        let der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        let subject = der::subject(der.as_ref()).unwrap();
        assert_eq!(subject.len(), 2);
        assert_eq!(subject[0].0, vec![2, 5, 4, 3]);
    }

    #[test]
    fn a_certificate_grants_at_least_one_role() {
        let ca = generate_ca("ca").unwrap();
        let err = issue_certificate(&ca, "n1", PeerRole::Node, RoleSet::NONE, &[], &[]).unwrap_err();
        assert!(err.to_string().contains("at least one role"), "{err}");
    }
}
