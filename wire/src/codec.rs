//! Length-prefixed framing of [`Envelope`]s.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LengthDelimitedCodecError};

use crate::pb::Envelope;

/// Bytes of the length prefix (u32, big-endian).
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Default largest payload accepted or sent: 64 KiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Why a frame could not be read or written. Every variant ends the connection: after a framing
/// error the byte stream can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announced more than the limit. Detected from the prefix alone, before
    /// any buffer is reserved for the payload.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    /// The payload is not a valid `Envelope`.
    #[error("frame payload is not a valid envelope: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The stream ended part way through a frame.
    #[error("stream ended inside a frame ({buffered} bytes of it received)")]
    Truncated { buffered: usize },
    /// The underlying transport failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

/// tokio-util codec for confab frames: decodes to [`Envelope`], encodes `&Envelope`,
/// `Envelope` or a pre-encoded [`Frame`].
///
/// A zero-length frame decodes to an empty `Envelope` (req_id 0, no body): a keepalive.
#[derive(Debug, Clone)]
pub struct EnvelopeCodec {
    inner: LengthDelimitedCodec,
    max: usize,
}

impl EnvelopeCodec {
    /// A codec with the default 64 KiB limit.
    pub fn new() -> Self {
        Self::with_max_frame(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A codec accepting and sending payloads of at most `max` bytes.
    pub fn with_max_frame(max: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .big_endian()
            .max_frame_length(max)
            .new_codec();
        Self { inner, max }
    }

    /// The payload limit in bytes.
    pub fn max_frame(&self) -> usize {
        self.max
    }
}

impl Default for EnvelopeCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for EnvelopeCodec {
    type Item = Envelope;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        // The prefix is still at the front of `src` when the inner codec rejects it (it reads
        // the length through a cursor), so the announced length can be reported.
        let announced = src
            .get(..LENGTH_PREFIX_BYTES)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes);
        match self.inner.decode(src) {
            Ok(Some(payload)) => Ok(Some(Envelope::decode(payload.freeze())?)),
            Ok(None) => Ok(None),
            Err(e) if is_too_large(&e) => Err(FrameError::TooLarge {
                len: announced.map_or(0, u64::from),
                max: self.max,
            }),
            Err(e) => Err(FrameError::Io(e)),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        match self.decode(src)? {
            Some(env) => Ok(Some(env)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
}

impl Encoder<&Envelope> for EnvelopeCodec {
    type Error = FrameError;

    fn encode(&mut self, env: &Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(env, self.max, dst)
    }
}

impl Encoder<Envelope> for EnvelopeCodec {
    type Error = FrameError;

    fn encode(&mut self, env: Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(&env, self.max, dst)
    }
}

impl Encoder<Frame> for EnvelopeCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = frame.0.len().saturating_sub(LENGTH_PREFIX_BYTES);
        if payload > self.max {
            return Err(FrameError::TooLarge {
                len: payload as u64,
                max: self.max,
            });
        }
        dst.extend_from_slice(&frame.0);
        Ok(())
    }
}

fn write_frame(env: &Envelope, max: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
    let len = env.encoded_len();
    if len > max {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max,
        });
    }
    dst.reserve(LENGTH_PREFIX_BYTES + len);
    // `len <= max`, and `max` fits in u32 for any sane configuration; saturate rather than wrap.
    dst.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    env.encode_raw(dst);
    Ok(())
}

/// A complete frame (length prefix and payload), encoded once and cheap to clone, for sending
/// one push to many connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// Encodes `env` with its length prefix; fails if the payload exceeds `max`.
    pub fn encode(env: &Envelope, max: usize) -> Result<Self, FrameError> {
        let mut buf = BytesMut::with_capacity(LENGTH_PREFIX_BYTES + env.encoded_len());
        write_frame(env, max, &mut buf)?;
        Ok(Self(buf.freeze()))
    }

    /// The frame's bytes, prefix included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length of the frame on the wire, prefix included.
    pub fn wire_len(&self) -> usize {
        self.0.len()
    }

    /// Takes bytes produced by [`Frame::encode`] elsewhere (another server node) without
    /// decoding the envelope again; checks that the prefix matches the length and the limit.
    pub fn from_encoded(bytes: Bytes, max: usize) -> Result<Self, FrameError> {
        let Some(prefix) = bytes.get(..LENGTH_PREFIX_BYTES) else {
            return Err(FrameError::Truncated {
                buffered: bytes.len(),
            });
        };
        let mut len = [0u8; LENGTH_PREFIX_BYTES];
        len.copy_from_slice(prefix);
        let len = u64::from(u32::from_be_bytes(len));
        if len > max as u64 {
            return Err(FrameError::TooLarge { len, max });
        }
        if len != (bytes.len() - LENGTH_PREFIX_BYTES) as u64 {
            return Err(FrameError::Truncated {
                buffered: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }
}
