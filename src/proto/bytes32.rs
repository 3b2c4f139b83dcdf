//! 32-byte identifiers (cluster ids, network ids, digests) with one shared
//! implementation of hex display, parsing and serde.

/// Why a hex string is not a valid 32-byte value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string is not exactly 64 characters long.
    #[error("expected 64 hex characters, got {0}")]
    Length(usize),
    /// The string holds a character that is not a hex digit.
    #[error("not a hex string")]
    NotHex,
}

pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], HexError> {
    if s.len() != 64 {
        return Err(HexError::Length(s.len()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HexError::NotHex)?;
    Ok(out)
}

/// Defines a 32-byte newtype shown as lowercase hex (serialised as hex in
/// human-readable formats and as raw bytes in binary ones).
macro_rules! bytes32_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 8 hex characters, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::proto::bytes32::HexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::proto::bytes32::parse_hex32(s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::proto::bytes32::serialize32(&self.0, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::proto::bytes32::deserialize32(d).map(Self)
            }
        }
    };
}
pub(crate) use bytes32_type;

pub(crate) fn serialize32<S: serde::Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(b))
    } else {
        serde::Serialize::serialize(b, s)
    }
}

pub(crate) fn deserialize32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    if d.is_human_readable() {
        let s: String = serde::Deserialize::deserialize(d)?;
        parse_hex32(&s).map_err(serde::de::Error::custom)
    } else {
        serde::Deserialize::deserialize(d)
    }
}

bytes32_type!(
    /// A 32-byte BLAKE3 digest (message digests, subjects, vote values, chain hashes).
    Digest
);

bytes32_type!(
    /// The id of a federation: the BLAKE3 hash of its genesis roster's canonical encoding.
    NetworkId
);

impl Digest {
    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }
}
