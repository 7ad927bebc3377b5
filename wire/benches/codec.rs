//! Encode + decode of a typical Send frame (a 60-byte mixed-script text) through EnvelopeCodec.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use bytes::BytesMut;
use confab_wire::pb;
use confab_wire::{Body, Envelope, EnvelopeCodec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

fn typical_send() -> Envelope {
    Envelope::new(
        1234,
        Body::Send(pb::Send {
            thread_id: 987_654,
            client_msg_id: "01JDZ8X3M4K2Q7N5".to_owned(),
            body: "今晚一起吃饭吗? Dinner tonight at 7, the usual place 🍜".to_owned(),
            reply_to: 0,
        }),
    )
}

fn bench_codec(c: &mut Criterion) {
    let env = typical_send();
    let mut codec = EnvelopeCodec::new();
    let mut buf = BytesMut::with_capacity(256);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_encode_decode", |b| {
        b.iter(|| {
            codec.encode(black_box(&env), &mut buf).expect("encode");
            let got = codec.decode(&mut buf).expect("decode").expect("frame");
            black_box(got)
        })
    });
    group.bench_function("send_encode", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(&env), &mut buf).expect("encode");
        })
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
