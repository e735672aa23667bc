//! The WHIP endpoint's logic, without HTTP: admit a publisher, give its stream a media path
//! (input buffer, pipeline worker), answer its offer, and keep the stream through a short
//! absence of its publisher. [`crate::http`] translates requests into calls on
//! [`WhipServer`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderValue;
use livegate_media::registry::{RegistryError, Stream, StreamRegistry};
use livegate_media::ring::{RingBuffer, DEFAULT_CAPACITY_BYTES};
use livegate_media::{Codec, StreamKey};
use livegate_pipeline::{data_channel_pair, Pipeline, PublisherDataChannel, WorkerJob};
use livegate_rtc::{AcceptError, MediaKind, Offer, OfferError, RtcServer, SessionHandle};
use livegate_wish::{
    close_in_time, BearerToken, ResourceId, SessionResource, SessionTable, StreamSession,
};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{AuthError, AuthRequest};
use crate::config::{OnConflict, WhipConfig};
use crate::data_channel::DataChannelRelay;
use crate::echo::{self, Echo};
use crate::metrics::WhipMetrics;
use crate::origin::{ClaimError, OriginClaim};
use crate::session::{self, PublishTask};
use crate::Ingest;

/// Why a publisher was not given a session; each maps to one HTTP status in [`crate::http`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// 400: not SDP, or nothing usable in it.
    #[error(transparent)]
    BadOffer(#[from] OfferError),
    /// 422 (RFC 9725 §4.2): SDP we understand but a track layout we cannot take.
    #[error("{0}")]
    Unprocessable(String),
    /// 409: the stream already has a live publisher.
    #[error("stream {0} already has a live publisher")]
    AlreadyLive(StreamKey),
    /// 503: `LIVE_AI_MAX_STREAMS` streams are published.
    #[error("the gateway already carries {0} streams")]
    TooManyStreams(usize),
    /// 503: `LIVE_AI_MAX_SESSIONS` peer connections (WHIP and WHEP) are open.
    #[error("the gateway already has {0} WebRTC sessions, its limit")]
    TooManySessions(usize),
    /// 503.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// 403: the auth webhook refused.
    #[error("{0}")]
    Denied(String),
    /// 503: the auth webhook could not decide.
    #[error("{0}")]
    AuthUnavailable(String),
    /// 503: the fleet's registry cannot be reached to make this gateway the origin.
    #[error("{0}")]
    ClusterUnavailable(String),
}

impl PublishError {
    /// Label of `livegate_whip_sessions_failed_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            PublishError::BadOffer(_) => "bad_offer",
            PublishError::Unprocessable(_) => "unprocessable",
            PublishError::AlreadyLive(_) => "already_live",
            PublishError::TooManyStreams(_) => "too_many_streams",
            PublishError::TooManySessions(_) => "too_many_sessions",
            PublishError::ShuttingDown => "shutting_down",
            PublishError::Denied(_) => "denied",
            PublishError::AuthUnavailable(_) => "auth_unavailable",
            PublishError::ClusterUnavailable(_) => "cluster_unavailable",
        }
    }
}

/// A publish that was answered.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: ResourceId,
    pub answer: String,
    pub etag: String,
}

/// A live publisher, as the table holds it.
pub(crate) struct PublisherEntry {
    pub(crate) stream: StreamKey,
    pub(crate) handle: SessionHandle,
    /// Ends the session's task (DELETE, replacement, shutdown).
    pub(crate) cancel: CancellationToken,
}

/// A published stream and who publishes it.
struct StreamSlot {
    stream: Arc<Stream>,
    /// `None` while the stream waits out the republish grace.
    publisher: Option<ResourceId>,
    /// Bumped on every publisher change, so a grace timer of an earlier absence does nothing.
    epoch: u64,
    /// Whether a publisher ever wrote the stream's own input buffer; later ones get a fresh
    /// buffer each (the old one is closed).
    input_used: bool,
    /// This gateway is the stream's origin in a fleet while held; dropped with the slot.
    claim: Option<OriginClaim>,
}

/// The WHIP endpoint: every publisher of one gateway. Cheap to clone.
///
/// Concurrency: the table lock is held to reserve, release or look up, never across an
/// `.await`. A stream key is reserved for a publisher before its offer is answered, so two
/// simultaneous POSTs of one key cannot both win.
#[derive(Clone)]
pub struct WhipServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: WhipConfig,
    registry: StreamRegistry,
    pipeline: Pipeline,
    rtc: RtcServer,
    pub(crate) metrics: WhipMetrics,
    table: Mutex<Table>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Table {
    sessions: SessionTable<PublisherEntry>,
    streams: HashMap<StreamKey, StreamSlot>,
}

impl WhipServer {
    pub fn new(
        config: WhipConfig,
        registry: StreamRegistry,
        pipeline: Pipeline,
        rtc: RtcServer,
        metrics: WhipMetrics,
    ) -> WhipServer {
        WhipServer {
            inner: Arc::new(Inner {
                config,
                registry,
                pipeline,
                rtc,
                metrics,
                table: Mutex::new(Table::default()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn config(&self) -> &WhipConfig {
        &self.inner.config
    }

    /// Publishes `stream` with `offer`: asks the auth webhook if there is one, reserves the
    /// key, answers, and starts the session that writes the publisher's media into the
    /// stream's input. `auth` is what the webhook is told about the request.
    pub async fn publish(
        &self,
        stream: StreamKey,
        offer: String,
        auth: AuthRequest,
    ) -> Result<Published, PublishError> {
        let posted_at = Instant::now();
        let result = self.try_publish(stream, offer, auth, posted_at).await;
        match &result {
            Ok(_) => self.inner.metrics.sessions_created.inc(),
            Err(error) => self
                .inner
                .metrics
                .sessions_failed
                .with_label_values(&[error.metric_reason()])
                .inc(),
        }
        result
    }

    async fn try_publish(
        &self,
        key: StreamKey,
        offer: String,
        auth: AuthRequest,
        posted_at: Instant,
    ) -> Result<Published, PublishError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(PublishError::ShuttingDown);
        }
        let tracks = received_tracks(&Offer::parse(&offer)?, &self.inner.config)?;
        let (pipeline, params) = match &self.inner.config.auth_webhook {
            Some(webhook) => {
                let decision = webhook.check(&auth).await.map_err(|e| match e {
                    AuthError::Denied { .. } => PublishError::Denied(e.to_string()),
                    other => PublishError::AuthUnavailable(other.to_string()),
                })?;
                let pipeline = match decision.pipeline {
                    None => self.inner.pipeline.clone(),
                    // The webhook picks among what the operator configured, never a command
                    // line of its own: `exec:` from a reply would run anything on this host.
                    Some(p) if p == Pipeline::Passthrough || p == self.inner.pipeline => p,
                    Some(p) => {
                        return Err(PublishError::AuthUnavailable(format!(
                            "the auth webhook chose pipeline {p}; it may choose passthrough or \
                             the configured {}",
                            self.inner.pipeline
                        )))
                    }
                };
                (pipeline, decision.params.map(|p| p.to_string()))
            }
            None => (self.inner.pipeline.clone(), None),
        };
        let id = ResourceId::random();
        let claim = self.claim_origin(&key).await?;
        let (stream, replaced) = self.reserve(&key, id, claim)?;
        if let Some(old) = replaced {
            tracing::info!(stream = %key, session = %old.handle.id(), "replacing the live publisher");
            old.cancel.cancel();
        }

        let role = echo::session_role(self.inner.config.echo.is_some(), &stream, &tracks);
        let accepted = match self.inner.rtc.accept(offer, role).await {
            Ok(accepted) => accepted,
            Err(e) => {
                self.inner.release(&key, id);
                return Err(match e {
                    AcceptError::Offer(e) => PublishError::Unprocessable(e.to_string()),
                    AcceptError::Negotiation(e) => PublishError::Unprocessable(e),
                    AcceptError::TooManySessions { limit } => PublishError::TooManySessions(limit),
                    AcceptError::ShuttingDown => PublishError::ShuttingDown,
                });
            }
        };

        let (input, publisher_data) = self.inner.input_for(&key, &stream, &pipeline, params);
        let ingest = match Ingest::new(self.inner.config.ingest.clone(), &tracks, input.clone()) {
            Ok(ingest) => ingest,
            Err(e) => {
                accepted.handle.close().await;
                self.inner.release(&key, id);
                return Err(PublishError::Unprocessable(e.to_string()));
            }
        };
        let entry = Arc::new(PublisherEntry {
            stream: key.clone(),
            handle: accepted.handle.clone(),
            cancel: self.inner.shutdown.child_token(),
        });
        self.inner.table.lock().sessions.insert(id, entry.clone());
        self.inner.metrics.publishers_active.inc();

        let task = PublishTask {
            server: self.inner.clone(),
            id,
            entry,
            events: accepted.events,
            ingest,
            input,
            output: stream.subscribe_output(),
            keyframes: stream.subscribe_keyframe_requests(),
            data: DataChannelRelay::new(id, publisher_data),
            posted_at,
        };
        let span = tracing::info_span!("whip", stream = %key, session = %id);
        if let (Some(outputs), false) = (&self.inner.config.echo, accepted.send_tracks.is_empty()) {
            let echo = Echo {
                outputs: outputs.clone(),
                stream: stream.clone(),
                handle: accepted.handle.clone(),
                send_tracks: accepted.send_tracks.clone(),
                cancel: task.entry.cancel.clone(),
            };
            tracing::debug!(stream = %key, session = %id, tracks = ?echo.send_tracks, "echoing the output to the publisher");
            tokio::spawn(echo::run(echo).instrument(span.clone()));
        }
        tokio::spawn(session::run(task).instrument(span));
        tracing::info!(stream = %key, session = %id, rtc = %accepted.handle.id(), ?tracks, "WHIP session created");
        Ok(Published {
            id,
            answer: accepted.answer,
            etag: accepted.etag,
        })
    }

    /// Takes `key` for publisher `id`: a new stream, the stream of a publisher that left
    /// within the grace, or (with [`OnConflict::Replace`]) a live publisher's stream, whose
    /// old entry is returned to be stopped.
    fn reserve(
        &self,
        key: &StreamKey,
        id: ResourceId,
        mut claim: Option<OriginClaim>,
    ) -> Result<(Arc<Stream>, Option<Arc<PublisherEntry>>), PublishError> {
        let inner = &self.inner;
        // The stream this node played from the old origin, still registered and live: the
        // publisher continues it for the viewers it already has.
        let continued = claim
            .as_mut()
            .and_then(OriginClaim::take_continued)
            .filter(|s| {
                !s.is_closed()
                    && inner
                        .registry
                        .get(key)
                        .is_some_and(|current| Arc::ptr_eq(&current, s))
            });
        let mut table = inner.table.lock();
        let table = &mut *table;
        if let Some(slot) = table.streams.get_mut(key) {
            let replaced = match slot.publisher {
                Some(_) if inner.config.on_conflict == OnConflict::Reject => {
                    return Err(PublishError::AlreadyLive(key.clone()));
                }
                Some(old) => table.sessions.remove(old),
                None => None,
            };
            slot.publisher = Some(id);
            slot.epoch += 1;
            if let Some(claim) = &slot.claim {
                claim.set_idle(false);
            }
            return Ok((slot.stream.clone(), replaced));
        }
        if let Some(limit) = inner.config.max_streams {
            if table.streams.len() >= limit {
                if let Some(stream) = &continued {
                    // Nobody will feed it: its viewers end instead of waiting.
                    inner.registry.remove(stream);
                }
                return Err(PublishError::TooManyStreams(limit));
            }
        }
        let stream = match continued {
            Some(stream) => {
                tracing::info!(stream = %key, "the publisher continues the stream this node was pulling; its viewers stay");
                stream
            }
            None => inner.registry.create(key.clone()).map_err(|e| match e {
                // A test stream (LIVE_AI_TEST_STREAM) or another part owns the key.
                RegistryError::AlreadyLive(key) => PublishError::AlreadyLive(key),
            })?,
        };
        if let Some(claim) = &claim {
            Inner::watch_claim(inner, key, &stream, claim);
        }
        table.streams.insert(
            key.clone(),
            StreamSlot {
                stream: stream.clone(),
                publisher: Some(id),
                epoch: 0,
                input_used: false,
                claim,
            },
        );
        Ok((stream, None))
    }

    /// In a fleet, makes this gateway `key`'s origin before the key is reserved, so a key
    /// published on another node is refused before anything changes here.
    async fn claim_origin(&self, key: &StreamKey) -> Result<Option<OriginClaim>, PublishError> {
        let Some(origin) = &self.inner.config.origin else {
            return Ok(None);
        };
        let replace = self.inner.config.on_conflict == OnConflict::Replace;
        match origin.claim(key, replace).await {
            Ok(claim) => Ok(Some(claim)),
            Err(ClaimError::Taken { stream, node }) => {
                tracing::info!(stream = %stream, origin = %node, "refused: published on another gateway");
                Err(PublishError::AlreadyLive(stream))
            }
            Err(e @ ClaimError::Unavailable(_)) => {
                Err(PublishError::ClusterUnavailable(e.to_string()))
            }
        }
    }

    pub(crate) fn session(
        &self,
        stream: &StreamKey,
        id: ResourceId,
    ) -> Option<Arc<PublisherEntry>> {
        let table = self.inner.table.lock();
        table.sessions.get(stream, id).cloned()
    }

    /// Live publishers.
    pub fn publishers(&self) -> usize {
        self.inner.table.lock().sessions.len()
    }

    /// Streams held, with or without a publisher (those in their grace).
    pub fn streams(&self) -> usize {
        self.inner.table.lock().streams.len()
    }

    /// Refuses new publishers and ends every session; their streams close at once.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }
}

impl StreamSession for PublisherEntry {
    fn stream(&self) -> &StreamKey {
        &self.stream
    }
}

/// How the session handlers of [`livegate_wish`] see a publisher's session.
impl SessionResource for WhipServer {
    const KIND: &'static str = "WHIP";

    fn token(&self) -> Option<&BearerToken> {
        self.config().token.as_ref()
    }

    fn ice_server_links(&self) -> &[HeaderValue] {
        &self.config().ice_server_links
    }

    fn session_handle(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle> {
        self.session(stream, id).map(|entry| entry.handle.clone())
    }

    /// The session's task releases the stream into its grace as it winds down.
    fn end_session(&self, stream: &StreamKey, id: ResourceId) -> Option<SessionHandle> {
        let entry = self.inner.table.lock().sessions.take(stream, id)?;
        entry.cancel.cancel();
        Some(entry.handle.clone())
    }
}

impl Inner {
    /// The buffer a new publisher of `key` writes: the stream's own input the first time,
    /// a fresh one (with its own pipeline worker, so the output gets a new generation)
    /// after a republish. With it, the publisher's end of the data channel whose other end
    /// the worker was given.
    fn input_for(
        &self,
        key: &StreamKey,
        stream: &Arc<Stream>,
        pipeline: &Pipeline,
        params_json: Option<String>,
    ) -> (Arc<RingBuffer>, PublisherDataChannel) {
        let first = {
            let mut table = self.table.lock();
            match table.streams.get_mut(key) {
                Some(slot) => !std::mem::replace(&mut slot.input_used, true),
                None => true,
            }
        };
        let input = if first {
            stream.input().clone()
        } else {
            RingBuffer::new(DEFAULT_CAPACITY_BYTES)
        };
        let (publisher_data, worker_data) = data_channel_pair();
        let job = WorkerJob {
            params_json,
            publisher_data: Some(worker_data),
            ..WorkerJob::new(stream.clone(), input.clone())
        };
        if let Err(e) = pipeline.attach(&self.config.workers, job) {
            // Configuration, not the publisher: the stream has no output and its viewers
            // wait; the log says why.
            tracing::error!(stream = %key, error = %e, "cannot start the pipeline worker");
        }
        (input, publisher_data)
    }

    /// Publisher `id` of `key` is gone (or never started): its session leaves the table and
    /// the stream waits out the grace for a new publisher, or closes at once at shutdown.
    pub(crate) fn release(self: &Arc<Self>, key: &StreamKey, id: ResourceId) {
        let grace = {
            let mut table = self.table.lock();
            table.sessions.remove(id);
            let Some(slot) = table.streams.get_mut(key) else {
                return;
            };
            if slot.publisher != Some(id) {
                // Replaced: the stream is someone else's now.
                return;
            }
            slot.publisher = None;
            slot.epoch += 1;
            if let Some(claim) = &slot.claim {
                // A publisher coming back on another gateway may take the stream over.
                claim.set_idle(true);
            }
            (slot.epoch, slot.stream.clone())
        };
        let (epoch, stream) = grace;
        if self.shutdown.is_cancelled() || self.config.republish_grace.is_zero() {
            self.close_stream(key, epoch);
            return;
        }
        let inner = self.clone();
        let key = key.clone();
        let mut output = stream.subscribe_output();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(inner.config.republish_grace) => {}
                _ = inner.shutdown.cancelled() => {}
                _ = output.wait_for(|slot| slot.closed) => {}
            }
            inner.close_stream(&key, epoch);
        });
    }

    /// Ends `stream` at once when another gateway takes it over (its claim is lost): the
    /// publisher's session is closed and the stream with it, so a fleet never has two origins
    /// of one key for longer than a claim renewal.
    fn watch_claim(self: &Arc<Self>, key: &StreamKey, stream: &Arc<Stream>, claim: &OriginClaim) {
        let (inner, key, stream, lost) = (self.clone(), key.clone(), stream.clone(), claim.lost());
        let mut output = stream.subscribe_output();
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => {}
                _ = output.wait_for(|slot| slot.closed) => return,
            }
            let entry = {
                let mut table = inner.table.lock();
                match table.streams.get(&key) {
                    Some(slot) if Arc::ptr_eq(&slot.stream, &stream) => {
                        let slot = table.streams.remove(&key).expect("just found");
                        slot.publisher.and_then(|id| table.sessions.remove(id))
                    }
                    _ => return,
                }
            };
            tracing::warn!(stream = %key, "another gateway took the stream over: ending it here");
            if let Some(entry) = entry {
                entry.cancel.cancel();
            }
            inner.registry.remove(&stream);
        });
    }

    /// Closes the stream of `key` if nothing happened to it since `epoch`.
    fn close_stream(&self, key: &StreamKey, epoch: u64) {
        let stream = {
            let mut table = self.table.lock();
            match table.streams.get(key) {
                Some(slot) if slot.epoch == epoch && slot.publisher.is_none() => {
                    table.streams.remove(key).map(|slot| slot.stream)
                }
                _ => None,
            }
        };
        if let Some(stream) = stream {
            tracing::info!(stream = %key, "stream ended: no publisher");
            stream.close();
            self.registry.remove(&stream);
        }
    }
}

/// The tracks a publisher's offer gives us, in the order the muxer lists them: H.264 video
/// (required unless video is optional) and Opus audio if offered.
fn received_tracks(offer: &Offer, config: &WhipConfig) -> Result<Vec<Codec>, PublishError> {
    let offers = |kind: MediaKind, codec: Codec| {
        offer.media.iter().any(|m| {
            m.kind == kind
                && m.codecs.iter().any(|c| {
                    c.codec() == Some(codec)
                        && (codec != Codec::H264 || c.fmtp_param("packetization-mode").is_some())
                })
        })
    };
    let mut tracks = Vec::new();
    if offers(MediaKind::Video, Codec::H264) {
        tracks.push(Codec::H264);
    }
    if offers(MediaKind::Audio, Codec::Opus) {
        tracks.push(Codec::Opus);
    }
    let has_video_section = offer.media.iter().any(|m| m.kind == MediaKind::Video);
    if !tracks.contains(&Codec::H264) && (!config.ingest.video_optional || has_video_section) {
        return Err(PublishError::Unprocessable(
            "the offer has no H.264 video (packetization-mode 0 or 1)".into(),
        ));
    }
    if tracks.is_empty() {
        return Err(PublishError::Unprocessable(
            "the offer has neither H.264 video nor Opus audio".into(),
        ));
    }
    Ok(tracks)
}

/// Whether a WHIP stream has its publisher, as the gateway's streams API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherState {
    /// A publisher holds the stream (connecting or sending).
    Live,
    /// The publisher left; the stream waits out `republish_grace` for it to come back.
    Grace,
}

impl PublisherState {
    /// The name the streams API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PublisherState::Live => "live",
            PublisherState::Grace => "grace",
        }
    }
}

/// The operator's view of the table: read-only look-ups and ending a stream, for the
/// gateway's streams API. Same locking rule as the rest: the table lock is never held
/// across an `.await`.
impl WhipServer {
    /// Whether `key` is a WHIP stream, and whether its publisher is there. `None` for a key
    /// WHIP does not hold (unknown, or a stream some other part publishes).
    pub fn publisher_state(&self, key: &StreamKey) -> Option<PublisherState> {
        let table = self.inner.table.lock();
        table.streams.get(key).map(|slot| match slot.publisher {
            Some(_) => PublisherState::Live,
            None => PublisherState::Grace,
        })
    }

    /// Ends the stream of `key` now: its publisher's session is closed and the stream closes
    /// without waiting out the republish grace, which ends its viewers' sessions. `false`
    /// when WHIP holds no stream of that key.
    ///
    /// The slot leaves the table before anything is closed, so the session's own `release`
    /// finds nothing to keep in grace, and a publisher that comes back gets a new stream.
    pub async fn end_stream(&self, key: &StreamKey) -> bool {
        let (slot, entry) = {
            let mut table = self.inner.table.lock();
            let Some(slot) = table.streams.remove(key) else {
                return false;
            };
            let entry = slot.publisher.and_then(|id| table.sessions.remove(id));
            (slot, entry)
        };
        if let Some(entry) = entry {
            entry.cancel.cancel();
            if !close_in_time(&entry.handle).await {
                tracing::warn!(stream = %key, "WHIP close not taken by the event loop in time");
            }
        }
        tracing::info!(stream = %key, "stream ended by an operator");
        slot.stream.close();
        self.inner.registry.remove(&slot.stream);
        true
    }
}
