//! Prometheus view of the WebRTC servers.
//!
//! Counters are the servers' own atomics read at scrape time, so the event loops never touch
//! a metric on the packet path; Prometheus computes rates from them. The bitrate and
//! session-quality gauges come from one snapshot of every session per scrape
//! ([`RtcServer::sessions_snapshot`]). No metric has a per-session label: quality is given as
//! quantiles over the sessions of a role, so the number of series stays fixed whatever the
//! number of viewers. What one session is doing is for its owner ([`SessionHandle::stats`]).
//!
//! [`SessionHandle::stats`]: livegate_rtc::SessionHandle::stats

use livegate_rtc::{RtcServer, ServerStats, SessionStats};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Quantiles of a quantity where high is bad (delay, loss): the median, the 90th percentile
/// and the worst session.
const HIGH_IS_BAD: [(&str, f64); 3] = [("0.5", 0.5), ("0.9", 0.9), ("1", 1.0)];
/// Quantiles of a quantity where low is bad (frame rate): the worst session, the 10th
/// percentile and the median.
const LOW_IS_BAD: [(&str, f64); 3] = [("0", 0.0), ("0.1", 0.1), ("0.5", 0.5)];

/// The WebRTC servers of the process, by role (`whip`, `whep`), and their metrics.
#[derive(Clone)]
pub struct RtcMetrics {
    servers: Vec<(&'static str, RtcServer)>,
    sessions: IntGaugeVec,
    sessions_created: IntCounterVec,
    datagrams: IntCounterVec,
    events_dropped: IntCounterVec,
    frames_dropped: IntCounterVec,
    rtp_packets: IntCounterVec,
    rtp_retransmitted: IntCounterVec,
    rtp_bytes: IntCounterVec,
    video_frames: IntCounterVec,
    rtcp_feedback: IntCounterVec,
    packets_lost: IntCounterVec,
    snapshot_shards_skipped: IntCounterVec,
    snapshot_sessions: IntGaugeVec,
    bitrate: IntGaugeVec,
    rtt: GaugeVec,
    jitter: GaugeVec,
    fraction_lost: GaugeVec,
    frames_per_second: GaugeVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

fn quantiles(name: &str, help: &str) -> prometheus::Result<GaugeVec> {
    GaugeVec::new(Opts::new(name, help), &["role", "quantile"])
}

impl RtcMetrics {
    pub fn register(
        registry: &Registry,
        servers: Vec<(&'static str, RtcServer)>,
    ) -> prometheus::Result<RtcMetrics> {
        let metrics = RtcMetrics {
            servers,
            sessions: IntGaugeVec::new(
                Opts::new("livegate_rtc_sessions", "Peer connections currently open."),
                &["role"],
            )?,
            sessions_created: counter(
                "livegate_rtc_sessions_created_total",
                "Peer connections accepted.",
                &["role"],
            )?,
            datagrams: counter(
                "livegate_rtc_datagrams_total",
                "UDP datagrams on the role's port: in, out, and unroutable (matched no session).",
                &["role", "direction"],
            )?,
            events_dropped: counter(
                "livegate_rtc_events_dropped_total",
                "Session events dropped because their owner did not keep up.",
                &["role"],
            )?,
            frames_dropped: counter(
                "livegate_rtc_frames_dropped_total",
                "Frames refused because the event loop's queue was full.",
                &["role"],
            )?,
            rtp_packets: counter(
                "livegate_rtc_rtp_packets_total",
                "SRTP packets (not RTCP) of every session: out = handed to the socket, \
                 retransmissions included; in = from a session's peer, before decryption.",
                &["role", "direction"],
            )?,
            rtp_retransmitted: counter(
                "livegate_rtc_rtp_retransmitted_packets_total",
                "RTP packets sent again because a peer's NACK asked for them (also counted \
                 in livegate_rtc_rtp_packets_total).",
                &["role"],
            )?,
            rtp_bytes: counter(
                "livegate_rtc_rtp_bytes_total",
                "Bytes of those SRTP packets: RTP header, payload and authentication tag, \
                 without UDP/IP headers. rate() of it is the media bandwidth.",
                &["role", "direction"],
            )?,
            video_frames: counter(
                "livegate_rtc_video_frames_total",
                "H.264 frames: out = frames sent to viewers; in = frames received from \
                 publishers (RTP marker bits).",
                &["role", "direction"],
            )?,
            rtcp_feedback: counter(
                "livegate_rtc_rtcp_feedback_total",
                "RTCP feedback messages by kind: nack (RFC 4585 generic NACK), pli (picture \
                 loss), fir (full intra request); in = from peers, out = to peers. Outgoing \
                 NACKs are brought up to date at each scrape.",
                &["role", "direction", "kind"],
            )?,
            packets_lost: counter(
                "livegate_rtc_packets_lost_total",
                "RTP packets lost: out = of those we sent, as the peers' receiver reports say; \
                 in = of those we receive, as ours say (brought up to date at each scrape). \
                 Sums the increases of each stream's cumulative loss, so never decreases.",
                &["role", "direction"],
            )?,
            snapshot_shards_skipped: counter(
                "livegate_rtc_stats_shards_skipped_total",
                "Scrapes that left an event loop's sessions out of the gauges because it did \
                 not answer within 200 ms.",
                &["role"],
            )?,
            snapshot_sessions: IntGaugeVec::new(
                Opts::new(
                    "livegate_rtc_stats_sessions",
                    "Sessions the bitrate and quality gauges of the last scrape cover.",
                ),
                &["role"],
            )?,
            bitrate: IntGaugeVec::new(
                Opts::new(
                    "livegate_rtc_bitrate_bps",
                    "Media payload bitrate summed over the role's sessions, each rated over \
                     the interval since it was last read (at least 0.5 s): in = received, \
                     out = sent.",
                ),
                &["role", "direction"],
            )?,
            rtt: quantiles(
                "livegate_rtc_rtt_seconds",
                "Round-trip time to the peer over the sessions that measured one (RTCP \
                 LSR/DLSR, else STUN checks): quantile 0.5, 0.9 and 1 (the worst session).",
            )?,
            jitter: quantiles(
                "livegate_rtc_jitter_seconds",
                "RTP interarrival jitter (RFC 3550) over the sessions with media, of what the \
                 session receives or, sending, as its peer reports: quantile 0.5, 0.9, 1.",
            )?,
            fraction_lost: quantiles(
                "livegate_rtc_fraction_lost",
                "Fraction of RTP packets lost (0 to 1) over the sessions with media, sending \
                 as the peer last reported, receiving since the last read: quantile 0.5, 0.9, 1.",
            )?,
            frames_per_second: quantiles(
                "livegate_rtc_frames_per_second",
                "Video frames per second over the sessions with video: quantile 0 (the worst \
                 session), 0.1 and 0.5.",
            )?,
        };
        registry.register(Box::new(metrics.sessions.clone()))?;
        registry.register(Box::new(metrics.sessions_created.clone()))?;
        registry.register(Box::new(metrics.datagrams.clone()))?;
        registry.register(Box::new(metrics.events_dropped.clone()))?;
        registry.register(Box::new(metrics.frames_dropped.clone()))?;
        registry.register(Box::new(metrics.rtp_packets.clone()))?;
        registry.register(Box::new(metrics.rtp_retransmitted.clone()))?;
        registry.register(Box::new(metrics.rtp_bytes.clone()))?;
        registry.register(Box::new(metrics.video_frames.clone()))?;
        registry.register(Box::new(metrics.rtcp_feedback.clone()))?;
        registry.register(Box::new(metrics.packets_lost.clone()))?;
        registry.register(Box::new(metrics.snapshot_shards_skipped.clone()))?;
        registry.register(Box::new(metrics.snapshot_sessions.clone()))?;
        registry.register(Box::new(metrics.bitrate.clone()))?;
        registry.register(Box::new(metrics.rtt.clone()))?;
        registry.register(Box::new(metrics.jitter.clone()))?;
        registry.register(Box::new(metrics.fraction_lost.clone()))?;
        registry.register(Box::new(metrics.frames_per_second.clone()))?;
        Ok(metrics)
    }

    /// Brings every metric up to date; call before rendering. Takes a snapshot of every
    /// session, so it waits for the event loops (at most 200 ms per role).
    pub async fn refresh(&self) {
        for (role, server) in &self.servers {
            // First: the snapshot also brings some of the server's counters up to date.
            let sessions = server.sessions_snapshot().await;
            self.set_gauges(role, &sessions);
            self.set_counters(role, &server.stats());
        }
    }

    fn set_counters(&self, role: &str, stats: &ServerStats) {
        self.sessions
            .with_label_values(&[role])
            .set(stats.sessions_active as i64);
        let set = |vec: &IntCounterVec, labels: &[&str], value: u64| {
            let counter = vec.with_label_values(labels);
            counter.inc_by(value.saturating_sub(counter.get()));
        };
        set(&self.sessions_created, &[role], stats.sessions_created);
        set(&self.datagrams, &[role, "in"], stats.datagrams_in);
        set(&self.datagrams, &[role, "out"], stats.datagrams_out);
        set(
            &self.datagrams,
            &[role, "unroutable"],
            stats.datagrams_unroutable,
        );
        set(&self.events_dropped, &[role], stats.events_dropped);
        set(&self.frames_dropped, &[role], stats.frames_dropped);
        set(&self.rtp_packets, &[role, "in"], stats.rtp_packets_received);
        set(&self.rtp_packets, &[role, "out"], stats.rtp_packets_sent);
        set(
            &self.rtp_retransmitted,
            &[role],
            stats.rtp_packets_retransmitted,
        );
        set(&self.rtp_bytes, &[role, "in"], stats.rtp_bytes_received);
        set(&self.rtp_bytes, &[role, "out"], stats.rtp_bytes_sent);
        set(
            &self.video_frames,
            &[role, "in"],
            stats.video_frames_received,
        );
        set(&self.video_frames, &[role, "out"], stats.video_frames_sent);
        let feedback = [
            ("in", "nack", stats.nacks_received),
            ("in", "pli", stats.plis_received),
            ("in", "fir", stats.firs_received),
            ("out", "nack", stats.nacks_sent),
            ("out", "pli", stats.plis_sent),
        ];
        for (direction, kind, value) in feedback {
            set(&self.rtcp_feedback, &[role, direction, kind], value);
        }
        set(
            &self.packets_lost,
            &[role, "in"],
            stats.received_packets_lost,
        );
        set(&self.packets_lost, &[role, "out"], stats.sent_packets_lost);
        set(
            &self.snapshot_shards_skipped,
            &[role],
            stats.snapshot_shards_skipped,
        );
    }

    fn set_gauges(&self, role: &str, sessions: &[SessionStats]) {
        self.snapshot_sessions
            .with_label_values(&[role])
            .set(sessions.len() as i64);
        let sum = |bps: fn(&SessionStats) -> u64| sessions.iter().map(bps).sum::<u64>();
        self.bitrate
            .with_label_values(&[role, "in"])
            .set(sum(|s| s.bitrate_in_bps) as i64);
        self.bitrate
            .with_label_values(&[role, "out"])
            .set(sum(|s| s.bitrate_out_bps) as i64);

        let with_media = || {
            sessions
                .iter()
                .filter(|s| s.packets_sent + s.packets_received > 0)
        };
        let rtt = sessions.iter().map(|s| s.rtt_s).filter(|rtt| *rtt > 0.0);
        set_quantiles(&self.rtt, role, &HIGH_IS_BAD, rtt.collect());
        set_quantiles(
            &self.jitter,
            role,
            &HIGH_IS_BAD,
            with_media().map(|s| s.jitter_s).collect(),
        );
        set_quantiles(
            &self.fraction_lost,
            role,
            &HIGH_IS_BAD,
            with_media().map(|s| s.fraction_lost).collect(),
        );
        set_quantiles(
            &self.frames_per_second,
            role,
            &LOW_IS_BAD,
            sessions
                .iter()
                .filter_map(|s| s.frames_per_second)
                .collect(),
        );
    }

    pub fn servers(&self) -> &[(&'static str, RtcServer)] {
        &self.servers
    }
}

/// Sets one gauge per quantile of `values`; with no values the series are removed, so a
/// dashboard shows no data rather than a made-up zero.
fn set_quantiles(gauges: &GaugeVec, role: &str, wanted: &[(&str, f64)], mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    for &(label, q) in wanted {
        match quantile(&values, q) {
            Some(value) => gauges.with_label_values(&[role, label]).set(value),
            None => {
                let _ = gauges.remove_label_values(&[role, label]);
            }
        }
    }
}

/// The nearest-rank quantile of sorted values: the smallest value with at least a fraction
/// `q` of the values at or below it.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&ten, 0.0), Some(1.0));
        assert_eq!(quantile(&ten, 0.1), Some(1.0));
        assert_eq!(quantile(&ten, 0.5), Some(5.0));
        assert_eq!(quantile(&ten, 0.9), Some(9.0));
        assert_eq!(quantile(&ten, 1.0), Some(10.0));
        assert_eq!(quantile(&[0.25], 0.9), Some(0.25));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn quantile_series_disappear_without_sessions() {
        let gauges = quantiles("q", "test").unwrap();
        set_quantiles(&gauges, "whep", &HIGH_IS_BAD, vec![0.3, 0.1, 0.2]);
        assert_eq!(gauges.with_label_values(&["whep", "1"]).get(), 0.3);
        assert_eq!(gauges.with_label_values(&["whep", "0.5"]).get(), 0.2);
        set_quantiles(&gauges, "whep", &HIGH_IS_BAD, Vec::new());
        let families = {
            let registry = Registry::new();
            registry.register(Box::new(gauges.clone())).unwrap();
            registry.gather()
        };
        assert!(families.iter().all(|f| f.get_metric().is_empty()));
    }
}
