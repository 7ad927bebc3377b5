//! Framing behaviour of `EnvelopeCodec`: splits, batches, limits and every kind of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use bytes::{BufMut, BytesMut};
use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, EnvelopeCodec, Frame, FrameError};
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

fn send_frame(req_id: u64, body: &str) -> Envelope {
    Envelope::new(
        req_id,
        Body::Send(pb::Send {
            thread_id: 42,
            client_msg_id: format!("cm-{req_id}"),
            body: body.to_owned(),
            reply_to: 0,
        }),
    )
}

fn encode_all(envs: &[Envelope]) -> Vec<u8> {
    let mut codec = EnvelopeCodec::new();
    let mut buf = BytesMut::new();
    for env in envs {
        codec.encode(env, &mut buf).expect("encode");
    }
    buf.to_vec()
}

/// Feeds `bytes` in the given pieces, collecting every decoded envelope and the final result.
fn decode_pieces(pieces: &[&[u8]]) -> (Vec<Envelope>, Result<(), FrameError>) {
    let mut codec = EnvelopeCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        buf.extend_from_slice(piece);
        let eof = i + 1 == pieces.len();
        loop {
            let step = if eof {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            match step {
                Ok(Some(env)) => out.push(env),
                Ok(None) => break,
                Err(e) => return (out, Err(e)),
            }
        }
    }
    (out, Ok(()))
}

#[test]
fn split_at_every_byte_boundary_decodes_the_same() {
    let envs = vec![send_frame(1, "你好 👋 hello"), send_frame(2, "second")];
    let bytes = encode_all(&envs);
    for cut in 0..=bytes.len() {
        let (got, res) = decode_pieces(&[&bytes[..cut], &bytes[cut..]]);
        res.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(got, envs, "cut at {cut}");
    }
    // And one byte at a time.
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let (got, res) = decode_pieces(&singles);
    assert!(res.is_ok());
    assert_eq!(got, envs);
}

#[test]
fn many_frames_in_one_buffer_decode_in_order() {
    let envs: Vec<Envelope> = (1..=500)
        .map(|i| send_frame(i, &"x".repeat(i as usize % 97)))
        .collect();
    let bytes = encode_all(&envs);
    let (got, res) = decode_pieces(&[&bytes]);
    assert!(res.is_ok());
    assert_eq!(got, envs);
}

#[test]
fn zero_length_frame_is_an_empty_keepalive_envelope() {
    let (got, res) = decode_pieces(&[&[0, 0, 0, 0]]);
    assert!(res.is_ok());
    assert_eq!(got, vec![Envelope::default()]);
    assert_eq!(got[0].req_id, 0);
    assert!(got[0].body.is_none());
}

#[test]
fn four_gib_length_prefix_fails_at_once_without_allocating() {
    let mut codec = EnvelopeCodec::new();
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3][..]);
    let before = buf.capacity();
    match codec.decode(&mut buf) {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, 64 * 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        buf.capacity() <= before.max(64),
        "decoder reserved {} bytes",
        buf.capacity()
    );
}

#[test]
fn length_just_over_the_limit_is_rejected_and_at_the_limit_accepted() {
    let mut codec = EnvelopeCodec::with_max_frame(16);
    let mut over = BytesMut::new();
    over.put_u32(17);
    assert!(matches!(
        codec.decode(&mut over),
        Err(FrameError::TooLarge { len: 17, max: 16 })
    ));

    // A payload of exactly 16 bytes: an envelope with req_id and a 12-byte unknown field.
    let mut payload = vec![0x08, 0x05]; // req_id = 5
    payload.extend_from_slice(&[0xba, 0x3e, 12]); // field 999, length-delimited, 12 bytes
    payload.truncate(5);
    payload.extend_from_slice(&[b'a'; 11]);
    assert_eq!(payload.len(), 16);
    payload[4] = 11;
    let mut ok = BytesMut::new();
    ok.put_u32(16);
    ok.extend_from_slice(&payload);
    let mut codec = EnvelopeCodec::with_max_frame(16);
    let env = codec.decode(&mut ok).expect("decode").expect("frame");
    assert_eq!(env.req_id, 5);
}

#[test]
fn garbage_bytes_give_a_typed_error() {
    // A plausible length followed by bytes that are not protobuf.
    let mut garbage = vec![0, 0, 0, 8];
    garbage.extend_from_slice(&[0xff; 8]);
    let (got, res) = decode_pieces(&[&garbage]);
    assert!(got.is_empty());
    assert!(matches!(res, Err(FrameError::Malformed(_))), "{res:?}");

    // JSON, as the seed protocol sent: the first four bytes read as a huge length.
    let json = br#"{"msgid":1,"id":13,"password":"123456"}"#;
    let (got, res) = decode_pieces(&[json]);
    assert!(got.is_empty());
    assert!(matches!(res, Err(FrameError::TooLarge { .. })), "{res:?}");
}

#[test]
fn truncated_frame_at_eof_is_an_error_and_clean_eof_is_not() {
    let bytes = encode_all(&[send_frame(1, "complete"), send_frame(2, "cut short")]);
    let cut = bytes.len() - 3;
    let (got, res) = decode_pieces(&[&bytes[..cut]]);
    assert_eq!(got.len(), 1);
    assert!(matches!(res, Err(FrameError::Truncated { .. })), "{res:?}");

    // Only part of a length prefix.
    let (got, res) = decode_pieces(&[&[0, 0]]);
    assert!(got.is_empty());
    assert!(
        matches!(res, Err(FrameError::Truncated { buffered: 2 })),
        "{res:?}"
    );

    let (got, res) = decode_pieces(&[&bytes]);
    assert_eq!(got.len(), 2);
    assert!(res.is_ok());
}

#[test]
fn valid_frame_holding_another_message_type_is_malformed() {
    // A Login message: field 1 is a string, where Envelope has req_id as a varint.
    let login = pb::Login {
        name: "alice".into(),
        password: "hunter22hunter22".into(),
        device_name: String::new(),
    };
    let payload = login.encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u32(payload.len() as u32);
    frame.extend_from_slice(&payload);
    let (got, res) = decode_pieces(&[&frame]);
    assert!(got.is_empty());
    assert!(matches!(res, Err(FrameError::Malformed(_))), "{res:?}");
}

#[test]
fn unknown_oneof_field_decodes_with_no_body() {
    // req_id = 3, then field 200 (a body arm from some future minor version) holding an
    // embedded message with one varint field.
    let mut payload = vec![0x08, 0x03];
    payload.extend_from_slice(&[0xc2, 0x0c, 0x02, 0x08, 0x01]); // tag (200<<3)|2 = 1602
    let mut frame = BytesMut::new();
    frame.put_u32(payload.len() as u32);
    frame.extend_from_slice(&payload);
    let (got, res) = decode_pieces(&[&frame]);
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(
        got,
        vec![Envelope {
            req_id: 3,
            body: None
        }]
    );
}

#[test]
fn encoder_refuses_a_payload_over_the_limit() {
    let mut codec = EnvelopeCodec::with_max_frame(32);
    let mut buf = BytesMut::new();
    let big = send_frame(1, &"y".repeat(64));
    assert!(matches!(
        codec.encode(&big, &mut buf),
        Err(FrameError::TooLarge { max: 32, .. })
    ));
    assert!(buf.is_empty(), "nothing written for a refused frame");
    assert!(Frame::encode(&big, 32).is_err());
}

#[test]
fn pre_encoded_frame_matches_direct_encoding() {
    let env = Envelope::push(Body::Error(
        pb::Error::new(ErrorCode::SlowConsumer, "read your socket").fatal(),
    ));
    let frame = Frame::encode(&env, 1024).expect("frame");
    let direct = encode_all(std::slice::from_ref(&env));
    assert_eq!(frame.as_bytes().as_ref(), direct.as_slice());
    let mut buf = BytesMut::new();
    EnvelopeCodec::new()
        .encode(frame.clone(), &mut buf)
        .expect("encode frame");
    assert_eq!(buf.as_ref(), direct.as_slice());
    assert_eq!(frame.wire_len(), direct.len());
}

#[tokio::test]
async fn framed_stream_over_a_pipe() {
    let (a, b) = tokio::io::duplex(64);
    let envs: Vec<Envelope> = (1..=50)
        .map(|i| send_frame(i, "através do tubo 管道"))
        .collect();
    let sent = envs.clone();
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(a, EnvelopeCodec::new());
        for env in sent {
            sink.send(env).await.expect("send");
        }
    });
    let mut stream = FramedRead::new(b, EnvelopeCodec::new());
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.push(item.expect("decode"));
    }
    writer.await.expect("writer");
    assert_eq!(got, envs);
}

#[test]
fn error_display_names_the_code() {
    let e = pb::Error::new(ErrorCode::RateLimited, "slow down").retry_after(250);
    assert_eq!(e.to_string(), "RATE_LIMITED: slow down");
    assert_eq!(e.retry_after_ms, 250);
    assert_eq!(
        Envelope::error(4, ErrorCode::NotFound, "x").body_name(),
        "error"
    );
}

#[test]
fn frame_from_encoded_accepts_only_whole_frames_within_the_limit() {
    let env = Envelope::push(Body::Ping(confab_wire::pb::Ping { nonce: 7 }));
    let frame = Frame::encode(&env, 1024).expect("encode");
    let back = Frame::from_encoded(frame.as_bytes().clone(), 1024).expect("whole frame");
    assert_eq!(back, frame);
    let bytes = frame.as_bytes().clone();
    assert!(Frame::from_encoded(bytes.slice(..bytes.len() - 1), 1024).is_err());
    assert!(Frame::from_encoded(bytes.slice(..2), 1024).is_err());
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(Frame::from_encoded(longer.into(), 1024).is_err());
    assert!(Frame::from_encoded(bytes.clone(), bytes.len() - 5).is_err());
}
