//! The sending direction: the stream's input (MPEG-TS in a ring) read, demuxed and held
//! until the upstream is ready, then packetized into RTP on one connection's clocks.
//!
//! - [`InputFeed`] lives as long as the worker, across reconnections: one reader of the
//!   input ring, one demuxer, and the hold queue that keeps what arrives while no connection
//!   can take it.
//! - [`MediaSender`] lives as long as one connection: its RTP streams (random SSRCs,
//!   sequence numbers and timestamp bases, RFC 3550 §5.1), the packetizer, and the timeline
//!   that starts at the first unit it is given.
//!
//! # Holding
//!
//! While connecting, the input is not thrown away: access units are kept from the newest
//! video keyframe on (a new keyframe drops everything before it, so what is held is always
//! decodable and never more than one GOP old), at most [`InputFeed::new`]'s byte bound (more
//! means a GOP larger than any sane one: the queue is dropped and waits for the next
//! keyframe). Once connected the held units go out at once, then units as they are read. The
//! WHIP session asks its publisher for a keyframe whenever the stream's output generation
//! changes, and each connection attempt installs its output first, so a fresh keyframe is
//! usually held by the time ICE completes.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use livegate_media::h264::ParameterSetCache;
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader};
use livegate_media::time::{RtpClock, Timeline};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec};
use livegate_whep::packetize::{opus_payloads, H264Packetizer};
use rtc::rtp_transceiver::RTCRtpSenderId;

use crate::offer::SendTrack;

/// What reading the input gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputRead {
    /// Zero or more access units were appended.
    Units,
    /// The input ring is closed and drained: the publisher left.
    Closed,
}

/// The worker's reader of the stream's input, with the hold queue.
pub(crate) struct InputFeed {
    reader: RingReader,
    demuxer: Demuxer,
    events: Vec<DemuxEvent>,
    held: VecDeque<AccessUnit>,
    held_bytes: usize,
    max_held_bytes: usize,
    /// Bytes the reader lost because it fell a ring behind (counted, not fatal).
    pub(crate) lagged_bytes: u64,
    /// Units dropped from the hold queue (older than the newest keyframe, or over bound).
    pub(crate) dropped_while_held: u64,
}

impl InputFeed {
    /// A feed from the oldest chunk `input` holds, so the keyframe the publisher sent just
    /// before the worker started is not missed.
    pub(crate) fn new(input: &Arc<RingBuffer>, max_held_bytes: usize) -> InputFeed {
        InputFeed {
            reader: input.reader_from_oldest(),
            demuxer: Demuxer::new(),
            events: Vec::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            max_held_bytes,
            lagged_bytes: 0,
            dropped_while_held: 0,
        }
    }

    /// Waits for the next chunk and appends its access units to `out`. Cancel-safe (the
    /// ring reader is).
    pub(crate) async fn read(&mut self, out: &mut Vec<AccessUnit>) -> InputRead {
        let outcome = self.reader.read().await;
        self.on_outcome(outcome, out)
    }

    fn on_outcome(&mut self, outcome: ReadOutcome, out: &mut Vec<AccessUnit>) -> InputRead {
        match outcome {
            ReadOutcome::Chunk(chunk) => {
                self.demuxer.push(&chunk, &mut self.events);
            }
            ReadOutcome::Lagged { skipped_bytes } => {
                self.lagged_bytes += skipped_bytes;
                tracing::debug!(skipped_bytes, "upstream input reader lagged");
            }
            ReadOutcome::Closed => {
                self.demuxer.finish(&mut self.events);
                self.collect(out);
                return InputRead::Closed;
            }
        }
        self.collect(out);
        InputRead::Units
    }

    fn collect(&mut self, out: &mut Vec<AccessUnit>) {
        out.extend(self.events.drain(..).filter_map(|event| match event {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        }));
    }

    /// Whether the input carries video (known once its PMT was read).
    pub(crate) fn has_video(&self) -> bool {
        self.demuxer.tracks().iter().any(|t| t.codec == Codec::H264)
    }

    /// Keeps `au` until a connection takes it (see the module docs).
    pub(crate) fn hold(&mut self, au: AccessUnit) {
        let video = self.has_video();
        if au.codec == Codec::H264 && au.keyframe {
            self.drop_held();
        } else if video && self.held.is_empty() {
            // Nothing decodable before the first keyframe.
            self.dropped_while_held += 1;
            return;
        }
        self.held_bytes += au.data.len();
        self.held.push_back(au);
        if self.held_bytes > self.max_held_bytes {
            if video {
                self.drop_held();
            } else {
                while self.held_bytes > self.max_held_bytes {
                    let Some(old) = self.held.pop_front() else {
                        break;
                    };
                    self.held_bytes -= old.data.len();
                    self.dropped_while_held += 1;
                }
            }
        }
    }

    /// Everything held, oldest first; the queue is left empty.
    pub(crate) fn take_held(&mut self) -> VecDeque<AccessUnit> {
        self.held_bytes = 0;
        std::mem::take(&mut self.held)
    }

    fn drop_held(&mut self) {
        self.dropped_while_held += self.held.len() as u64;
        self.held.clear();
        self.held_bytes = 0;
    }
}

/// One outgoing RTP stream of a connection.
struct OutStream {
    track: SendTrack,
    next_sequence: u16,
    clock: RtpClock,
}

/// One RTP packet to write with `RTCRtpSender::write_rtp`.
pub(crate) struct OutPacket {
    pub(crate) sender: RTCRtpSenderId,
    pub(crate) packet: rtc::rtp::Packet,
}

/// Turns access units into RTP packets for one connection.
pub(crate) struct MediaSender {
    streams: Vec<OutStream>,
    timeline: Timeline,
    packetizer: H264Packetizer,
    parameter_sets: ParameterSetCache,
    /// Whether to wait for a video keyframe before anything goes out.
    start_at_keyframe: bool,
    pub(crate) video_frames: u64,
    pub(crate) audio_packets: u64,
}

impl MediaSender {
    /// A sender for the negotiated `tracks` (payload types from the answer).
    pub(crate) fn new(tracks: &[SendTrack]) -> MediaSender {
        MediaSender {
            streams: tracks
                .iter()
                .map(|&track| OutStream {
                    track,
                    next_sequence: rand::random(),
                    clock: RtpClock::new(track.codec.rtp_clock_rate()),
                })
                .collect(),
            timeline: Timeline::new(),
            packetizer: H264Packetizer::default(),
            parameter_sets: ParameterSetCache::new(),
            start_at_keyframe: tracks.iter().any(|t| t.codec == Codec::H264),
            video_frames: 0,
            audio_packets: 0,
        }
    }

    /// Whether anything was sent yet.
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.timeline.is_anchored()
    }

    /// Appends the packets of `au` to `out`: none before the stream's start (the first
    /// video keyframe, or the first unit of an input without video) or for a track the
    /// upstream did not take.
    pub(crate) fn packets(
        &mut self,
        au: &AccessUnit,
        input_has_video: bool,
        out: &mut Vec<OutPacket>,
    ) {
        if au.codec == Codec::H264 {
            self.parameter_sets.observe(&au.data);
        }
        if !self.timeline.is_anchored() {
            let wait_for_keyframe = self.start_at_keyframe && input_has_video;
            let can_start = !wait_for_keyframe || (au.codec == Codec::H264 && au.keyframe);
            if !can_start {
                return;
            }
            // A connection is a new RTP session: its timeline starts here, at 0.
            self.timeline
                .anchor(au.pts, livegate_media::time::Ticks90k(0));
        }
        let Some(output_time) = self.timeline.output_time(au.pts) else {
            return;
        };
        let Some(stream) = self.streams.iter_mut().find(|s| s.track.codec == au.codec) else {
            return;
        };
        let payloads: Arc<[Bytes]> = match au.codec {
            Codec::H264 => {
                // A keyframe after a PLI may come without SPS/PPS (OBS sends them once);
                // the upstream's decoder needs them in front of every IDR.
                let data = if au.keyframe {
                    self.parameter_sets.with_parameter_sets(au.data.clone())
                } else {
                    au.data.clone()
                };
                self.video_frames += 1;
                self.packetizer.packetize(&data)
            }
            Codec::Opus => {
                self.audio_packets += 1;
                opus_payloads(au.data.clone())
            }
        };
        let timestamp = stream.clock.timestamp(output_time).0;
        let last = payloads.len().saturating_sub(1);
        for (i, payload) in payloads.iter().enumerate() {
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    version: 2,
                    // RFC 6184 §5.1: the marker ends an access unit. RFC 7587 §4.1 leaves it
                    // for talkspurts, which we cannot see.
                    marker: au.codec == Codec::H264 && i == last,
                    payload_type: stream.track.payload_type,
                    sequence_number: stream.next_sequence,
                    timestamp,
                    ssrc: stream.track.ssrc,
                    ..Default::default()
                },
                payload: payload.clone(),
            };
            stream.next_sequence = stream.next_sequence.wrapping_add(1);
            out.push(OutPacket {
                sender: stream.track.sender,
                packet,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use livegate_media::Pts90k;

    use super::*;

    fn unit(codec: Codec, pts: u64, keyframe: bool, len: usize) -> AccessUnit {
        AccessUnit {
            pid: 0x100,
            codec,
            pts: Pts90k::new(pts),
            dts: None,
            keyframe,
            data: Bytes::from(vec![0; len]),
        }
    }

    fn fixture_feed(max_held_bytes: usize) -> (InputFeed, Vec<AccessUnit>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/h264-baseline-opus.ts"
        );
        let ring = RingBuffer::new(4 * 1024 * 1024);
        ring.write(Bytes::from(std::fs::read(path).unwrap()))
            .unwrap();
        ring.close();
        let mut feed = InputFeed::new(&ring, max_held_bytes);
        let mut units = Vec::new();
        while let Some(outcome) = feed.reader.try_read() {
            if feed.on_outcome(outcome, &mut units) == InputRead::Closed {
                break;
            }
        }
        (feed, units)
    }

    #[test]
    fn held_units_start_at_the_newest_keyframe() {
        // make-fixtures.sh: 2 s at 30 fps with a 1 s GOP, and Opus.
        let (mut feed, units) = fixture_feed(usize::MAX);
        assert!(feed.has_video());
        let total = units.len();
        for au in units {
            feed.hold(au);
        }
        let held = feed.take_held();
        let first = held.front().unwrap();
        assert!(first.codec == Codec::H264 && first.keyframe);
        let video = held.iter().filter(|u| u.codec == Codec::H264).count();
        assert_eq!(video, 30, "the second GOP only");
        assert_eq!(feed.dropped_while_held as usize + held.len(), total);
        assert!(feed.take_held().is_empty());
    }

    #[test]
    fn a_hold_over_its_bound_waits_for_the_next_keyframe() {
        let (mut feed, _) = fixture_feed(usize::MAX);
        feed.max_held_bytes = 1_000;
        feed.hold(unit(Codec::H264, 0, true, 600));
        feed.hold(unit(Codec::H264, 3_000, false, 600));
        assert!(feed.take_held().is_empty(), "over the bound: dropped");
        feed.hold(unit(Codec::H264, 6_000, false, 10));
        assert!(feed.take_held().is_empty(), "no keyframe yet");
        feed.hold(unit(Codec::H264, 9_000, true, 10));
        assert_eq!(feed.take_held().len(), 1);
    }

    #[test]
    fn packets_start_at_a_keyframe_with_continuous_sequence_numbers() {
        let tracks = [
            SendTrack {
                codec: Codec::H264,
                sender: RTCRtpSenderId::default(),
                ssrc: 1,
                payload_type: 96,
            },
            SendTrack {
                codec: Codec::Opus,
                sender: RTCRtpSenderId::default(),
                ssrc: 2,
                payload_type: 111,
            },
        ];
        let mut sender = MediaSender::new(&tracks);
        let (_, units) = fixture_feed(usize::MAX);
        let mut out = Vec::new();
        sender.packets(&unit(Codec::Opus, 0, true, 10), true, &mut out);
        assert!(out.is_empty() && !sender.started(), "audio waits for video");
        for au in &units {
            sender.packets(au, true, &mut out);
        }
        assert!(sender.started());
        assert_eq!(sender.video_frames, 60);
        let video: Vec<&rtc::rtp::Packet> = out
            .iter()
            .map(|p| &p.packet)
            .filter(|p| p.header.ssrc == 1)
            .collect();
        assert!(video
            .windows(2)
            .all(|w| w[1].header.sequence_number == w[0].header.sequence_number.wrapping_add(1)));
        assert_eq!(video.iter().filter(|p| p.header.marker).count(), 60);
        // 30 fps: the last frame is 59 frame times (3000 ticks each) after the first.
        let span = video
            .last()
            .unwrap()
            .header
            .timestamp
            .wrapping_sub(video[0].header.timestamp);
        assert_eq!(span, 59 * 3_000);
    }
}
