//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of JSON.
//!
//! The length is checked against a limit before anything is allocated, so a hostile or
//! corrupt prefix cannot make the broker reserve gigabytes.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default upper bound on one frame's payload.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Bytes in the length prefix.
const PREFIX_BYTES: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The transport failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream part-way through a frame.
    #[error("stream closed inside a frame ({read} of {expected} bytes)")]
    Truncated {
        /// Bytes received.
        read: usize,
        /// Bytes announced.
        expected: usize,
    },
    /// The announced length is over the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Reads one frame. `Ok(None)` means the peer closed the stream cleanly between frames.
pub async fn read_frame<T, R>(reader: &mut R, frame_bytes_max: usize) -> Result<Option<T>, CodecError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX_BYTES];
    let read = read_full(reader, &mut prefix).await?;
    if read == 0 {
        return Ok(None);
    }
    if read < PREFIX_BYTES {
        return Err(CodecError::Truncated {
            read,
            expected: PREFIX_BYTES,
        });
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > frame_bytes_max {
        return Err(CodecError::TooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    let mut payload = vec![0u8; len];
    let read = read_full(reader, &mut payload).await?;
    if read < len {
        return Err(CodecError::Truncated { read, expected: len });
    }
    Ok(Some(serde_json::from_slice(&payload)?))
}

/// Writes one frame and flushes it.
pub async fn write_frame<T, W>(writer: &mut W, message: &T, frame_bytes_max: usize) -> Result<(), CodecError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let payload = serde_json::to_vec(message)?;
    if payload.len() > frame_bytes_max {
        return Err(CodecError::TooLarge {
            len: payload.len(),
            max: frame_bytes_max,
        });
    }
    let mut frame = Vec::with_capacity(PREFIX_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes arrived.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Request, RequestFrame};

    fn publish() -> RequestFrame {
        RequestFrame {
            id: 7,
            request: Request::Publish {
                queue: "q".into(),
                body: b"17".to_vec(),
            },
        }
    }

    #[tokio::test]
    async fn a_frame_round_trips() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &publish(), 1024).await.unwrap();
        let back: Option<RequestFrame> = read_frame(&mut wire.as_slice(), 1024).await.unwrap();
        assert_eq!(back, Some(publish()));
    }

    #[tokio::test]
    async fn clean_end_of_stream_is_not_an_error() {
        let got: Option<RequestFrame> = read_frame(&mut [].as_slice(), 1024).await.unwrap();
        assert_eq!(got, None);
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_allocating() {
        let wire = u32::MAX.to_be_bytes();
        let err = read_frame::<RequestFrame, _>(&mut wire.as_slice(), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { len, max: 1024 } if len == u32::MAX as usize));
    }

    #[tokio::test]
    async fn garbage_payload_is_malformed() {
        let mut wire = 5u32.to_be_bytes().to_vec();
        wire.extend_from_slice(b"{{{{{");
        let err = read_frame::<RequestFrame, _>(&mut wire.as_slice(), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn a_cut_frame_is_truncated() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &publish(), 1024).await.unwrap();
        wire.truncate(wire.len() - 3);
        let err = read_frame::<RequestFrame, _>(&mut wire.as_slice(), 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, CodecError::Truncated { .. }), "{err}");
    }

    #[test]
    fn reading_from_a_mock_stream_delivers_frames_split_across_reads() {
        // tokio-test's mock hands the bytes over in the chunks given, as TCP may.
        let mut wire = Vec::new();
        tokio_test::block_on(write_frame(&mut wire, &publish(), 1024)).unwrap();
        let (head, tail) = wire.split_at(3);
        let mut mock = tokio_test::io::Builder::new().read(head).read(tail).build();
        let got: Option<RequestFrame> = tokio_test::block_on(read_frame(&mut mock, 1024)).unwrap();
        assert_eq!(got, Some(publish()));
    }
}
