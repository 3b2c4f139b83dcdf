//! Cluster identities: an ed25519 key pair whose public key is the cluster id.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::bytes32::bytes32_type;

bytes32_type!(
    /// A cluster's id: its 32-byte ed25519 public key.
    ClusterId
);

/// Why a public key or key file cannot be used as a cluster identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The 32 bytes are not the encoding of a curve point.
    #[error("cluster id {0} is not a valid ed25519 public key")]
    NotAPoint(String),
    /// The point is valid but its encoding is not the canonical one.
    #[error("cluster id {0} is a non-canonical ed25519 encoding")]
    NonCanonical(String),
    /// The point has small order, so signatures under it prove nothing.
    #[error("cluster id {0} is a weak (small-order) ed25519 key")]
    Weak(String),
    /// A PEM/PKCS#8 private key could not be parsed.
    #[error("not a PKCS#8 ed25519 private key: {0}")]
    BadPrivateKey(String),
}

impl ClusterId {
    /// The validated verifying key for this id: canonical encoding, on the
    /// curve, not of small order. Every key a roster admits goes through here.
    pub fn verifying_key(&self) -> Result<VerifyingKey, IdentityError> {
        let compressed = curve25519_dalek::edwards::CompressedEdwardsY(self.0);
        let point = compressed
            .decompress()
            .ok_or_else(|| IdentityError::NotAPoint(self.to_string()))?;
        if point.compress().to_bytes() != self.0 {
            return Err(IdentityError::NonCanonical(self.to_string()));
        }
        if point.is_small_order() {
            return Err(IdentityError::Weak(self.to_string()));
        }
        VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::NotAPoint(self.to_string()))
    }
}

/// A cluster's private signing identity.
pub struct Identity {
    key: SigningKey,
    id: ClusterId,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.id.short())
    }
}

impl Identity {
    /// A fresh identity from the given RNG.
    pub fn generate<R: rand::CryptoRng + rand::RngCore>(rng: &mut R) -> Self {
        Self::from_signing_key(SigningKey::generate(rng))
    }

    /// An identity from a 32-byte secret seed (tests and simulations).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// Wraps an existing signing key.
    pub fn from_signing_key(key: SigningKey) -> Self {
        let id = ClusterId(key.verifying_key().to_bytes());
        Identity { key, id }
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, IdentityError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_signing_key)
            .map_err(|e| IdentityError::BadPrivateKey(e.to_string()))
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, IdentityError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|z| z.to_string())
            .map_err(|e| IdentityError::BadPrivateKey(e.to_string()))
    }

    /// The private key as PKCS#8 DER (what rcgen and rustls take).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, IdentityError> {
        self.key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| IdentityError::BadPrivateKey(e.to_string()))
    }

    /// This cluster's id.
    pub fn id(&self) -> ClusterId {
        self.id
    }

    /// Signs `msg` (already a domain-tagged canonical layout).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.key.sign(msg);
        sig.to_bytes()
    }
}

/// Checks `sig` over `msg` with `verify_strict`, which refuses non-canonical
/// signatures and small-order components, the check every safety decision uses.
pub fn verify_strict(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    key.verify_strict(msg, &Signature::from_bytes(sig)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem_and_validates() {
        let id = Identity::generate(&mut rand::thread_rng());
        let pem = id.to_pkcs8_pem().unwrap();
        let back = Identity::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.id(), id.id());
        assert!(id.id().verifying_key().is_ok());
        let sig = id.sign(b"m");
        assert!(verify_strict(&id.id().verifying_key().unwrap(), b"m", &sig));
        assert!(!verify_strict(
            &id.id().verifying_key().unwrap(),
            b"n",
            &sig
        ));
    }

    #[test]
    fn weak_and_non_canonical_keys_are_refused() {
        // The identity point (small order) encoded canonically.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert!(matches!(
            ClusterId(identity_point).verifying_key(),
            Err(IdentityError::Weak(_))
        ));
        // y = p + 1 is a non-canonical encoding of y = 1 (the identity).
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(matches!(
            ClusterId(non_canonical).verifying_key(),
            Err(IdentityError::NonCanonical(_))
        ));
        assert!(Identity::from_pkcs8_pem("garbage").is_err());
    }
}
