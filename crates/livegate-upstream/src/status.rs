//! What a stream's upstream worker shows: connected or not, reconnections, and how long the
//! current connection's start-up phases took. Read it with [`crate::WhipUpstream::status`]
//! or follow it with [`crate::WhipUpstream::subscribe`].

use std::fmt;
use std::time::{Duration, Instant};

/// A start-up phase of one connection, in the order they normally complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The peer connection is built and its offer made.
    OfferBuilt,
    /// The upstream answered the POST with 201 and its SDP.
    PostAnswered,
    /// ICE found a working pair (RFC 8445 §8).
    IceConnected,
    /// DTLS completed, SRTP keys in place: the peer connection is `connected`.
    DtlsConnected,
    /// The first RTP packet of the publisher's media went to the upstream.
    FirstMediaSent,
    /// The first RTP packet of processed media came back.
    FirstMediaReceived,
}

impl Phase {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::OfferBuilt => "offer_built",
            Phase::PostAnswered => "post_answered",
            Phase::IceConnected => "ice_connected",
            Phase::DtlsConnected => "dtls_connected",
            Phase::FirstMediaSent => "first_media_sent",
            Phase::FirstMediaReceived => "first_media_received",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds from the start of a connection attempt to each phase; `None` until reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartupPhases {
    pub offer_built_ms: Option<u64>,
    pub post_answered_ms: Option<u64>,
    pub ice_connected_ms: Option<u64>,
    pub dtls_connected_ms: Option<u64>,
    pub first_media_sent_ms: Option<u64>,
    pub first_media_received_ms: Option<u64>,
}

impl StartupPhases {
    fn slot(&mut self, phase: Phase) -> &mut Option<u64> {
        match phase {
            Phase::OfferBuilt => &mut self.offer_built_ms,
            Phase::PostAnswered => &mut self.post_answered_ms,
            Phase::IceConnected => &mut self.ice_connected_ms,
            Phase::DtlsConnected => &mut self.dtls_connected_ms,
            Phase::FirstMediaSent => &mut self.first_media_sent_ms,
            Phase::FirstMediaReceived => &mut self.first_media_received_ms,
        }
    }

    /// The elapsed time of `phase`, if reached.
    pub fn get(&self, phase: Phase) -> Option<u64> {
        let mut copy = *self;
        *copy.slot(phase)
    }
}

/// One stream's upstream worker, as a status endpoint would show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The current connection is up (ICE and DTLS done).
    pub connected: bool,
    /// Connection attempts made so far (the first included).
    pub attempts: u32,
    /// Attempts after the first: reconnections.
    pub reconnects: u32,
    /// The current (or last) attempt's start-up.
    pub phases: StartupPhases,
    /// Why the last connection ended, if one did.
    pub last_error: Option<String>,
    /// Keyframe requests (PLI, FIR) the upstream sent. Only the publisher can make a
    /// keyframe, and the worker has no way to ask it yet; see the crate docs.
    pub upstream_keyframe_requests: u64,
    /// Publisher data-channel messages waiting for an upstream channel.
    pub data_messages_pending: usize,
    /// The worker ended, and why.
    pub ended: Option<String>,
}

/// Records one attempt's phases once each, logs them, and publishes them.
pub(crate) struct PhaseClock {
    started: Instant,
}

impl PhaseClock {
    pub(crate) fn new(started: Instant) -> PhaseClock {
        PhaseClock { started }
    }

    /// Marks `phase` reached now, unless it already was; logs it with its elapsed time.
    pub(crate) fn reached(
        &self,
        phase: Phase,
        stream: &str,
        attempt: u32,
        status: &tokio::sync::watch::Sender<UpstreamStatus>,
    ) {
        let elapsed = self.started.elapsed();
        status.send_if_modified(|s| {
            let slot = s.phases.slot(phase);
            if slot.is_some() {
                return false;
            }
            *slot = Some(millis(elapsed));
            tracing::info!(
                stream,
                attempt,
                phase = phase.as_str(),
                elapsed_ms = millis(elapsed),
                "upstream start-up"
            );
            true
        });
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_recorded_once() {
        let status = tokio::sync::watch::Sender::new(UpstreamStatus::default());
        let clock = PhaseClock::new(Instant::now() - Duration::from_millis(30));
        clock.reached(Phase::IceConnected, "s", 1, &status);
        let first = status.borrow().phases.get(Phase::IceConnected).unwrap();
        assert!(first >= 30);
        std::thread::sleep(Duration::from_millis(5));
        clock.reached(Phase::IceConnected, "s", 1, &status);
        assert_eq!(status.borrow().phases.ice_connected_ms, Some(first));
        assert_eq!(status.borrow().phases.get(Phase::OfferBuilt), None);
    }
}
