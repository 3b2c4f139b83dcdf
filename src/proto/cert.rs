//! Cluster certificates: the self-signed ed25519 X.509 leaf every cluster
//! presents. One check serves both loading our own certificate and
//! authenticating a peer's, so a peer is held to the same standard.

use x509_parser::oid_registry::OID_SIG_ED25519;

use crate::proto::identity::{ClusterId, IdentityError, verify_strict};

/// Why a certificate cannot identify a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Not DER X.509 (or trailing bytes after it).
    #[error("certificate is not valid X.509: {0}")]
    Malformed(String),
    /// The key or signature algorithm is not ed25519.
    #[error("certificate {what} algorithm is {oid}, expected ed25519 (1.3.101.112)")]
    NotEd25519 {
        /// Which field (`public key` or `signature`).
        what: &'static str,
        /// The OID found.
        oid: String,
    },
    /// The ed25519 key is not 32 bytes long.
    #[error("ed25519 public key is {0} bytes, expected 32")]
    KeyLength(usize),
    /// The key is weak (small order), non-canonical or not a point.
    #[error("certificate key is not a usable cluster id")]
    BadKey(#[source] IdentityError),
    /// The certificate is not signed by its own key.
    #[error("certificate is not validly self-signed by its own key")]
    BadSelfSignature,
}

/// The cluster id carried by a DER certificate, after checking that it is an
/// ed25519 certificate validly self-signed (`verify_strict`) by a strong,
/// canonical key.
pub fn cluster_id_from_cert_der(der: &[u8]) -> Result<ClusterId, CertError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Malformed(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(CertError::NotEd25519 {
            what: "public key",
            oid: spki.algorithm.algorithm.to_id_string(),
        });
    }
    let raw = spki.subject_public_key.data.as_ref();
    let key: [u8; 32] = raw
        .try_into()
        .map_err(|_| CertError::KeyLength(raw.len()))?;
    let id = ClusterId(key);
    let verifying_key = id.verifying_key().map_err(CertError::BadKey)?;
    if cert.signature_algorithm.algorithm != OID_SIG_ED25519 {
        return Err(CertError::NotEd25519 {
            what: "signature",
            oid: cert.signature_algorithm.algorithm.to_id_string(),
        });
    }
    let sig: Option<[u8; 64]> = cert.signature_value.data.as_ref().try_into().ok();
    if !sig.is_some_and(|sig| verify_strict(&verifying_key, cert.tbs_certificate.as_ref(), &sig)) {
        return Err(CertError::BadSelfSignature);
    }
    Ok(id)
}
