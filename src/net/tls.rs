//! TLS 1.3 for QUIC with mutual authentication by self-signed ed25519
//! certificates.
//!
//! There is no CA and no host name: a cluster *is* its ed25519 key, so the
//! verifiers here accept exactly one certificate (a self-signed ed25519 leaf),
//! let rustls check that the peer signed the handshake with that key, and hand
//! back the key as the peer's [`ClusterId`]. Whether that cluster may stay
//! connected is the caller's decision (the roster), not this module's.
//!
//! Validity dates are deliberately not checked: keygen certificates are valid
//! for centuries, and revoking a cluster is done by removing it from the
//! roster, not by letting a certificate expire.

use std::sync::{Arc, OnceLock};

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{PeerMisbehaved, SignatureScheme};

use crate::proto::ClusterId;
use crate::proto::cert::{CertError, cluster_id_from_cert_der};
use crate::store::keys::TlsMaterial;

/// The ALPN protocol id every fedmesh connection negotiates; a peer speaking
/// anything else fails the handshake instead of receiving frames it cannot
/// parse.
pub const ALPN: &[u8] = b"fedmesh/1";

/// The fixed SNI sent when dialing. Identity comes from the key, never from a
/// name, but QUIC clients must send some syntactically valid name.
pub const SERVER_NAME: &str = "fedmesh";

/// Why a peer's certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerCertError {
    /// The leaf itself cannot identify a cluster.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The peer sent a chain, where a single self-signed leaf is expected.
    #[error("peer sent {0} certificates after its leaf; expected a single self-signed leaf")]
    Chain(usize),
    /// The dialer pinned another cluster id than the one presented.
    #[error("expected cluster {expected}, peer presented cluster {found}")]
    Mismatch {
        /// The pinned id.
        expected: ClusterId,
        /// The id in the peer's certificate.
        found: ClusterId,
    },
}

/// Why rustls or quinn configuration could not be built from our material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the certificate, key or protocol settings.
    #[error("rustls refused the TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The provider lacks the cipher suite QUIC's initial packets need.
    #[error("QUIC needs TLS_AES_128_GCM_SHA256, which the crypto provider lacks")]
    Quic(#[from] NoInitialCipherSuite),
}

/// The ring provider, built once: every config shares it.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The signature algorithms rustls/webpki verify handshake signatures with.
fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// The cluster id carried by a DER certificate, after checking that it is an
/// ed25519 certificate validly self-signed by a strong, canonical key.
///
/// This mirrors the checks `store::keys` applies when loading our own
/// certificate, so a peer is held to the same standard as ourselves.
pub fn cluster_id_from_cert(der: &[u8]) -> Result<ClusterId, PeerCertError> {
    Ok(cluster_id_from_cert_der(der)?)
}

/// The authenticated cluster id of a connection's peer, read back from the
/// certificate its handshake was verified against; `None` before the
/// handshake completed (or for a connection not made with these configs).
pub fn peer_cluster_id(conn: &quinn::Connection) -> Option<ClusterId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    cluster_id_from_cert(certs.first()?).ok()
}

/// A refusal as carried inside a rustls error. rustls prints
/// `CertificateError::Other` with `{:?}`, so `Debug` shows the readable
/// message; that is the text that ends up in quinn's error and our logs.
struct Refusal(PeerCertError);

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Wraps a refusal so that rustls aborts the handshake with a certificate
/// alert and the message reaches the local log.
fn refuse(e: PeerCertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal(e)))))
}

/// The checks common to both directions: exactly one self-signed ed25519 leaf.
fn check_leaf(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<ClusterId, rustls::Error> {
    if !intermediates.is_empty() {
        return Err(refuse(PeerCertError::Chain(intermediates.len())));
    }
    cluster_id_from_cert(end_entity).map_err(refuse)
}

/// Verifies the TLS 1.3 `CertificateVerify` signature, which is what proves
/// the peer holds the private key of the certificate (hence the cluster id).
fn check_tls13_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
}

/// TLS 1.2 is disabled in every config; reaching this is a rustls bug or a
/// misconfiguration, and must fail closed.
fn no_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not supported".into()))
}

/// Verifies the server when dialing, optionally pinned to an expected id.
#[derive(Debug)]
struct ServerVerifier {
    /// The id the dialer pinned (`ID@HOST:PORT`), if any.
    expected: Option<ClusterId>,
    /// The id the server presented, recorded so a failed dial can report
    /// which cluster answered instead of a bare TLS alert.
    seen: Arc<OnceLock<ClusterId>>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = check_leaf(end_entity, intermediates)?;
        let _ = self.seen.set(found);
        match self.expected {
            Some(expected) if expected != found => {
                Err(refuse(PeerCertError::Mismatch { expected, found }))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        check_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Verifies dialing clients on the accepting side; a certificate is mandatory.
#[derive(Debug)]
struct ClientVerifier;

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No CA: there is nothing to hint at.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_leaf(end_entity, intermediates).map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        no_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        check_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

fn cert_and_key(material: &TlsMaterial) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from(material.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.key_pkcs8_der.clone())),
    )
}

/// The accepting side's QUIC crypto config: TLS 1.3 only, ALPN `fedmesh/1`,
/// client certificates mandatory and verified as above.
///
/// Session tickets are disabled so that every connection runs a full
/// handshake: the peer id always comes from a fresh signature, and there is
/// no 0-RTT data to replay.
pub fn server_crypto(material: &TlsMaterial) -> Result<Arc<QuicServerConfig>, TlsError> {
    let (chain, key) = cert_and_key(material);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(ClientVerifier))
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(Arc::new(QuicServerConfig::try_from(config)?))
}

/// The dialing side's QUIC crypto config, presenting our certificate and
/// refusing a server whose key differs from `expected` when one is pinned.
///
/// The returned cell receives the server's cluster id as soon as its
/// certificate is parsed, so a refused dial can say who answered.
pub(crate) fn client_crypto_observed(
    material: &TlsMaterial,
    expected: Option<ClusterId>,
) -> Result<(Arc<QuicClientConfig>, Arc<OnceLock<ClusterId>>), TlsError> {
    let seen = Arc::new(OnceLock::new());
    let verifier = ServerVerifier {
        expected,
        seen: seen.clone(),
    };
    let (chain, key) = cert_and_key(material);
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // Resumed sessions skip certificate verification; always re-prove the key.
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok((Arc::new(QuicClientConfig::try_from(config)?), seen))
}

/// The dialing side's QUIC crypto config (see [`server_crypto`] for the
/// settings), optionally pinned to the server's expected cluster id.
///
/// [`Transport::connect`](super::Transport::connect) uses this; it is public
/// so tests and tools can speak raw QUIC to a fedmesh node.
pub fn client_crypto(
    material: &TlsMaterial,
    expected: Option<ClusterId>,
) -> Result<Arc<QuicClientConfig>, TlsError> {
    client_crypto_observed(material, expected).map(|(config, _)| config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen_cert() -> (ClusterId, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let files = crate::store::keys::generate_key_files("a", tmp.path(), false).unwrap();
        let material =
            crate::store::keys::load_tls_material(&files.cert_path, &files.key_path).unwrap();
        (material.cluster_id, material.cert_der)
    }

    #[test]
    fn keygen_certificates_yield_their_cluster_id() {
        let (id, der) = keygen_cert();
        assert_eq!(cluster_id_from_cert(&der), Ok(id));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            cluster_id_from_cert(&trailing),
            Err(PeerCertError::Cert(CertError::Malformed(_)))
        ));
        let mut forged = der;
        if let Some(last) = forged.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            cluster_id_from_cert(&forged),
            Err(PeerCertError::Cert(CertError::BadSelfSignature))
        );
        assert!(matches!(
            cluster_id_from_cert(b"not a certificate"),
            Err(PeerCertError::Cert(CertError::Malformed(_)))
        ));
    }

    #[test]
    fn verifiers_refuse_foreign_algorithms_chains_and_pinned_mismatches() {
        let ecdsa = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        let ecdsa_der = CertificateDer::from(ecdsa.cert.der().to_vec());
        let now = UnixTime::now();
        let err = ClientVerifier
            .verify_client_cert(&ecdsa_der, &[], now)
            .unwrap_err();
        assert!(err.to_string().contains("expected ed25519"), "{err}");

        let (id, der) = keygen_cert();
        let der = CertificateDer::from(der);
        assert!(ClientVerifier.verify_client_cert(&der, &[], now).is_ok());
        let err = ClientVerifier
            .verify_client_cert(&der, std::slice::from_ref(&der), now)
            .unwrap_err();
        assert!(err.to_string().contains("single self-signed leaf"), "{err}");

        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let other = ClusterId([9; 32]);
        let pinned = ServerVerifier {
            expected: Some(other),
            seen: Arc::default(),
        };
        let err = pinned
            .verify_server_cert(&der, &[], &name, &[], now)
            .unwrap_err();
        assert!(err.to_string().contains(&id.to_string()), "{err}");
        assert_eq!(pinned.seen.get(), Some(&id));
        let good = ServerVerifier {
            expected: Some(id),
            seen: Arc::default(),
        };
        assert!(good.verify_server_cert(&der, &[], &name, &[], now).is_ok());
    }
}
