//! Golden vectors: `vectors/NAME.txtpb` (protobuf text format of an Envelope) and
//! `vectors/NAME.hex` (the exact frame bytes, length prefix included). Both directions are
//! checked: the text encodes to exactly the bytes, and the bytes decode through the codec to the
//! same envelope. `decode_only_*` vectors hold bytes a text file cannot express (unknown fields)
//! and are checked in the decode direction only.
//!
//! `CONFAB_WRITE_VECTORS=1 cargo test -p confab-wire --test integration vectors::` rewrites the `.hex` files
//! after a deliberate change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use confab_wire::{Envelope, EnvelopeCodec, FILE_DESCRIPTOR_SET, LENGTH_PREFIX_BYTES};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tokio_util::codec::{Decoder, Encoder};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn text_to_envelope(text: &str) -> Envelope {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("descriptor set");
    let desc = pool
        .get_message_by_name("confab.v1.Envelope")
        .expect("Envelope descriptor");
    let dynamic = DynamicMessage::parse_text_format(desc, text).expect("valid text format");
    // Re-decode through the generated type: the dynamic encoding and prost's must agree.
    Envelope::decode(dynamic.encode_to_vec().as_slice()).expect("dynamic bytes decode")
}

fn frame_of(env: &Envelope) -> Vec<u8> {
    let mut buf = BytesMut::new();
    EnvelopeCodec::new().encode(env, &mut buf).expect("encode");
    buf.to_vec()
}

fn decode_one(bytes: &[u8]) -> Envelope {
    let mut buf = BytesMut::from(bytes);
    let env = EnvelopeCodec::new()
        .decode_eof(&mut buf)
        .expect("decode")
        .expect("one frame");
    assert!(buf.is_empty(), "trailing bytes after the frame");
    env
}

fn read_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    hex::decode(text.trim()).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[test]
fn golden_vectors_match_in_both_directions() {
    let write = std::env::var_os("CONFAB_WRITE_VECTORS").is_some();
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".txtpb").map(str::to_owned))
        .collect();
    names.sort();
    assert!(
        names.len() >= 12,
        "expected a dozen vectors, found {}",
        names.len()
    );

    for name in &names {
        let dir = vectors_dir();
        let text = std::fs::read_to_string(dir.join(format!("{name}.txtpb"))).expect("txtpb");
        let expected = text_to_envelope(&text);
        let hex_path = dir.join(format!("{name}.hex"));
        if name.starts_with("decode_only_") {
            let decoded = decode_one(&read_hex(&hex_path));
            assert_eq!(
                decoded, expected,
                "{name}: bytes decode to the described envelope"
            );
            continue;
        }
        let bytes = frame_of(&expected);
        if write {
            std::fs::write(&hex_path, format!("{}\n", hex::encode(&bytes))).expect("write hex");
        }
        let golden = read_hex(&hex_path);
        assert_eq!(
            hex::encode(&bytes),
            hex::encode(&golden),
            "{name}: encode direction"
        );
        assert_eq!(decode_one(&golden), expected, "{name}: decode direction");
        let len = u32::from_be_bytes([golden[0], golden[1], golden[2], golden[3]]) as usize;
        assert_eq!(
            len + LENGTH_PREFIX_BYTES,
            golden.len(),
            "{name}: prefix counts the payload"
        );
    }
}

#[test]
fn unknown_body_vector_has_no_body() {
    let env = decode_one(&read_hex(
        &vectors_dir().join("decode_only_unknown_body.hex"),
    ));
    assert_eq!(env.req_id, 7);
    assert!(env.body.is_none());
}
