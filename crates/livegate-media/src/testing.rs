//! Test helpers for the crates that carry H.264 over RTP (`livegate-whep` packetizes,
//! `livegate-whip` depacketizes): the repository's fixtures, a fixture's H.264 access units,
//! NAL units joined in Annex B, and a proptest strategy for NAL units.
//!
//! Behind the `testing` feature, which those crates enable from their dev-dependencies only:
//! nothing here is built into the gateway.

use std::ops::Range;

use bytes::Bytes;
use proptest::prelude::*;

use crate::ts::demux::{DemuxEvent, Demuxer};
use crate::Codec;

/// A file of `tests/fixtures/` (made by `scripts/make-fixtures.sh`); panics with its path
/// when it cannot be read.
pub fn fixture(name: &str) -> Bytes {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// The H.264 access units of a fixture, in stream order, as this crate's demuxer reads them.
pub fn fixture_video(name: &str) -> Vec<Bytes> {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    demuxer.push(&fixture(name), &mut events);
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|e| match e {
            DemuxEvent::AccessUnit(au) if au.codec == Codec::H264 => Some(au.data),
            _ => None,
        })
        .collect()
}

/// NAL units joined into one Annex B access unit, each after a four-byte start code
/// (ITU-T H.264 Annex B.1).
pub fn annexb(nals: &[Vec<u8>]) -> Bytes {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    Bytes::from(out)
}

/// A NAL unit of a type `t` yields (any NRI) whose body of a length in `len` has no zero
/// byte, so no start code can hide in it and it has no trailing zero, as an encoder's
/// emulation prevention guarantees (ITU-T H.264 §7.4.1).
pub fn nal(t: impl Strategy<Value = u8>, len: Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    (t, 0u8..4, proptest::collection::vec(1u8..=255, len)).prop_map(|(t, nri, body)| {
        let mut nal = vec![nri << 5 | t];
        nal.extend(body);
        nal
    })
}
