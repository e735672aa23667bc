//! The glass-to-glass clock of one process that both publishes and plays a stream: the
//! publisher tells the probe when each frame's last packet left ([`SentVideoTap`]), the
//! viewer when each frame's last packet arrived ([`VideoPacketTap`]), and the probe matches
//! them by content ([`super::frame_key`]).
//!
//! Concurrency: the publisher's loop and the viewer's loop each call the probe from their
//! own task; each side takes its own `parking_lot` lock for a hash and a map operation, and
//! [`LatencyProbe::snapshot`] takes both as briefly. Nothing blocks or awaits.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::frame_key::{access_unit_key, FrameEnd, FrameKeyer};
use super::send_log::SendLog;
use crate::whep::{PacketView, VideoPacketTap};
use crate::whip::SentVideoTap;

/// One viewer frame matched with its sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameLatency {
    /// When its last packet arrived, since the viewer's first video packet.
    pub since_first_packet: Duration,
    /// Its last packet's arrival minus its last packet's sending, in milliseconds (negative
    /// only if the match was wrong).
    pub latency_ms: f64,
}

/// What the probe saw so far; see [`LatencyProbe::snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeSnapshot {
    /// Video frames the publisher sent that had a slice to key them by.
    pub frames_sent: u64,
    /// Viewer frames matched with a sending, in arrival order.
    pub matched: Vec<FrameLatency>,
    /// Viewer frames whose key was never sent (or sent too long ago to be remembered).
    pub unmatched: u64,
    /// Viewer frames that could not be keyed: the first slice lost or damaged in transit.
    pub unkeyed: u64,
}

struct ViewerSide {
    keyer: FrameKeyer,
    first_packet_at: Option<Instant>,
    matched: Vec<FrameLatency>,
    unmatched: u64,
    unkeyed: u64,
}

struct SenderSide {
    log: SendLog,
    frames_sent: u64,
}

/// Matches the frames a publisher sent with the frames a viewer of the same stream received.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use livegate_bench::latency::LatencyProbe;
/// use livegate_bench::whep::{WhepClient, WhepOptions};
/// use livegate_bench::whip::{MediaFile, WhipClient, WhipOptions};
///
/// let probe = Arc::new(LatencyProbe::new(900, 3_000));
/// let publish = WhipOptions {
///     media: Some(MediaFile::load("target/bench/720p-2mbps.ts").await?),
///     sent_video_tap: Some(probe.clone()),
///     ..WhipOptions::default()
/// };
/// let publisher = WhipClient::new().publish("http://127.0.0.1:8935/live/cam/whip", &publish).await?;
/// let play = WhepOptions { video_tap: Some(probe.clone()), ..WhepOptions::default() };
/// let viewer = WhepClient::new().play("http://127.0.0.1:8935/live/cam/whep", &play).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(10)).await;
/// println!("{} frames matched", probe.snapshot().matched.len());
/// # Ok(()) }
/// ```
pub struct LatencyProbe {
    sender: Mutex<SenderSide>,
    viewer: Mutex<ViewerSide>,
}

impl LatencyProbe {
    /// A probe remembering the last `send_log_frames` sendings (the longest latency it can
    /// measure, in frames) with room for `expected_frames` matches before it grows.
    pub fn new(send_log_frames: usize, expected_frames: usize) -> LatencyProbe {
        LatencyProbe {
            sender: Mutex::new(SenderSide {
                log: SendLog::with_capacity(send_log_frames),
                frames_sent: 0,
            }),
            viewer: Mutex::new(ViewerSide {
                keyer: FrameKeyer::default(),
                first_packet_at: None,
                matched: Vec::with_capacity(expected_frames),
                unmatched: 0,
                unkeyed: 0,
            }),
        }
    }

    /// Everything seen so far.
    pub fn snapshot(&self) -> ProbeSnapshot {
        let frames_sent = self.sender.lock().frames_sent;
        let viewer = self.viewer.lock();
        ProbeSnapshot {
            frames_sent,
            matched: viewer.matched.clone(),
            unmatched: viewer.unmatched,
            unkeyed: viewer.unkeyed,
        }
    }
}

impl SentVideoTap for LatencyProbe {
    fn on_video_frame_sent(&self, access_unit: &[u8], sent_at: Instant) {
        // Hashed before the lock: the viewer's side never waits on a slice's bytes.
        let Some(key) = access_unit_key(access_unit) else {
            return;
        };
        let mut sender = self.sender.lock();
        sender.log.insert(key, sent_at);
        sender.frames_sent += 1;
    }
}

impl VideoPacketTap for LatencyProbe {
    fn on_video_packet(&self, packet: &PacketView<'_>, received_at: Instant) {
        let mut viewer = self.viewer.lock();
        let first_packet_at = *viewer.first_packet_at.get_or_insert(received_at);
        let end = viewer.keyer.on_packet(
            packet.sequence_number,
            packet.timestamp,
            packet.marker,
            packet.payload,
        );
        let key = match end {
            FrameEnd::Pending => return,
            FrameEnd::Unkeyed => {
                viewer.unkeyed += 1;
                return;
            }
            FrameEnd::Keyed(key) => key,
        };
        // Lock order: viewer, then sender; the sender side never takes the viewer's lock.
        let sent_at = self.sender.lock().log.sent_at(key);
        match sent_at {
            Some(sent_at) => {
                let latency_ms = if received_at >= sent_at {
                    received_at.duration_since(sent_at).as_secs_f64() * 1e3
                } else {
                    -(sent_at.duration_since(received_at).as_secs_f64() * 1e3)
                };
                viewer.matched.push(FrameLatency {
                    since_first_packet: received_at.duration_since(first_packet_at),
                    latency_ms,
                });
            }
            None => viewer.unmatched += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn annex_b(nal: &[u8]) -> Bytes {
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(nal);
        Bytes::from(au)
    }

    fn packet<'a>(seq: u16, timestamp: u32, payload: &'a [u8]) -> PacketView<'a> {
        PacketView {
            ssrc: 1,
            sequence_number: seq,
            timestamp,
            marker: true,
            payload,
        }
    }

    #[test]
    fn frames_are_matched_by_content_whatever_their_timestamps() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let probe = LatencyProbe::new(16, 16);
        let (a, b, c) = ([0x65, 0x88, 0x01], [0x41, 0x9A, 0x02], [0x41, 0x9A, 0x03]);
        probe.on_video_frame_sent(&annex_b(&a), ms(0));
        probe.on_video_frame_sent(&annex_b(&b), ms(33));
        // Parameter sets alone key nothing.
        probe.on_video_frame_sent(&annex_b(&[0x67, 0x42]), ms(40));
        probe.on_video_packet(&packet(7, 90_000, &a), ms(5));
        probe.on_video_packet(&packet(8, 93_000, &b), ms(45));
        // Never sent.
        probe.on_video_packet(&packet(9, 96_000, &c), ms(80));
        let seen = probe.snapshot();
        assert_eq!(seen.frames_sent, 2);
        assert_eq!(seen.unmatched, 1);
        assert_eq!(seen.unkeyed, 0);
        assert_eq!(
            seen.matched,
            [
                FrameLatency {
                    since_first_packet: Duration::ZERO,
                    latency_ms: 5.0
                },
                FrameLatency {
                    since_first_packet: Duration::from_millis(40),
                    latency_ms: 12.0
                },
            ]
        );
    }

    #[test]
    fn a_repeated_frame_matches_its_latest_sending() {
        let t0 = Instant::now();
        let probe = LatencyProbe::new(16, 16);
        let a = [0x65, 0x88, 0x01];
        probe.on_video_frame_sent(&annex_b(&a), t0);
        probe.on_video_frame_sent(&annex_b(&a), t0 + Duration::from_secs(20));
        probe.on_video_packet(&packet(1, 0, &a), t0 + Duration::from_millis(20_007));
        assert_eq!(probe.snapshot().matched[0].latency_ms, 7.0);
    }
}
