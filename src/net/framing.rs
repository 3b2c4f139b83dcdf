//! Length-prefixed frames: a `u32` big-endian length, then that many payload
//! bytes. The payload (a postcard-encoded `Frame`) is opaque here.
//!
//! The cap is checked against the prefix **before** anything is allocated,
//! and the payload buffer only grows as bytes actually arrive, so a peer
//! cannot make us reserve memory it never sends.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The default largest payload accepted (1 MiB), as in the design.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// Size of the length prefix.
const HEADER_LEN: usize = 4;

/// The most bytes reserved up front for a payload; larger frames grow the
/// buffer as data arrives.
const INITIAL_RESERVE: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the cap.
    #[error("frame of {len} bytes exceeds the {cap}-byte cap")]
    TooLarge {
        /// The announced (or attempted) payload length.
        len: u64,
        /// The cap in force.
        cap: usize,
    },
    /// The stream ended inside a frame (inside its prefix or its payload).
    #[error("stream ended after {received} of {expected} bytes of a frame")]
    Truncated {
        /// Bytes the prefix (4) or payload (its length) needed.
        expected: usize,
        /// Bytes that arrived before the end.
        received: usize,
    },
    /// The underlying stream failed (reset, connection lost).
    #[error("frame stream failed")]
    Io(#[from] std::io::Error),
}

/// Reads one frame's payload.
///
/// Returns `Ok(None)` when the stream ends cleanly between frames, and
/// [`FrameError::Truncated`] when it ends inside one. A prefix larger than
/// `cap` fails with [`FrameError::TooLarge`] without reading further.
pub async fn read_frame<R>(reader: &mut R, cap: usize) -> Result<Option<Vec<u8>>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = reader.read(&mut header[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated {
                    expected: HEADER_LEN,
                    received: filled,
                })
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize > cap {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            cap,
        });
    }
    let mut payload = Vec::with_capacity(len_usize.min(INITIAL_RESERVE));
    let received = reader
        .take(u64::from(len))
        .read_to_end(&mut payload)
        .await?;
    if received < len_usize {
        return Err(FrameError::Truncated {
            expected: len_usize,
            received,
        });
    }
    Ok(Some(payload))
}

/// Appends one frame (prefix and payload) to `buf`, so that several
/// frames leave with one stream write. Payloads over `u32::MAX` bytes fail
/// with [`FrameError::TooLarge`] and leave `buf` as it was.
pub fn append_frame(buf: &mut Vec<u8>, payload: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len() as u64,
        cap: u32::MAX as usize,
    })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

/// Writes one frame (prefix and payload). Payloads over `u32::MAX` bytes
/// cannot be described by the prefix and fail with [`FrameError::TooLarge`].
pub async fn write_frame<W>(writer: &mut W, payload: &[u8]) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let len = u32::try_from(payload.len()).map_err(|_| FrameError::TooLarge {
        len: payload.len() as u64,
        cap: u32::MAX as usize,
    })?;
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(payload).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(mut bytes: &[u8], cap: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut frames = Vec::new();
        while let Some(f) = read_frame(&mut bytes, cap).await? {
            frames.push(f);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let mut wire = Vec::new();
        for payload in [&b""[..], b"a", &[7u8; 100_000]] {
            write_frame(&mut wire, payload).await.unwrap();
        }
        let frames = read_all(&wire, DEFAULT_MAX_FRAME_LEN).await.unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], b"");
        assert_eq!(frames[1], b"a");
        assert_eq!(frames[2], vec![7u8; 100_000]);
    }

    #[tokio::test]
    async fn appended_frames_read_back_one_by_one() {
        let mut wire = Vec::new();
        for payload in [&b"x"[..], b"", &[9u8; 5000]] {
            append_frame(&mut wire, payload).unwrap();
        }
        let frames = read_all(&wire, DEFAULT_MAX_FRAME_LEN).await.unwrap();
        assert_eq!(frames, [b"x".to_vec(), vec![], vec![9u8; 5000]]);
    }

    #[tokio::test]
    async fn oversized_prefix_is_refused_before_reading_the_payload() {
        let wire = u32::MAX.to_be_bytes();
        match read_all(&wire, 1024).await {
            Err(FrameError::TooLarge { len, cap }) => {
                assert_eq!(len, u64::from(u32::MAX));
                assert_eq!(cap, 1024);
            }
            other => panic!("{other:?}"),
        }
        // Exactly the cap is fine.
        let mut wire = Vec::new();
        write_frame(&mut wire, &[1; 1024]).await.unwrap();
        assert_eq!(read_all(&wire, 1024).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn truncated_prefix_and_payload_are_reported() {
        assert!(matches!(
            read_all(&[0, 0], 1024).await,
            Err(FrameError::Truncated {
                expected: 4,
                received: 2
            })
        ));
        let mut wire = Vec::new();
        write_frame(&mut wire, &[1; 100]).await.unwrap();
        wire.truncate(4 + 40);
        assert!(matches!(
            read_all(&wire, 1024).await,
            Err(FrameError::Truncated {
                expected: 100,
                received: 40
            })
        ));
    }
}
