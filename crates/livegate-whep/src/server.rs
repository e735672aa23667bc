//! The WHEP endpoint's logic, without HTTP: admit a viewer, wait for its stream's output,
//! answer its offer with exactly the output's tracks, and keep the table of live sessions.
//! [`crate::http`] translates requests into calls on [`WhepServer`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderValue;
use livegate_media::registry::{StreamRegistry, WaitError};
use livegate_media::{Codec, StreamKey};
use livegate_rtc::{
    AcceptError, MediaKind, Offer, OfferError, RtcServer, SendSpec, SessionHandle, SessionRole,
};
use livegate_wish::{BearerToken, ResourceId, SessionResource, SessionTable, StreamSession};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WhepConfig;
use crate::metrics::WhepMetrics;
use crate::output::{StreamOutput, StreamOutputs, TracksError};
use crate::remote::{Attachment, RemoteLease, RemoteUnavailable};
use crate::session::{self, SessionTask};

/// Why a viewer was not given a session; each maps to one HTTP status in [`crate::http`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    /// 400: the offer is not SDP, or asks for nothing we could send.
    #[error(transparent)]
    BadOffer(#[from] OfferError),
    /// 400: the offer and the output have no track in common, or negotiation failed on it.
    #[error("{0}")]
    Unusable(String),
    /// 429.
    #[error("stream {stream} already has {limit} viewers")]
    TooManyViewers { stream: StreamKey, limit: usize },
    /// 503: `LIVE_AI_MAX_SESSIONS` peer connections (WHIP and WHEP) are open.
    #[error("the gateway already has {limit} WebRTC sessions, its limit")]
    TooManySessions { limit: usize },
    /// 503: too many requests are waiting for output.
    #[error("too many viewers waiting for streams; retry later")]
    Overloaded,
    /// 429: this client address already has this many requests waiting for output.
    #[error("{limit} requests from this address are already waiting for output")]
    TooManyPendingFromClient { limit: usize },
    /// 409: nothing produced output before the deadline (the WHEP draft's "not published").
    #[error("stream {0} has no output yet")]
    NotPublished(StreamKey),
    /// 409: the stream ended while the request waited.
    #[error("stream {0} ended before it produced output")]
    StreamEnded(StreamKey),
    /// 503.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// 307: the stream plays from another gateway of the fleet, at this WHEP URL.
    #[error("stream plays at {0}")]
    Redirect(String),
    /// 503: the fleet's registry cannot say where the stream is.
    #[error(transparent)]
    ClusterUnavailable(#[from] RemoteUnavailable),
}

impl PlayError {
    /// Label of `livegate_whep_sessions_failed_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            PlayError::BadOffer(_) | PlayError::Unusable(_) => "bad_offer",
            PlayError::TooManyViewers { .. } => "too_many_viewers",
            PlayError::Overloaded => "overloaded",
            PlayError::TooManySessions { .. } => "too_many_sessions",
            PlayError::TooManyPendingFromClient { .. } => "too_many_pending_from_client",
            PlayError::NotPublished(_) => "not_published",
            PlayError::StreamEnded(_) => "stream_ended",
            PlayError::ShuttingDown => "shutting_down",
            PlayError::Redirect(_) => "redirected",
            PlayError::ClusterUnavailable(_) => "cluster_unavailable",
        }
    }
}

/// Options a viewer chose in its request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayOptions {
    /// `?server_metrics=1`: send the session's and stream's figures on the viewer's data
    /// channel every second.
    pub server_metrics: bool,
    /// The address the request came from, for the per-client cap on waiting requests
    /// ([`WhepConfig::max_pending_per_ip`]); `None`: not counted per client.
    pub client_ip: Option<IpAddr>,
}

/// A session that was created.
#[derive(Debug, Clone)]
pub struct Played {
    pub id: ResourceId,
    pub answer: String,
    pub etag: String,
}

/// A live session, as the table holds it.
pub(crate) struct SessionEntry {
    pub(crate) stream: StreamKey,
    pub(crate) handle: SessionHandle,
    pub(crate) output: Arc<StreamOutput>,
    /// Ends the session's task (DELETE, shutdown).
    pub(crate) cancel: CancellationToken,
}

/// The WHEP endpoint: every viewer session of one gateway. Cheap to clone.
///
/// Concurrency: the table lock is held to insert, remove or count, never across an
/// `.await`. A request waiting for output holds a seat (it counts against the stream's
/// viewer limit) and nothing else; dropping the request's future (the client went away)
/// gives the seat back.
#[derive(Clone)]
pub struct WhepServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: WhepConfig,
    registry: StreamRegistry,
    outputs: StreamOutputs,
    rtc: RtcServer,
    pub(crate) metrics: WhepMetrics,
    table: Mutex<Table>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Table {
    sessions: SessionTable<SessionEntry>,
    /// Seats per stream: sessions plus requests still waiting.
    seats: HashMap<StreamKey, usize>,
    pending: usize,
    /// Waiting requests per client address, when they are capped; an address leaves the map
    /// with its last request.
    pending_by_ip: HashMap<IpAddr, usize>,
}

impl WhepServer {
    pub fn new(
        config: WhepConfig,
        registry: StreamRegistry,
        outputs: StreamOutputs,
        rtc: RtcServer,
        metrics: WhepMetrics,
    ) -> WhepServer {
        WhepServer {
            inner: Arc::new(Inner {
                config,
                registry,
                outputs,
                rtc,
                metrics,
                table: Mutex::new(Table::default()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn config(&self) -> &WhepConfig {
        &self.inner.config
    }

    /// Creates a viewer session of `stream` for `offer`: waits (up to the configured
    /// timeout) until the stream exists and its output's tracks are known, then answers
    /// with exactly those tracks the offer accepts.
    pub async fn play(
        &self,
        stream: StreamKey,
        offer: String,
        options: PlayOptions,
    ) -> Result<Played, PlayError> {
        let posted_at = Instant::now();
        let result = self.try_play(stream, offer, options, posted_at).await;
        if let Err(error) = &result {
            self.inner
                .metrics
                .sessions_failed
                .with_label_values(&[error.metric_reason()])
                .inc();
        }
        result
    }

    async fn try_play(
        &self,
        stream: StreamKey,
        offer: String,
        options: PlayOptions,
        posted_at: Instant,
    ) -> Result<Played, PlayError> {
        // Refuse an unusable offer before making the client wait for output.
        check_offer(&Offer::parse(&offer)?)?;
        let mut seat = Seat::take(&self.inner, &stream)?;
        let deadline = posted_at + self.inner.config.wait_timeout;

        let pending = Pending::enter(&self.inner, options.client_ip)?;
        let waited = tokio::select! {
            waited = self.attach_and_wait(&stream, deadline, &mut seat) => waited,
            _ = self.inner.shutdown.cancelled() => Err(PlayError::ShuttingDown),
        };
        drop(pending);
        let (feed, tracks) = waited?;

        let spec = SendSpec {
            // One msid for both tracks, so players lip-sync them.
            stream_id: format!("livegate-{stream}"),
            tracks: tracks
                .codecs()
                .into_iter()
                .filter(|c| matches!(c, Codec::H264 | Codec::Opus))
                .collect(),
            h264_profile_level_id: tracks.h264.as_ref().map(|sps| sps.profile_level_id()),
        };
        let accepted = self
            .inner
            .rtc
            .accept(offer, SessionRole::Send(spec))
            .await
            .map_err(|e| match e {
                AcceptError::Offer(e) => PlayError::Unusable(format!(
                    "{e} (the stream's output carries {:?})",
                    tracks.codecs()
                )),
                AcceptError::Negotiation(e) => PlayError::Unusable(e),
                AcceptError::TooManySessions { limit } => PlayError::TooManySessions { limit },
                AcceptError::ShuttingDown => PlayError::ShuttingDown,
            })?;

        let id = ResourceId::random();
        let entry = Arc::new(SessionEntry {
            stream: stream.clone(),
            handle: accepted.handle.clone(),
            output: feed.output().clone(),
            cancel: self.inner.shutdown.child_token(),
        });
        {
            let mut table = self.inner.table.lock();
            table.sessions.insert(id, entry.clone());
        }
        self.inner.metrics.sessions_active.inc();
        self.inner.metrics.sessions_created.inc();

        let task = SessionTask {
            server: self.inner.clone(),
            id,
            entry,
            events: accepted.events,
            send_tracks: accepted.send_tracks,
            feed,
            posted_at,
            server_metrics: options.server_metrics,
            seat,
        };
        let span = tracing::info_span!("whep", stream = %stream, session = %id);
        tokio::spawn(session::run(task).instrument(span));
        tracing::info!(stream = %stream, session = %id, rtc = %accepted.handle.id(), "WHEP session created");
        Ok(Played {
            id,
            answer: accepted.answer,
            etag: accepted.etag,
        })
    }

    /// Asks the fleet where `stream` plays from (a pulled stream's lease goes with the
    /// viewer's seat), then waits for its tracks.
    async fn attach_and_wait(
        &self,
        stream: &StreamKey,
        deadline: Instant,
        seat: &mut Seat,
    ) -> Result<(crate::ViewerFeed, crate::OutputTracks), PlayError> {
        if let Some(remote) = &self.inner.config.remote {
            match remote.attach(stream, deadline).await? {
                Attachment::Local => {}
                Attachment::Pulled(lease) => seat.remote = Some(lease),
                Attachment::Redirect(url) => return Err(PlayError::Redirect(url)),
            }
        }
        self.wait_for_tracks(stream, deadline).await
    }

    async fn wait_for_tracks(
        &self,
        stream: &StreamKey,
        deadline: Instant,
    ) -> Result<(crate::ViewerFeed, crate::OutputTracks), PlayError> {
        let (live, _) = self
            .inner
            .registry
            .wait_for_output(stream, deadline)
            .await
            .map_err(|e| match e {
                WaitError::TimedOut => PlayError::NotPublished(stream.clone()),
                WaitError::StreamClosed => PlayError::StreamEnded(stream.clone()),
            })?;
        // The feed keeps the reader running while we wait for the PMT and SPS.
        let feed = self.inner.outputs.get_or_start(&live);
        let tracks = feed
            .output()
            .wait_for_tracks(deadline)
            .await
            .map_err(|e| match e {
                TracksError::TimedOut => PlayError::NotPublished(stream.clone()),
                TracksError::StreamClosed => PlayError::StreamEnded(stream.clone()),
            })?;
        Ok((feed, tracks))
    }

    pub(crate) fn session(&self, stream: &StreamKey, id: ResourceId) -> Option<Arc<SessionEntry>> {
        let table = self.inner.table.lock();
        table.sessions.get(stream, id).cloned()
    }

    /// Live sessions.
    pub fn sessions(&self) -> usize {
        self.inner.table.lock().sessions.len()
    }

    /// Viewers of `stream`, requests still waiting for its output included.
    pub fn viewers(&self, stream: &StreamKey) -> usize {
        self.inner
            .table
            .lock()
            .seats
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    /// Requests waiting for output.
    pub fn pending(&self) -> usize {
        self.inner.table.lock().pending
    }

    /// Refuses new requests, ends the waiting ones with 503 and every session's task. The
    /// WebRTC server's own shutdown sends the close_notify.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

impl StreamSession for SessionEntry {
    fn stream(&self) -> &StreamKey {
        &self.stream
    }
}

/// How the session handlers of [`livegate_wish`] see a viewer's session.
impl SessionResource for WhepServer {
    const KIND: &'static str = "WHEP";

    fn token(&self) -> Option<&BearerToken> {
        self.config().token.as_ref()
    }

    fn ice_server_links(&self) -> &[HeaderValue] {
        &self.config().ice_server_links
    }

    fn session_handle(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle> {
        self.session(stream, id).map(|entry| entry.handle.clone())
    }

    fn end_session(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle> {
        let entry = self.inner.table.lock().sessions.take(stream, id)?;
        self.inner.metrics.sessions_active.dec();
        entry.cancel.cancel();
        Some(entry.handle.clone())
    }
}

impl Inner {
    /// Called by a session's task as it ends.
    pub(crate) fn remove(&self, id: ResourceId) {
        let removed = self.table.lock().sessions.remove(id);
        if removed.is_some() {
            self.metrics.sessions_active.dec();
        }
    }
}

/// The offer can receive H.264 or Opus at all; which of them the stream has is only known
/// once it has output.
fn check_offer(offer: &Offer) -> Result<(), PlayError> {
    let usable = offer.media.iter().any(|m| {
        matches!(m.kind, MediaKind::Audio | MediaKind::Video)
            && m.codecs
                .iter()
                .any(|c| matches!(c.codec(), Some(Codec::H264 | Codec::Opus)))
    });
    if usable {
        Ok(())
    } else {
        Err(
            OfferError::NoUsableCodec("the offer has neither H.264 video nor Opus audio".into())
                .into(),
        )
    }
}

/// A place among a stream's viewers, held from the POST until the session ends.
pub(crate) struct Seat {
    inner: Arc<Inner>,
    stream: StreamKey,
    /// Keeps a stream pulled from another gateway fed while this viewer needs it.
    remote: Option<RemoteLease>,
}

impl Seat {
    fn take(inner: &Arc<Inner>, stream: &StreamKey) -> Result<Seat, PlayError> {
        let mut table = inner.table.lock();
        let seats = table.seats.entry(stream.clone()).or_insert(0);
        if let Some(limit) = inner.config.max_sessions_per_stream {
            if *seats >= limit {
                return Err(PlayError::TooManyViewers {
                    stream: stream.clone(),
                    limit,
                });
            }
        }
        *seats += 1;
        inner.metrics.set_viewers(stream.as_str(), *seats);
        Ok(Seat {
            inner: inner.clone(),
            stream: stream.clone(),
            remote: None,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut table = self.inner.table.lock();
        let left = match table.seats.get_mut(&self.stream) {
            Some(seats) => {
                *seats -= 1;
                *seats
            }
            None => 0,
        };
        if left == 0 {
            table.seats.remove(&self.stream);
        }
        self.inner.metrics.set_viewers(self.stream.as_str(), left);
    }
}

/// A request waiting for output, counted against [`WhepConfig::max_pending`] and, per
/// client address, [`WhepConfig::max_pending_per_ip`]: one client holding every waiting
/// place would lock every other viewer out.
struct Pending {
    inner: Arc<Inner>,
    /// The client address counted in `pending_by_ip`, if any.
    client_ip: Option<IpAddr>,
}

impl Pending {
    fn enter(inner: &Arc<Inner>, client_ip: Option<IpAddr>) -> Result<Pending, PlayError> {
        if inner.shutdown.is_cancelled() {
            return Err(PlayError::ShuttingDown);
        }
        let mut table = inner.table.lock();
        if table.pending >= inner.config.max_pending {
            return Err(PlayError::Overloaded);
        }
        let counted = client_ip.zip(inner.config.max_pending_per_ip);
        if let Some((ip, limit)) = counted {
            let from_ip = table.pending_by_ip.entry(ip).or_insert(0);
            if *from_ip >= limit {
                return Err(PlayError::TooManyPendingFromClient { limit });
            }
            *from_ip += 1;
        }
        table.pending += 1;
        inner.metrics.pending_requests.inc();
        Ok(Pending {
            inner: inner.clone(),
            client_ip: counted.map(|(ip, _)| ip),
        })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut table = self.inner.table.lock();
        table.pending -= 1;
        if let Some(ip) = self.client_ip {
            if let Some(from_ip) = table.pending_by_ip.get_mut(&ip) {
                *from_ip -= 1;
                if *from_ip == 0 {
                    table.pending_by_ip.remove(&ip);
                }
            }
        }
        self.inner.metrics.pending_requests.dec();
    }
}
