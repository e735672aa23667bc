//! The GOP cache: the frames a viewer joining now needs to start at once, from the last IDR.
//!
//! A decoder can only start at an IDR. Without a cache a new viewer waits up to a whole GOP
//! (1–10 s) for the next one; with it, it gets the last IDR and every frame since in one
//! burst and then continues live. This module only decides what to keep; handing the cache
//! and the live frames to a viewer without a gap or a duplicate is [`crate::output`]'s job.
//!
//! What the cache holds, in this order:
//!
//! 1. the last H.264 IDR of the current source generation;
//! 2. every H.264 access unit after it, and every Opus packet whose PTS is at or after the
//!    IDR's, in stream order. Audio muxed ahead of the picture it accompanies is carried over
//!    from before the IDR, and audio muxed behind but timed before it is left out, so the
//!    viewer's audio starts with its first picture, not before.
//!
//! Before the first IDR (and after an overflow) it holds only the last second of audio, as
//! candidates for carrying over. A stream without video has no GOP: a viewer starts on the
//! next audio packet, 20 ms away.
//!
//! # Bounds
//!
//! A GOP that grows past [`GopLimits`] is dropped whole, and the cache stays empty until the
//! next IDR. Keeping only its first part would not help: the viewer must continue with the
//! live frame after the last one cached, so a cache with a hole is no cache. Joining viewers
//! then wait for the next IDR, as without a cache; the overflow is counted and logged.

use std::collections::VecDeque;

use livegate_media::{Codec, Pts90k, PTS_WRAP};

use crate::frame::SequencedFrame;

/// Audio packets held while there is no GOP, as candidates for carrying over to the next
/// IDR: one second of 20 ms Opus packets, far more than any muxer's audio lead.
const PRE_ROLL_AUDIO_FRAMES: usize = 50;

/// How much one stream's GOP cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopLimits {
    /// Payload bytes (RTP payloads of every cached frame).
    pub max_bytes: usize,
    /// Frames, audio and video together.
    pub max_frames: usize,
}

impl Default for GopLimits {
    /// 8 MiB and 2048 frames: a 4 s GOP at 16 Mbit/s, or a 10 s GOP of 30 fps video with
    /// 20 ms audio, whichever comes first.
    fn default() -> Self {
        GopLimits {
            max_bytes: 8 * 1024 * 1024,
            max_frames: 2048,
        }
    }
}

/// The frames from the last IDR on, of one stream. Plain data, owned by the stream's output
/// state and touched under its lock: every operation is O(1) amortised but for the audio
/// carry-over at an IDR, which looks at the audio held.
#[derive(Debug)]
pub(crate) struct GopCache {
    limits: GopLimits,
    /// The GOP when `has_keyframe`, else only pre-roll audio.
    frames: VecDeque<SequencedFrame>,
    has_keyframe: bool,
    payload_bytes: usize,
    overflows: u64,
}

impl GopCache {
    pub(crate) fn new(limits: GopLimits) -> GopCache {
        GopCache {
            limits,
            frames: VecDeque::new(),
            has_keyframe: false,
            payload_bytes: 0,
            overflows: 0,
        }
    }

    /// Takes the next frame of the stream, in stream order.
    pub(crate) fn push(&mut self, item: &SequencedFrame) {
        let frame = &item.frame;
        if self
            .frames
            .front()
            .is_some_and(|f| f.frame.source_generation != frame.source_generation)
        {
            // A new worker's frames cannot continue the old worker's pictures.
            self.clear();
        }
        match frame.codec {
            Codec::H264 if frame.keyframe => self.start_gop(item.clone()),
            Codec::H264 if self.has_keyframe => self.append(item.clone()),
            // Nothing can start from a picture that depends on one we do not hold.
            Codec::H264 => {}
            Codec::Opus if self.has_keyframe => {
                let start = self.frames[0].frame.pts;
                if !pts_before(frame.pts, start) {
                    self.append(item.clone());
                }
            }
            Codec::Opus => {
                self.frames.push_back(item.clone());
                self.payload_bytes += frame.payload_bytes();
                while self.frames.len() > PRE_ROLL_AUDIO_FRAMES {
                    let old = self.frames.pop_front().expect("over the bound");
                    self.payload_bytes -= old.frame.payload_bytes();
                }
            }
        }
    }

    /// Forgets everything, as after a gap in the input.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.has_keyframe = false;
        self.payload_bytes = 0;
    }

    /// The GOP, IDR first; empty while there is none.
    pub(crate) fn gop(&self) -> impl Iterator<Item = &SequencedFrame> {
        let len = if self.has_keyframe {
            self.frames.len()
        } else {
            0
        };
        self.frames.range(..len)
    }

    /// GOPs dropped for outgrowing the limits.
    pub(crate) fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Payload bytes held, pre-roll audio included.
    #[cfg(test)]
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    fn start_gop(&mut self, idr: SequencedFrame) {
        let start = idr.frame.pts;
        // Keep the audio timed at or after the picture (only audio can be held here besides
        // the previous GOP's video), in stream order, behind the IDR.
        self.frames
            .retain(|f| f.frame.codec == Codec::Opus && !pts_before(f.frame.pts, start));
        self.frames.push_front(idr);
        self.has_keyframe = true;
        self.payload_bytes = self.frames.iter().map(|f| f.frame.payload_bytes()).sum();
        self.check_limits();
    }

    fn append(&mut self, item: SequencedFrame) {
        self.payload_bytes += item.frame.payload_bytes();
        self.frames.push_back(item);
        self.check_limits();
    }

    fn check_limits(&mut self) {
        if self.payload_bytes <= self.limits.max_bytes
            && self.frames.len() <= self.limits.max_frames
        {
            return;
        }
        self.overflows += 1;
        if self.overflows == 1 {
            tracing::warn!(
                payload_bytes = self.payload_bytes,
                frames = self.frames.len(),
                max_bytes = self.limits.max_bytes,
                max_frames = self.limits.max_frames,
                "GOP outgrew the cache; new viewers wait for the next keyframe. \
                 Shorten the keyframe interval or raise the limits"
            );
        }
        self.clear();
    }
}

/// Whether `a` is before `b` on the 33-bit clock, taking the shorter way round so that a
/// wrap between them reads as a small step (ISO/IEC 13818-1 §2.4.3.7).
pub(crate) fn pts_before(a: Pts90k, b: Pts90k) -> bool {
    let forward = b.ticks().wrapping_sub(a.ticks()) & (PTS_WRAP - 1);
    forward != 0 && forward < PTS_WRAP / 2
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::frame::MediaFrame;

    fn frame(seq: u64, codec: Codec, pts: u64, keyframe: bool, size: usize) -> SequencedFrame {
        SequencedFrame {
            seq,
            frame: MediaFrame {
                codec,
                pts: Pts90k::new(pts),
                keyframe,
                source_generation: 1,
                payloads: Arc::from([Bytes::from(vec![0; size])]),
                access_unit_bytes: size,
            },
        }
    }

    fn video(seq: u64, pts: u64, keyframe: bool) -> SequencedFrame {
        frame(seq, Codec::H264, pts, keyframe, 100)
    }

    fn audio(seq: u64, pts: u64) -> SequencedFrame {
        frame(seq, Codec::Opus, pts, true, 10)
    }

    fn seqs(cache: &GopCache) -> Vec<u64> {
        cache.gop().map(|f| f.seq).collect()
    }

    fn cache() -> GopCache {
        GopCache::new(GopLimits::default())
    }

    #[test]
    fn holds_the_last_gop_only() {
        let mut cache = cache();
        for f in [video(0, 0, false), audio(1, 100)] {
            cache.push(&f);
        }
        assert!(seqs(&cache).is_empty(), "no GOP before the first IDR");
        let stream = [
            video(2, 3_000, true),
            audio(3, 3_100),
            video(4, 6_000, false),
            video(5, 9_000, true),
            video(6, 12_000, false),
            audio(7, 12_100),
        ];
        for f in &stream {
            cache.push(f);
        }
        assert_eq!(seqs(&cache), [5, 6, 7]);
        assert_eq!(cache.payload_bytes(), 210);
    }

    #[test]
    fn audio_follows_the_idr_timing_not_the_mux_order() {
        let mut cache = cache();
        let stream = [
            video(0, 90_000, true),
            audio(1, 170_000),
            // Muxed ahead of the IDR they go with, and timed at or after it: carried over.
            audio(2, 180_000),
            audio(3, 181_000),
            video(4, 180_000, true),
            // Muxed behind the IDR but timed before it: left out.
            audio(5, 179_000),
            audio(6, 182_800),
            video(7, 183_000, false),
        ];
        for f in &stream {
            cache.push(f);
        }
        assert_eq!(seqs(&cache), [4, 2, 3, 6, 7]);
    }

    #[test]
    fn pre_roll_audio_is_carried_over_across_the_pts_wrap() {
        let mut cache = cache();
        let idr_pts = PTS_WRAP - 1_000;
        for f in [
            audio(0, idr_pts - 1_800),
            audio(1, 800),
            video(2, idr_pts, true),
            audio(3, 2_600),
        ] {
            cache.push(&f);
        }
        assert_eq!(seqs(&cache), [2, 1, 3]);
    }

    #[test]
    fn a_gop_over_the_limits_is_dropped_until_the_next_idr() {
        for limits in [
            GopLimits {
                max_bytes: 350,
                max_frames: 100,
            },
            GopLimits {
                max_bytes: 10_000,
                max_frames: 3,
            },
        ] {
            let mut cache = GopCache::new(limits);
            for f in [
                video(0, 0, true),
                video(1, 3_000, false),
                video(2, 6_000, false),
            ] {
                cache.push(&f);
            }
            assert_eq!(seqs(&cache), [0, 1, 2], "{limits:?}");
            cache.push(&video(3, 9_000, false));
            assert!(seqs(&cache).is_empty(), "{limits:?}");
            assert_eq!(cache.overflows(), 1);
            cache.push(&video(4, 12_000, false));
            cache.push(&audio(5, 12_000));
            assert!(seqs(&cache).is_empty(), "{limits:?}: no GOP without an IDR");
            cache.push(&video(6, 15_000, true));
            assert_eq!(seqs(&cache), [6], "{limits:?}");
        }
    }

    #[test]
    fn a_new_generation_starts_afresh() {
        let mut cache = cache();
        cache.push(&video(0, 0, true));
        cache.push(&audio(1, 500));
        let mut next = video(2, 77, false);
        next.frame.source_generation = 2;
        cache.push(&next);
        assert!(seqs(&cache).is_empty());
        let mut idr = video(3, 3_077, true);
        idr.frame.source_generation = 2;
        cache.push(&idr);
        assert_eq!(seqs(&cache), [3]);
    }

    #[test]
    fn pre_roll_audio_is_bounded() {
        let mut cache = cache();
        for i in 0..200 {
            cache.push(&audio(i, i * 1_800));
        }
        assert_eq!(cache.payload_bytes(), PRE_ROLL_AUDIO_FRAMES * 10);
    }

    #[test]
    fn pts_order_on_the_wrapping_clock() {
        let p = Pts90k::new;
        assert!(pts_before(p(1), p(2)));
        assert!(!pts_before(p(2), p(1)));
        assert!(!pts_before(p(5), p(5)));
        assert!(pts_before(p(PTS_WRAP - 1), p(0)));
        assert!(!pts_before(p(0), p(PTS_WRAP - 1)));
    }
}
