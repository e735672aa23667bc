//! A played WHEP session: its resource, what it received, and its end.

use std::sync::Arc;
use std::time::Duration;

use rtc::peer_connection::state::RTCPeerConnectionState;
use tokio::sync::mpsc;

use super::peer::{Observed, PeerHandle, TrackShared};
use super::receive::KindStats;
use super::WhepClientError;
use crate::error::Side;
use crate::resource::Resource;

/// What a session received so far; see [`WhepSession::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub video: KindStats,
    pub audio: KindStats,
    /// Since the POST, when the peer connection first reached `connected`.
    pub connected_at: Option<Duration>,
    /// Since the POST, the first thing a player could show: the video's first complete
    /// keyframe when the answer sends video, otherwise the first audio packet.
    pub first_frame_at: Option<Duration>,
}

/// One viewer: a peer connection receiving a WHEP session, and its resource URL.
///
/// The peer connection runs on its own task (see the `peer` module) until it ends or the
/// session is closed or dropped. Methods take `&self`; share it as `Arc<WhepSession>` to
/// wait from several tasks. Dropping it closes the peer connection (DTLS close_notify to the
/// gateway) but does not DELETE the resource: call [`WhepSession::delete`] for that, as a
/// player would.
pub struct WhepSession {
    resource: Resource,
    peer: PeerHandle,
    observed: Arc<Observed>,
    messages: tokio::sync::Mutex<mpsc::Receiver<String>>,
    /// Whether the answer sends video: what the first frame is (see [`SessionStats`]).
    sends_video: bool,
    /// Answer candidates left out by [`crate::whep::WhepOptions::loopback_only`].
    removed_candidates: usize,
}

impl WhepSession {
    pub(crate) fn new(
        resource: Resource,
        peer: PeerHandle,
        observed: Arc<Observed>,
        messages: mpsc::Receiver<String>,
        sends_video: bool,
        removed_candidates: usize,
    ) -> WhepSession {
        WhepSession {
            resource,
            peer,
            observed,
            messages: tokio::sync::Mutex::new(messages),
            sends_video,
            removed_candidates,
        }
    }

    /// The session resource: `Location`, `ETag`, `Link` headers, the offer and the answer,
    /// and the POST's time, the origin of every `Duration` in the stats.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Waits until the peer connection is connected (ICE and DTLS up); returns how long
    /// that took since the POST.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<Duration, WhepClientError> {
        self.observed
            .lifecycle
            .wait_connected(timeout, Side::Whep, |state| self.connect_wait_detail(state))
            .await?;
        Ok(self.stats_connected_at().unwrap_or_default())
    }

    fn connect_wait_detail(&self, state: RTCPeerConnectionState) -> String {
        match self.removed_candidates {
            0 => format!("the connection (still {state})"),
            n => format!(
                "the connection (still {state}; {n} non-loopback answer candidates were not used)"
            ),
        }
    }

    /// Waits until at least `n` video frames arrived (complete or not; see
    /// [`crate::whep::KindStats::frames`]).
    pub async fn wait_video_frames(
        &self,
        n: u64,
        timeout: Duration,
    ) -> Result<(), WhepClientError> {
        self.wait_count(&self.observed.video, n, timeout, "video frames")
            .await
    }

    /// Waits until at least `n` audio packets arrived in sequence order.
    pub async fn wait_audio_packets(
        &self,
        n: u64,
        timeout: Duration,
    ) -> Result<(), WhepClientError> {
        self.wait_count(&self.observed.audio, n, timeout, "audio packets")
            .await
    }

    async fn wait_count(
        &self,
        shared: &TrackShared,
        n: u64,
        timeout: Duration,
        what: &str,
    ) -> Result<(), WhepClientError> {
        let waited = self
            .observed
            .lifecycle
            .wait_unless_ended(&shared.frames, |c| *c >= n, timeout)
            .await;
        let got = *shared.frames.borrow();
        waited.map_err(|unmet| {
            unmet.into_error(Side::Whep, format!("{n} {what} (got {got})"), timeout)
        })
    }

    /// What arrived so far, with each kind's frame log.
    pub fn stats(&self) -> SessionStats {
        self.snapshot(true)
    }

    /// [`WhepSession::stats`] without the frame logs: cheap enough to sample hundreds of
    /// sessions.
    pub fn counters(&self) -> SessionStats {
        self.snapshot(false)
    }

    fn snapshot(&self, with_log: bool) -> SessionStats {
        let posted_at = self.resource.posted_at();
        let video = self
            .observed
            .video
            .account
            .lock()
            .snapshot(posted_at, with_log);
        let audio = self
            .observed
            .audio
            .account
            .lock()
            .snapshot(posted_at, with_log);
        let first_frame_at = if self.sends_video {
            video.first_frame_at
        } else {
            audio.first_frame_at
        };
        SessionStats {
            video,
            audio,
            connected_at: self.stats_connected_at(),
            first_frame_at,
        }
    }

    fn stats_connected_at(&self) -> Option<Duration> {
        self.observed
            .lifecycle
            .connected_after(self.resource.posted_at())
    }

    /// Waits until the session is over from the network's side: the peer connection failed
    /// or closed, or the gateway's DTLS close_notify arrived (how livegate ends a session it
    /// closes). Returns why, e.g. `"closed by the gateway (DTLS close_notify)"`.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<&'static str, WhepClientError> {
        self.observed
            .lifecycle
            .wait_closed(timeout, Side::Whep)
            .await
    }

    /// Whether the session is over (see [`WhepSession::wait_closed`]), and why.
    pub fn closed_reason(&self) -> Option<&'static str> {
        self.observed.lifecycle.ended()
    }

    /// Whether the session is over now (see [`WhepSession::wait_closed`]). Async only for
    /// the callers written when it had to ask the DTLS transport; it no longer waits.
    pub async fn is_closed(&self) -> bool {
        self.closed_reason().is_some()
    }

    /// Waits for the next text message on a data channel (oldest first).
    pub async fn wait_data_message(&self, timeout: Duration) -> Result<String, WhepClientError> {
        let mut messages = self.messages.lock().await;
        match tokio::time::timeout(timeout, messages.recv()).await {
            Ok(Some(message)) => Ok(message),
            Ok(None) => Err(WhepClientError::Closed {
                side: Side::Whep,
                what: "a data channel message".to_owned(),
                state: "dropped".to_owned(),
            }),
            Err(_) => Err(WhepClientError::Timeout {
                what: "a data channel message".to_owned(),
                timeout,
            }),
        }
    }

    /// Sends `DELETE` to the session resource (RFC 9725 §4.2; at most 10 s) and returns the
    /// status, whatever it is. The local peer connection stays open, so the gateway's side of the
    /// teardown can be observed with [`WhepSession::wait_closed`].
    pub async fn delete(&self) -> Result<u16, WhepClientError> {
        self.resource.delete().await
    }

    /// Closes the local peer connection (DTLS close_notify sent, socket released) without
    /// any HTTP request, and waits until it is done.
    pub async fn close(&self) {
        self.peer.close().await;
    }

    /// Sends the gateway a PLI for the video track, as a browser's decoder does after loss.
    pub async fn request_keyframe(&self) {
        self.peer.request_keyframe().await;
    }
}
