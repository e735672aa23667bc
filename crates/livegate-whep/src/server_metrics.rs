//! The opt-in `server_metrics` data-channel messages: once a second, what the session and its
//! stream are doing, as realtime AI SDKs report it to their players.
//!
//! Only sent when the viewer asked (`?server_metrics=1`) and opened a data channel; the
//! message is JSON:
//!
//! ```json
//! {"type":"server_metrics","stream":{"key":"cam","viewers":2,"fps":30.0,"bitrate_bps":2000000,
//!  "generation":1,"active":true,"pipeline_latency_ms":null},
//!  "session":{"fps":30.0,"bitrate_bps":2000000,"queue_depth_frames":0,"frames_lost":0,
//!  "rtt_ms":1.2,"packets_sent":1234}}
//! ```
//!
//! `pipeline_latency_ms` is the median time the stream's recent frames spent between its input
//! and output buffers, as its pipeline worker measured it (0 for passthrough); `null` when the
//! worker has not measured any (a file source, a worker that rewrites timestamps, no output
//! yet).

use std::time::Instant;

use livegate_media::Codec;
use livegate_rtc::SessionStats;
use serde_json::json;

use crate::output::{Activity, OutputStatus};
use crate::{MediaFrame, ViewerFeed};

/// Counts frames between two messages.
pub(crate) struct ServerMetricsMeter {
    since: Instant,
    stream: Window,
    session: Window,
}

#[derive(Default)]
struct Window {
    video_frames: u64,
    audio_frames: u64,
    payload_bytes: u64,
}

impl Window {
    fn add(&mut self, frame: &MediaFrame) {
        match frame.codec {
            Codec::H264 => self.video_frames += 1,
            Codec::Opus => self.audio_frames += 1,
        }
        self.payload_bytes += frame.payload_bytes() as u64;
    }

    /// Video frames per second, or audio packets per second for an audio-only stream.
    fn fps(&self, seconds: f64) -> f64 {
        let frames = if self.video_frames > 0 {
            self.video_frames
        } else {
            self.audio_frames
        };
        round1(frames as f64 / seconds)
    }

    fn bitrate_bps(&self, seconds: f64) -> u64 {
        (self.payload_bytes as f64 * 8.0 / seconds) as u64
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl ServerMetricsMeter {
    pub(crate) fn new() -> ServerMetricsMeter {
        ServerMetricsMeter {
            since: Instant::now(),
            stream: Window::default(),
            session: Window::default(),
        }
    }

    /// A frame the stream's output produced (whether or not this viewer sends it).
    pub(crate) fn stream_frame(&mut self, frame: &MediaFrame) {
        self.stream.add(frame);
    }

    /// A frame this session handed to its transport.
    pub(crate) fn session_frame(&mut self, frame: &MediaFrame) {
        self.session.add(frame);
    }

    /// The message for the window since the last one, and a new window.
    pub(crate) fn message(
        &mut self,
        stream_key: &str,
        status: &OutputStatus,
        feed: &ViewerFeed,
        stats: Option<&SessionStats>,
    ) -> String {
        let seconds = self.since.elapsed().as_secs_f64().max(1e-3);
        let feed_stats = feed.stats();
        let latency = feed.output().stream().pipeline_latency();
        let message = json!({
            "type": "server_metrics",
            "stream": {
                "key": stream_key,
                "viewers": status.viewers,
                "fps": self.stream.fps(seconds),
                "bitrate_bps": self.stream.bitrate_bps(seconds),
                "generation": status.generation,
                "active": status.activity == Activity::Active,
                "pipeline_latency_ms": latency.map(|l| round1(l.p50.as_secs_f64() * 1e3)),
                "pipeline_latency_p99_ms": latency.map(|l| round1(l.p99.as_secs_f64() * 1e3)),
            },
            "session": {
                "fps": self.session.fps(seconds),
                "bitrate_bps": self.session.bitrate_bps(seconds),
                "queue_depth_frames": feed.queued_frames(),
                "frames_lost": feed_stats.frames_lost,
                "rtt_ms": stats.map(|s| round1(s.rtt_s * 1000.0)),
                "packets_sent": stats.map(|s| s.packets_sent),
            },
        });
        self.since = Instant::now();
        self.stream = Window::default();
        self.session = Window::default();
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use livegate_media::Pts90k;

    use super::*;

    fn frame(codec: Codec, bytes: usize) -> MediaFrame {
        MediaFrame {
            codec,
            pts: Pts90k::new(0),
            keyframe: false,
            source_generation: 1,
            payloads: Arc::from(vec![Bytes::from(vec![0u8; bytes])]),
            access_unit_bytes: bytes,
        }
    }

    #[test]
    fn windows_count_video_fps_and_bitrate() {
        let mut window = Window::default();
        for _ in 0..30 {
            window.add(&frame(Codec::H264, 1_000));
        }
        for _ in 0..50 {
            window.add(&frame(Codec::Opus, 100));
        }
        assert_eq!(window.fps(1.0), 30.0);
        assert_eq!(window.bitrate_bps(2.0), (30 * 1_000 + 50 * 100) * 8 / 2);
    }

    #[test]
    fn audio_only_fps_counts_packets() {
        let mut window = Window::default();
        for _ in 0..50 {
            window.add(&frame(Codec::Opus, 100));
        }
        assert_eq!(window.fps(1.0), 50.0);
    }
}
