//! Helpers shared by the integration tests: fixtures, a reference demux, an independent
//! H.264 depacketizer, and a way to poll a feed without waiting.

#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use livegate_media::h264::{is_idr_access_unit, nal_type, nal_units, NalType};
use livegate_media::registry::{Stream, StreamRegistry};
use livegate_media::ring::RingBuffer;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::ts::mux::Muxer;
use livegate_media::{AccessUnit, Codec, Pts90k, StreamKey, Track, PTS_WRAP};
use livegate_whep::{MediaFrame, OutputStatus, StreamOutput, ViewerFeed};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Seven TS packets: how a live writer hands MPEG-TS over.
pub const CHUNK_BYTES: usize = 7 * 188;

/// Only a safety net against a hang; no test waits for it to pass.
pub const SAFETY_NET: Duration = Duration::from_secs(20);

pub use livegate_media::testing::fixture;

/// What the media crate's demuxer makes of a whole stream.
pub fn demux(ts: &[u8]) -> (Vec<Track>, Vec<AccessUnit>) {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    for chunk in ts.chunks(CHUNK_BYTES) {
        demuxer.push(chunk, &mut events);
    }
    demuxer.finish(&mut events);
    let mut tracks = Vec::new();
    let mut units = Vec::new();
    for event in events {
        match event {
            DemuxEvent::Tracks(t) => tracks = t,
            DemuxEvent::AccessUnit(au) => units.push(au),
        }
    }
    (tracks, units)
}

/// The fixture re-muxed with SPS and PPS removed from every IDR but the first, as encoders
/// that send parameter sets once (or out of band) do; so only the output's own cache can
/// give a late viewer's IDR its parameter sets.
pub fn with_parameter_sets_once(name: &str) -> Bytes {
    let (tracks, units) = demux(&fixture(name));
    let mut muxer = Muxer::new(&tracks).expect("fixture tracks mux");
    let mut out = BytesMut::new();
    let mut first = true;
    for mut au in units {
        if au.codec == Codec::H264 && is_idr_access_unit(&au.data) {
            if !first {
                let mut stripped = BytesMut::new();
                for nal in nal_units(&au.data) {
                    if !matches!(nal_type(nal), Some(NalType::SPS | NalType::PPS)) {
                        stripped.extend_from_slice(&[0, 0, 0, 1]);
                        stripped.extend_from_slice(nal);
                    }
                }
                au.data = stripped.freeze();
            }
            first = false;
        }
        muxer.write(&au, &mut out).expect("fixture units mux");
    }
    out.freeze()
}

/// Writes `ts` into `ring` in live-sized chunks.
pub fn write(ring: &RingBuffer, ts: &[u8]) {
    for chunk in ts.chunks(CHUNK_BYTES) {
        ring.write(Bytes::copy_from_slice(chunk))
            .expect("ring open");
    }
}

/// The length of the shortest chunk-aligned prefix of `ts` from which the demuxer delivers
/// `video_units` H.264 access units.
pub fn prefix_with_video_units(ts: &[u8], video_units: usize) -> usize {
    prefix_with_units(ts, Codec::H264, video_units)
}

/// The length of the shortest chunk-aligned prefix of `ts` from which the demuxer delivers
/// `units` access units of `codec`.
pub fn prefix_with_units(ts: &[u8], codec: Codec, units: usize) -> usize {
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    let mut seen = 0;
    for (i, chunk) in ts.chunks(CHUNK_BYTES).enumerate() {
        demuxer.push(chunk, &mut events);
        seen += events
            .drain(..)
            .filter(|e| matches!(e, DemuxEvent::AccessUnit(au) if au.codec == codec))
            .count();
        if seen >= units {
            return ((i + 1) * CHUNK_BYTES).min(ts.len());
        }
    }
    panic!("stream has fewer than {units} {codec:?} units");
}

/// A registry with one live stream "cam" whose output is a fresh ring.
pub fn stream_with_output() -> (StreamRegistry, Arc<Stream>, Arc<RingBuffer>) {
    let registry = StreamRegistry::new();
    let stream = registry
        .create(StreamKey::parse("cam").unwrap())
        .expect("new stream");
    let ring = RingBuffer::new(8 * 1024 * 1024);
    stream.set_output(ring.clone());
    (registry, stream, ring)
}

/// The NAL units of a frame's payloads, depacketized by webrtc-rs (an independent reader).
pub fn depacketized_nal_types(frame: &MediaFrame) -> Vec<u8> {
    assert_eq!(frame.codec, Codec::H264);
    let mut depacketizer = H264Packet::default();
    let mut annexb = Vec::new();
    for payload in frame.payloads.iter() {
        annexb.extend_from_slice(&depacketizer.depacketize(payload).expect("valid payload"));
    }
    nal_units(&annexb).map(|nal| nal[0] & 0x1F).collect()
}

/// Whether `a` is at or after `b` on the wrapping 33-bit clock.
pub fn pts_at_or_after(a: Pts90k, b: Pts90k) -> bool {
    let back = b.ticks().wrapping_sub(a.ticks()) & (PTS_WRAP - 1);
    back == 0 || back >= PTS_WRAP / 2
}

/// The next frame if one is ready now, without waiting: `None` if none is, `Some(None)` if
/// the feed ended. Polling once is cancel-safe (see `ViewerFeed::recv`); outside Tokio's
/// cooperative budget, so that "pending" means empty, not "yield for fairness".
pub fn try_recv(feed: &mut ViewerFeed) -> Option<Option<MediaFrame>> {
    let mut recv = pin!(tokio::task::unconstrained(feed.recv()));
    match recv.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(frame) => Some(frame),
        Poll::Pending => None,
    }
}

/// Receives a frame, failing the test instead of hanging.
pub async fn recv(feed: &mut ViewerFeed) -> Option<MediaFrame> {
    tokio::time::timeout(SAFETY_NET, feed.recv())
        .await
        .expect("a frame within the safety net")
}

/// Waits until the output's status satisfies `f`, failing the test instead of hanging.
pub async fn status_until(output: &StreamOutput, f: impl FnMut(&OutputStatus) -> bool) {
    let mut status = output.watch_status();
    tokio::time::timeout(SAFETY_NET, status.wait_for(f))
        .await
        .expect("status within the safety net")
        .expect("output alive");
}
