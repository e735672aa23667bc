//! The WHIP ingest's audio path on hostile RTP: reorder buffer, the RFC 7587 payload check
//! (`livegate_whip::depacketize::opus`), Opus timing and the muxer's control-header framing,
//! for an audio-only publisher. See `common/rtp.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_media::Codec;

#[path = "common/rtp.rs"]
mod rtp;

fuzz_target!(|data: &[u8]| rtp::run(&[Codec::Opus], data));
