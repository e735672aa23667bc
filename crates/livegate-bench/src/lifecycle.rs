//! A peer connection's life as its event loop reports it to the handle that owns it (a
//! viewer's [`crate::whep::WhepSession`], a publisher's [`crate::whip::WhipPublisher`]): the
//! connection state, when it first connected, why the loop ended; and the waits on them.
//!
//! Concurrency: only the loop writes (`on_state`, `end`, `finish`); the watches only move
//! forward, so a waiter that subscribes late still sees where they got to. The lock is held
//! for one assignment or read.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rtc::peer_connection::state::RTCPeerConnectionState;
use tokio::sync::watch;

use crate::error::{ClientError, Side};

/// Why the loop ends when a datagram was DTLS and the transport is now closed (see
/// [`livegate_upstream::datagram::deliver`]): the W3C connection-state rules count a closed
/// DTLS transport as connected, so the gateway's close_notify shows only there.
pub(crate) const GATEWAY_CLOSE_NOTIFY: &str = "closed by the gateway (DTLS close_notify)";

/// What the loop says of the connection, shared with its owner.
pub(crate) struct Lifecycle {
    pub(crate) state: watch::Sender<RTCPeerConnectionState>,
    /// When the connection state first became `connected`.
    connected_at: Mutex<Option<Instant>>,
    /// Why the loop ended, once it has: the first reason given wins.
    ended: watch::Sender<Option<&'static str>>,
}

/// Why a wait on a [`Lifecycle`] came back unmet.
pub(crate) enum Unmet {
    /// The loop ended first, for this reason.
    Ended(&'static str),
    TimedOut,
}

impl Unmet {
    /// The client error for a wait for `what` (with how far it got) that came back unmet.
    pub(crate) fn into_error(self, side: Side, what: String, timeout: Duration) -> ClientError {
        match self {
            Unmet::Ended(why) => ClientError::Closed {
                side,
                what,
                state: why.to_owned(),
            },
            Unmet::TimedOut => ClientError::Timeout { what, timeout },
        }
    }
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            state: watch::Sender::new(RTCPeerConnectionState::New),
            connected_at: Mutex::new(None),
            ended: watch::Sender::new(None),
        }
    }

    /// The loop: a connection state change seen at `now`. `failed` and `closed` end the
    /// loop's life; a later reconnection does not move `connected_at`.
    pub(crate) fn on_state(&self, state: RTCPeerConnectionState, now: Instant) {
        match state {
            RTCPeerConnectionState::Connected => {
                self.connected_at.lock().get_or_insert(now);
            }
            RTCPeerConnectionState::Failed => self.end("failed"),
            RTCPeerConnectionState::Closed => self.end("closed"),
            _ => {}
        }
        self.state.send_replace(state);
    }

    /// The loop: it is over (or about to be), for `why`, unless it already was.
    pub(crate) fn end(&self, why: &'static str) {
        self.ended.send_if_modified(|ended| {
            let first = ended.is_none();
            if first {
                *ended = Some(why);
            }
            first
        });
    }

    /// The loop, on its way out: ended for `why` (unless it already was) and closed.
    pub(crate) fn finish(&self, why: &'static str) {
        self.end(why);
        self.state.send_replace(RTCPeerConnectionState::Closed);
    }

    /// Why the loop ended, if it has.
    pub(crate) fn ended(&self) -> Option<&'static str> {
        *self.ended.borrow()
    }

    /// Since `origin` (the POST), when the connection first reached `connected`.
    pub(crate) fn connected_after(&self, origin: Instant) -> Option<Duration> {
        self.connected_at
            .lock()
            .map(|at| at.saturating_duration_since(origin))
    }

    /// Waits until the connection is connected; `still` describes a timeout from the state
    /// it was still in.
    pub(crate) async fn wait_connected(
        &self,
        timeout: Duration,
        side: Side,
        still: impl FnOnce(RTCPeerConnectionState) -> String,
    ) -> Result<(), ClientError> {
        let mut state = self.state.subscribe();
        let reached = tokio::time::timeout(
            timeout,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            what: still(*self.state.borrow()),
            timeout,
        })?
        .map(|s| *s)
        .unwrap_or(RTCPeerConnectionState::Closed);
        if reached != RTCPeerConnectionState::Connected {
            return Err(ClientError::Closed {
                side,
                what: "the connection".to_owned(),
                state: reached.to_string(),
            });
        }
        Ok(())
    }

    /// Waits until `watched` is `reached`, unless the loop ends or `timeout` passes first.
    pub(crate) async fn wait_unless_ended<T>(
        &self,
        watched: &watch::Sender<T>,
        reached: impl FnMut(&T) -> bool,
        timeout: Duration,
    ) -> Result<(), Unmet> {
        let mut value = watched.subscribe();
        let mut ended = self.ended.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            tokio::select! {
                biased;
                _ = value.wait_for(reached) => None,
                why = ended.wait_for(Option::is_some) => {
                    Some(why.ok().and_then(|why| *why).unwrap_or("closed"))
                }
            }
        })
        .await;
        match waited {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(Unmet::Ended(why)),
            Err(_) => Err(Unmet::TimedOut),
        }
    }

    /// Waits until the loop ended; returns why.
    pub(crate) async fn wait_closed(
        &self,
        timeout: Duration,
        side: Side,
    ) -> Result<&'static str, ClientError> {
        let mut ended = self.ended.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            ended
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|why| *why)
        })
        .await;
        match waited {
            Ok(why) => Ok(why.unwrap_or("closed")),
            Err(_) => Err(ClientError::Timeout {
                what: format!(
                    "the {} to close (still {})",
                    side.resource(),
                    *self.state.borrow()
                ),
                timeout,
            }),
        }
    }
}
