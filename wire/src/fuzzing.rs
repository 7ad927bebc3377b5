//! The body of the decoder fuzz target, shared with the corpus replay test so both exercise the
//! same code. Not part of the public API.

use bytes::BytesMut;
use prost::Message;
use tokio_util::codec::Decoder;

use crate::codec::{EnvelopeCodec, LENGTH_PREFIX_BYTES};

/// The frame limit the fuzz target uses: small, so oversized prefixes are easy to reach.
pub const FUZZ_MAX_FRAME: usize = 1024;

/// Feeds `data` to the decoder in chunks (the first byte chooses the chunk size) and checks that
/// it never panics, never buffers more than the input plus one frame, and that every decoded
/// envelope survives an encode/decode round trip unchanged.
pub fn decode_stream(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 16) + 1;
    let mut codec = EnvelopeCodec::with_max_frame(FUZZ_MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut chunks = rest.chunks(chunk).peekable();
    while let Some(piece) = chunks.next() {
        buf.extend_from_slice(piece);
        let last = chunks.peek().is_none();
        loop {
            let step = if last {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            assert!(
                buf.capacity() <= rest.len() + FUZZ_MAX_FRAME + LENGTH_PREFIX_BYTES + 64,
                "decoder reserved {} bytes for {} bytes of input",
                buf.capacity(),
                rest.len()
            );
            match step {
                Ok(Some(env)) => {
                    let bytes = env.encode_to_vec();
                    let again = crate::Envelope::decode(bytes.as_slice());
                    assert_eq!(
                        again.as_ref().ok(),
                        Some(&env),
                        "round trip changed an envelope"
                    );
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
