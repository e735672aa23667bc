//! The WHIP ingest's video path on hostile RTP: reorder buffer, RFC 6184 depacketizer (single
//! NAL, STAP-A, FU-A and the interleaved types it refuses), 1 MHz clock detection, keyframe
//! gating and the muxer, for an H.264 + Opus publisher. See `common/rtp.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_media::Codec;

#[path = "common/rtp.rs"]
mod rtp;

fuzz_target!(|data: &[u8]| rtp::run(&[Codec::H264, Codec::Opus], data));
