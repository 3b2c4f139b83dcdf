//! Cluster key files: the PKCS#8 private key (`NAME.key`, mode 0600) and the
//! self-signed X.509 certificate made from the same key (`NAME.crt`).
//!
//! The certificate exists only because TLS needs one: peers identify each other
//! by the certificate's ed25519 public key (the cluster id), never by a CA or a
//! host name. So loading a certificate insists on an ed25519 key and a valid
//! self-signature, and [`check_cert_matches_key`] makes sure a node never
//! presents a certificate that its private key cannot back.

use crate::store::bounded::{BoundedReadError, read_bounded};
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::cert::{CertError, cluster_id_from_cert_der};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use x509_parser::pem::Pem;

use crate::proto::identity::IdentityError;
use crate::proto::roster::{RosterError, validate_name};
use crate::proto::{ClusterId, Identity};

/// Key and certificate files are a few hundred bytes; anything much larger is
/// not one, and reading it whole would let a stray path exhaust memory.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// PEM label of a PKCS#8 private key.
const KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of an X.509 certificate.
const CERT_LABEL: &str = "CERTIFICATE";

/// Why a key or certificate file cannot be created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, writing or creating a file or directory failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create directory`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that keygen would write already exists.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key name is not a valid cluster name.
    #[error("invalid key name")]
    BadName(#[source] RosterError),
    /// The file is larger than any key or certificate file.
    #[error("{} is {len} bytes, too large for a key or certificate file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The file holds no readable PEM block.
    #[error("{} is not a PEM file: {reason}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        reason: String,
    },
    /// The PEM block is of another kind than expected.
    #[error("{} holds a {found:?} PEM block, expected {expected}", path.display())]
    WrongLabel {
        /// The file.
        path: PathBuf,
        /// The label found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The private key does not parse as a PKCS#8 ed25519 key.
    #[error("{} does not hold a usable ed25519 private key", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: IdentityError,
    },
    /// The certificate does not parse as X.509.
    #[error("{} is not a valid X.509 certificate: {reason}", path.display())]
    BadCert {
        /// The file.
        path: PathBuf,
        /// What the parser found wrong.
        reason: String,
    },
    /// The certificate's public key or signature is not ed25519.
    #[error("{} uses {what} algorithm {oid}, expected ed25519 (1.3.101.112)", path.display())]
    WrongAlgorithm {
        /// The file.
        path: PathBuf,
        /// Which algorithm field (`public key` or `signature`).
        what: &'static str,
        /// The OID found.
        oid: String,
    },
    /// The certificate's ed25519 public key is not a usable cluster id.
    #[error("{} holds an unusable ed25519 public key", path.display())]
    BadPublicKey {
        /// The file.
        path: PathBuf,
        /// Why the key is refused.
        #[source]
        source: IdentityError,
    },
    /// The certificate is not signed by its own key.
    #[error("{} is not validly self-signed by its own key", path.display())]
    BadSelfSignature {
        /// The file.
        path: PathBuf,
    },
    /// The certificate was made for another key than the private key.
    #[error(
        "certificate {} is for cluster {cert_id} but the private key is cluster {key_id}",
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The id in the certificate.
        cert_id: ClusterId,
        /// The id of the private key.
        key_id: ClusterId,
    },
    /// rcgen could not build the certificate.
    #[error("cannot create the certificate")]
    CertGen(#[source] rcgen::Error),
    /// The fresh key could not be encoded.
    #[error("cannot encode the private key")]
    Encode(#[source] IdentityError),
}

/// The files written by [`generate_key_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The new cluster's id.
    pub cluster_id: ClusterId,
    /// `DIR/NAME.key`, the PKCS#8 PEM private key (mode 0600).
    pub key_path: PathBuf,
    /// `DIR/NAME.crt`, the self-signed PEM certificate.
    pub cert_path: PathBuf,
}

/// The DER forms rustls takes, loaded from a key and certificate pair that
/// belong together.
pub struct TlsMaterial {
    /// The cluster id both files agree on.
    pub cluster_id: ClusterId,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_pkcs8_der: Vec<u8>,
}

impl std::fmt::Debug for TlsMaterial {
    // Keeps the private key out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsMaterial({})", self.cluster_id.short())
    }
}

/// The conventional `(DIR/NAME.key, DIR/NAME.crt)` paths of cluster `name`.
pub fn key_file_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    )
}

/// Creates a fresh identity and writes `DIR/NAME.key` and `DIR/NAME.crt`.
///
/// Existing files are only replaced when `force` is set; the check happens
/// before anything is generated, so a refused call changes nothing. Each file
/// is written to a temporary name and renamed into place, so a crash never
/// leaves a truncated key behind.
pub fn generate_key_files(name: &str, dir: &Path, force: bool) -> Result<KeyFiles, KeyFileError> {
    validate_name(name).map_err(KeyFileError::BadName)?;
    let (key_path, cert_path) = key_file_paths(dir, name);
    if !force {
        for path in [&key_path, &cert_path] {
            if path.symlink_metadata().is_ok() {
                return Err(KeyFileError::Exists { path: path.clone() });
            }
        }
    }
    if !dir.is_dir() {
        // 0700: the directory exists to hold private keys.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeyFileError::Io {
                action: "create directory",
                path: dir.to_owned(),
                source,
            })?;
    }

    let identity = Identity::generate(&mut rand::rngs::OsRng);
    let key_pem = identity.to_pkcs8_pem().map_err(KeyFileError::Encode)?;
    let cert_pem = self_signed_cert_pem(&identity, name)?;

    // The certificate goes first: if we die between the two renames, the old
    // key is left with a certificate it does not match, which
    // `check_cert_matches_key` reports, instead of a new key with a stale one.
    write_atomically(&cert_path, cert_pem.as_bytes(), 0o644)?;
    write_atomically(&key_path, key_pem.as_bytes(), 0o600)?;
    Ok(KeyFiles {
        cluster_id: identity.id(),
        key_path,
        cert_path,
    })
}

/// A self-signed certificate for `identity`, signed by that same key.
fn self_signed_cert_pem(identity: &Identity, name: &str) -> Result<String, KeyFileError> {
    let der = identity.to_pkcs8_der().map_err(KeyFileError::Encode)?;
    let key_pair =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der.as_slice().into(), &rcgen::PKCS_ED25519)
            .map_err(KeyFileError::CertGen)?;
    let sans = vec![
        "fedmesh".to_owned(),
        format!("{}.fedmesh", identity.id().short()),
    ];
    let mut params = rcgen::CertificateParams::new(sans).map_err(KeyFileError::CertGen)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    // Every link is mutually authenticated: each side is server and client.
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key_pair)
        .map_err(KeyFileError::CertGen)?;
    Ok(cert.pem())
}

/// Writes `bytes` atomically with `mode` (see [`crate::store::atomic`]).
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyFileError> {
    crate::store::atomic::write_atomically(path, bytes, mode).map_err(|e| KeyFileError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })
}

/// Reads the first PEM block of `path`, refusing oversized files.
fn read_pem(path: &Path) -> Result<Pem, KeyFileError> {
    let bytes = read_bounded(path, MAX_FILE_LEN).map_err(|e| match e {
        BoundedReadError::Io(source) => KeyFileError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        },
        BoundedReadError::TooLarge { len } => KeyFileError::TooLarge {
            path: path.to_owned(),
            len,
        },
    })?;
    Pem::read(Cursor::new(&bytes))
        .map(|(pem, _)| pem)
        .map_err(|e| KeyFileError::NotPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn expect_label(path: &Path, pem: &Pem, expected: &'static str) -> Result<(), KeyFileError> {
    if pem.label == expected {
        Ok(())
    } else {
        Err(KeyFileError::WrongLabel {
            path: path.to_owned(),
            found: pem.label.clone(),
            expected,
        })
    }
}

fn identity_from_pem(path: &Path, pem: &Pem) -> Result<Identity, KeyFileError> {
    expect_label(path, pem, KEY_LABEL)?;
    let key = SigningKey::from_pkcs8_der(&pem.contents).map_err(|e| KeyFileError::BadKey {
        path: path.to_owned(),
        source: IdentityError::BadPrivateKey(e.to_string()),
    })?;
    Ok(Identity::from_signing_key(key))
}

/// Loads a PKCS#8 PEM ed25519 private key.
///
/// A key readable by group or others still loads (the operator may have a
/// reason) but is logged as a warning, as ssh would.
pub fn load_identity(path: &Path) -> Result<Identity, KeyFileError> {
    let identity = identity_from_pem(path, &read_pem(path)?)?;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "private key file is accessible by other users; chmod 600 it"
        );
    }
    Ok(identity)
}

/// Extracts and checks the cluster id of a DER certificate: ed25519 public
/// key, strong and canonical, and an ed25519 self-signature that verifies
/// under that key.
fn cert_cluster_id(path: &Path, der: &[u8]) -> Result<ClusterId, KeyFileError> {
    let path = path.to_owned();
    cluster_id_from_cert_der(der).map_err(|e| match e {
        CertError::NotEd25519 { what, oid } => KeyFileError::WrongAlgorithm { path, what, oid },
        CertError::BadKey(source) => KeyFileError::BadPublicKey { path, source },
        CertError::BadSelfSignature => KeyFileError::BadSelfSignature { path },
        other @ (CertError::Malformed(_) | CertError::KeyLength(_)) => KeyFileError::BadCert {
            path,
            reason: other.to_string(),
        },
    })
}

/// Loads a PEM certificate and returns its cluster id, after checking that it
/// is an ed25519 certificate validly self-signed by that key.
pub fn load_cert_cluster_id(path: &Path) -> Result<ClusterId, KeyFileError> {
    load_cert_der(path).map(|(id, _)| id)
}

/// Loads a PEM certificate, checked as by [`load_cert_cluster_id`], and
/// returns its cluster id and DER bytes.
pub fn load_cert_der(path: &Path) -> Result<(ClusterId, Vec<u8>), KeyFileError> {
    let pem = read_pem(path)?;
    expect_label(path, &pem, CERT_LABEL)?;
    let id = cert_cluster_id(path, &pem.contents)?;
    Ok((id, pem.contents))
}

/// Fails unless the certificate at `cert_path` carries `identity`'s public key.
pub fn check_cert_matches_key(cert_path: &Path, identity: &Identity) -> Result<(), KeyFileError> {
    let cert_id = load_cert_cluster_id(cert_path)?;
    if cert_id == identity.id() {
        Ok(())
    } else {
        Err(KeyFileError::Mismatch {
            cert: cert_path.to_owned(),
            cert_id,
            key_id: identity.id(),
        })
    }
}

/// Loads a certificate and its private key for the QUIC layer, checking that
/// they belong together.
pub fn load_tls_material(cert_path: &Path, key_path: &Path) -> Result<TlsMaterial, KeyFileError> {
    let identity = load_identity(key_path)?;
    let (cert_id, cert_der) = load_cert_der(cert_path)?;
    if cert_id != identity.id() {
        return Err(KeyFileError::Mismatch {
            cert: cert_path.to_owned(),
            cert_id,
            key_id: identity.id(),
        });
    }
    let key_pkcs8_der = identity.to_pkcs8_der().map_err(KeyFileError::Encode)?;
    Ok(TlsMaterial {
        cluster_id: cert_id,
        cert_der,
        key_pkcs8_der,
    })
}

/// The cluster id held by either a private key or a certificate file,
/// recognised by its PEM label rather than its extension, so `roster init`
/// can take whichever file an operator was handed.
pub fn cluster_id_of_file(path: &Path) -> Result<ClusterId, KeyFileError> {
    let pem = read_pem(path)?;
    match pem.label.as_str() {
        KEY_LABEL => identity_from_pem(path, &pem).map(|i| i.id()),
        CERT_LABEL => cert_cluster_id(path, &pem.contents),
        _ => Err(KeyFileError::WrongLabel {
            path: path.to_owned(),
            found: pem.label,
            expected: "PRIVATE KEY or CERTIFICATE",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(dir: &Path, name: &str) -> KeyFiles {
        generate_key_files(name, dir, false).unwrap()
    }

    #[test]
    fn generated_files_agree_and_key_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/certs");
        let files = fresh(&dir, "alpha");
        assert_eq!(files.key_path, dir.join("alpha.key"));
        let identity = load_identity(&files.key_path).unwrap();
        assert_eq!(identity.id(), files.cluster_id);
        assert_eq!(
            load_cert_cluster_id(&files.cert_path).unwrap(),
            files.cluster_id
        );
        check_cert_matches_key(&files.cert_path, &identity).unwrap();
        assert_eq!(
            cluster_id_of_file(&files.key_path).unwrap(),
            files.cluster_id
        );
        assert_eq!(
            cluster_id_of_file(&files.cert_path).unwrap(),
            files.cluster_id
        );
        let mode = fs::metadata(&files.key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let tls = load_tls_material(&files.cert_path, &files.key_path).unwrap();
        assert_eq!(tls.cluster_id, files.cluster_id);
        assert_eq!(
            Identity::from_signing_key(SigningKey::from_pkcs8_der(&tls.key_pkcs8_der).unwrap())
                .id(),
            files.cluster_id
        );
        assert_eq!(
            format!("{tls:?}"),
            format!("TlsMaterial({})", files.cluster_id.short())
        );
        // No temporary files are left behind.
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["alpha.crt", "alpha.key"]);
    }

    #[test]
    fn existing_files_are_kept_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let first = fresh(tmp.path(), "alpha");
        let before = fs::read(&first.key_path).unwrap();
        let err = generate_key_files("alpha", tmp.path(), false).unwrap_err();
        assert!(matches!(&err, KeyFileError::Exists { path } if *path == first.key_path));
        assert!(err.to_string().contains("--force"));
        assert_eq!(fs::read(&first.key_path).unwrap(), before);
        // Only the certificate left over still blocks a non-forced run.
        fs::remove_file(&first.key_path).unwrap();
        assert!(matches!(
            generate_key_files("alpha", tmp.path(), false),
            Err(KeyFileError::Exists { path }) if path == first.cert_path
        ));
        let second = generate_key_files("alpha", tmp.path(), true).unwrap();
        assert_ne!(second.cluster_id, first.cluster_id);
        assert_eq!(
            load_cert_cluster_id(&second.cert_path).unwrap(),
            second.cluster_id
        );
    }

    #[test]
    fn mismatched_and_malformed_files_are_reported_with_their_path() {
        let tmp = tempfile::tempdir().unwrap();
        let a = fresh(tmp.path(), "a");
        let b = fresh(tmp.path(), "b");
        let b_identity = load_identity(&b.key_path).unwrap();
        assert!(matches!(
            check_cert_matches_key(&a.cert_path, &b_identity),
            Err(KeyFileError::Mismatch { cert_id, key_id, .. })
                if cert_id == a.cluster_id && key_id == b.cluster_id
        ));
        assert!(matches!(
            load_tls_material(&a.cert_path, &b.key_path),
            Err(KeyFileError::Mismatch { .. })
        ));
        assert!(matches!(
            load_identity(&a.cert_path),
            Err(KeyFileError::WrongLabel { .. })
        ));
        assert!(matches!(
            load_cert_cluster_id(&a.key_path),
            Err(KeyFileError::WrongLabel { .. })
        ));

        let garbage = tmp.path().join("garbage.crt");
        fs::write(&garbage, b"hello\n").unwrap();
        let err = cluster_id_of_file(&garbage).unwrap_err();
        assert!(matches!(err, KeyFileError::NotPem { .. }));
        assert!(err.to_string().contains("garbage.crt"));

        let missing = tmp.path().join("missing.key");
        assert!(matches!(
            cluster_id_of_file(&missing),
            Err(KeyFileError::Io { .. })
        ));

        let big = tmp.path().join("big.crt");
        fs::write(&big, vec![b'a'; MAX_FILE_LEN as usize + 1]).unwrap();
        assert!(matches!(
            cluster_id_of_file(&big),
            Err(KeyFileError::TooLarge { .. })
        ));

        let bad_body = tmp.path().join("bad.crt");
        fs::write(
            &bad_body,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            cluster_id_of_file(&bad_body),
            Err(KeyFileError::BadCert { .. })
        ));

        assert!(matches!(
            generate_key_files("bad name", tmp.path(), false),
            Err(KeyFileError::BadName(_))
        ));
    }

    #[test]
    fn certificates_with_foreign_keys_or_forged_signatures_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        // An ECDSA certificate: valid X.509, wrong algorithm.
        let ecdsa = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        let p256 = tmp.path().join("p256.crt");
        fs::write(&p256, ecdsa.cert.pem()).unwrap();
        assert!(matches!(
            load_cert_cluster_id(&p256),
            Err(KeyFileError::WrongAlgorithm {
                what: "public key",
                ..
            })
        ));

        // Flip the last signature byte of a good certificate.
        let files = fresh(tmp.path(), "alpha");
        let (_, mut der) = load_cert_der(&files.cert_path).unwrap();
        if let Some(last) = der.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(
            cert_cluster_id(&files.cert_path, &der),
            Err(KeyFileError::BadSelfSignature { .. })
        ));
    }
}
