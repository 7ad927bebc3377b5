//! The confab wire protocol.
//!
//! A connection carries frames in both directions; each frame is a `u32` big-endian payload
//! length followed by one protobuf [`Envelope`](pb::Envelope). [`pb`] holds the generated
//! messages (from `proto/confab.proto`), [`EnvelopeCodec`] frames them for tokio-util's
//! `Framed`, and [`Frame`] is an envelope encoded once so a fan-out can send the same bytes to
//! many connections. `PROTOCOL.md` beside this crate is the specification.

mod codec;
pub mod emoji;
mod envelope;
#[doc(hidden)]
pub mod fuzzing;

pub use codec::{DEFAULT_MAX_FRAME_BYTES, EnvelopeCodec, Frame, FrameError, LENGTH_PREFIX_BYTES};
pub use envelope::{body_name, is_server_body};

/// Generated protobuf types (package `confab.v1`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/confab.v1.rs"));
}

pub use pb::Envelope;
pub use pb::envelope::Body;

/// The encoded `FileDescriptorSet` of `proto/confab.proto`, for reflection and text-format
/// tooling.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/confab_descriptor.bin"));

/// Major protocol version: a server refuses a Hello with another major.
pub const PROTOCOL_MAJOR: u32 = 1;
/// Minor protocol version: minors only add messages and fields.
pub const PROTOCOL_MINOR: u32 = 7;
