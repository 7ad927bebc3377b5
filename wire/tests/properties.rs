//! Property tests: arbitrary envelopes survive a frame round trip, and arbitrary bytes never
//! panic the decoder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use bytes::BytesMut;
use confab_wire::pb::{self, user_event};
use confab_wire::{Body, Envelope, EnvelopeCodec, fuzzing};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn text() -> impl Strategy<Value = String> {
    // Mixed scripts, emoji and control characters: the codec must not care.
    prop_oneof![
        ".{0,40}",
        "[a-z0-9_]{0,16}",
        "[\u{4e00}-\u{9fff}\u{3000}-\u{303f}]{0,12}",
        Just("👨\u{200d}👩\u{200d}👧 🇨🇳 e\u{301}".to_owned()),
    ]
}

fn user() -> impl Strategy<Value = pb::User> {
    (any::<u64>(), text()).prop_map(|(user_id, name)| pb::User { user_id, name })
}

fn chat_message() -> impl Strategy<Value = pb::ChatMessage> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(user()),
        ),
        (any::<u64>(), text(), any::<i64>(), 0i32..7, text()),
        (any::<u64>(), any::<bool>(), any::<i64>()),
        (
            any::<u64>(),
            proptest::option::of((any::<u64>(), text(), any::<bool>())),
            proptest::collection::vec((text(), any::<u32>(), any::<bool>()), 0..3),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (thread_id, seq, message_id, sender),
                (sender_device_id, client_msg_id, server_ts_ms, kind, body),
                (target_message_id, recalled, edited_ts_ms),
                (reply_to, quote, reactions, reactions_seq),
            )| pb::ChatMessage {
                reply_to,
                quote: quote.map(|(message_id, excerpt, recalled)| pb::Quote {
                    message_id,
                    excerpt,
                    recalled,
                    ..Default::default()
                }),
                reactions: reactions
                    .into_iter()
                    .map(|(emoji, count, mine)| pb::Reaction { emoji, count, mine })
                    .collect(),
                reactions_seq,
                thread_id,
                seq,
                message_id,
                sender,
                sender_device_id,
                client_msg_id,
                server_ts_ms,
                kind,
                body,
                target_message_id,
                group_change: None,
                recalled,
                edited_ts_ms,
            },
        )
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            text(),
            text(),
            text(),
            any::<bool>()
        )
            .prop_map(|(a, b, c, d, t, quiet)| {
                Body::Hello(pb::Hello {
                    protocol_major: a,
                    protocol_minor: b,
                    client_name: c,
                    client_version: d,
                    resume_token: t,
                    quiet,
                })
            }),
        any::<u64>().prop_map(|nonce| Body::Ping(pb::Ping { nonce })),
        (0i32..25, text(), any::<u32>(), any::<bool>()).prop_map(|(code, message, r, fatal)| {
            Body::Error(pb::Error {
                code,
                message,
                retry_after_ms: r,
                fatal,
            })
        }),
        (text(), text(), text()).prop_map(|(name, password, device_name)| {
            Body::Register(pb::Register {
                name,
                password,
                device_name,
                invite_code: String::new(),
            })
        }),
        (any::<u64>(), text(), text()).prop_map(|(thread_id, client_msg_id, body)| {
            Body::Send(pb::Send {
                thread_id,
                client_msg_id,
                body,
                reply_to: 0,
            })
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            any::<bool>(),
            text()
        )
            .prop_map(
                |(thread_id, message_id, seq, server_ts_ms, duplicate, client_msg_id)| {
                    Body::SendAck(pb::SendAck {
                        thread_id,
                        message_id,
                        seq,
                        server_ts_ms,
                        duplicate,
                        client_msg_id,
                    })
                }
            ),
        chat_message().prop_map(|m| Body::MessagePush(pb::MessagePush { message: Some(m) })),
        (
            any::<u64>(),
            proptest::collection::vec(chat_message(), 0..5),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(thread_id, messages, has_more, last_seq)| {
                Body::MessagePage(pb::MessagePage {
                    thread_id,
                    messages,
                    has_more,
                    last_seq,
                })
            }),
        (
            any::<u64>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(group_id, name, description, open)| {
                Body::UpdateGroup(pb::UpdateGroup {
                    group_id,
                    name,
                    description,
                    open,
                })
            }),
        (any::<u64>(), any::<i64>(), proptest::option::of(user())).prop_map(
            |(event_seq, ts_ms, u)| {
                Body::EventPush(pb::EventPush {
                    event: Some(pb::UserEvent {
                        event_seq,
                        ts_ms,
                        kind: u.map(user_event::Kind::FriendRemoved),
                    }),
                })
            }
        ),
        (proptest::collection::vec(any::<u64>(), 0..8), text()).prop_map(|(thread_ids, reason)| {
            Body::ResyncPush(pb::ResyncPush { thread_ids, reason })
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (any::<u64>(), proptest::option::of(body()))
        .prop_map(|(req_id, body)| Envelope { req_id, body })
}

proptest! {
    #[test]
    fn envelopes_round_trip_through_frames(envs in proptest::collection::vec(envelope(), 1..8),
                                           split in any::<prop::sample::Index>()) {
        let mut codec = EnvelopeCodec::new();
        let mut wire = BytesMut::new();
        for env in &envs {
            codec.encode(env, &mut wire).expect("encode");
        }
        let cut = split.index(wire.len() + 1);
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(env) = codec.decode(&mut buf).expect("first part") {
            got.push(env);
        }
        buf.extend_from_slice(&wire[cut..]);
        while let Some(env) = codec.decode_eof(&mut buf).expect("second part") {
            got.push(env);
        }
        prop_assert_eq!(got, envs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fuzzing::decode_stream(&data);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_prefix_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Force the payload path: a correct length, then arbitrary protobuf-ish bytes.
        let mut data = vec![3u8];
        data.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        data.extend_from_slice(&payload);
        fuzzing::decode_stream(&data);
    }
}
