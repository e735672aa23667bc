//! The trickle server: a store of channels, reachable over HTTP through [`TrickleServer::router`]
//! and in-process through [`LocalPublisher`] and [`LocalSubscriber`].
//!
//! It follows go-livepeer's `trickle/trickle_server.go`: channels are created by their owner
//! (in-process, or over HTTP only with [`ServerConfig::autocreate`]), each keeps a window of
//! the last [`ServerConfig::segments_per_channel`] segments, a segment's bytes reach its readers
//! as they arrive, and a channel with no new segment for [`ServerConfig::idle_channel_timeout`]
//! is closed by a sweeper.
//!
//! Concurrency contract: nothing here blocks; locks are held for a few instructions. Writers
//! never wait for readers (every chunk is kept while the segment is in the window), so a slow
//! subscriber only falls behind and eventually gets 470. Closing a channel (`DELETE`,
//! [`TrickleServer::close_channel`], idle expiry) ends every unfinished segment: waiting
//! readers and preconnected publishers return at once, POSTs are refused with 404, and the
//! name is free for a new channel. Finished segments stay readable for
//! [`ServerConfig::closed_channel_linger`], so subscribers that are behind get the tail and
//! then the end (`Lp-Trickle-Closed`).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use livegate_trickle::{ServerConfig, TrickleServer};
//! let trickle = TrickleServer::new(ServerConfig::default());
//! trickle.create_channel("stream1").unwrap();
//! let app = axum::Router::new().nest("/ai/trickle", trickle.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod channel;
mod http;
mod local;
mod segment;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::error::Refusal;
use crate::SeqNo;
use channel::Channel;
pub use local::{LocalPublisher, LocalSegmentWriter, LocalSubscriber};
pub use segment::{SegmentEnd, SegmentReader};

/// Limits of a [`TrickleServer`]. Every limit refuses with its own status and reason.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Segments kept per channel for late readers (go-livepeer: 5). A reader further behind
    /// gets 470.
    pub segments_per_channel: usize,
    /// Largest segment body; a POST that grows past it gets 413 and the segment ends there.
    pub max_segment_bytes: usize,
    /// Most channels at once; creating one more is refused with 503.
    pub max_channels: usize,
    /// A channel whose last segment started this long ago is closed (go-livepeer: 5 min).
    pub idle_channel_timeout: Duration,
    /// How often idle channels are looked for (go-livepeer: 1 min).
    pub sweep_interval: Duration,
    /// How long a closed channel's finished segments stay readable before it is forgotten.
    pub closed_channel_linger: Duration,
    /// Create a channel on its first POST (go-livepeer's `Autocreate`, off by default: the
    /// channel's owner creates it, and POST or GET of an unknown channel gets 404).
    pub autocreate: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            segments_per_channel: 5,
            max_segment_bytes: 64 * 1024 * 1024,
            max_channels: 1024,
            idle_channel_timeout: Duration::from_secs(5 * 60),
            sweep_interval: Duration::from_secs(60),
            closed_channel_linger: Duration::from_secs(30),
            autocreate: false,
        }
    }
}

/// Why a channel was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `DELETE {channel}` or [`TrickleServer::close_channel`].
    Deleted,
    /// No segment started for [`ServerConfig::idle_channel_timeout`].
    Idle,
}

/// What happens in the server, for tests and metrics ([`TrickleServer::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    ChannelCreated {
        channel: Arc<str>,
    },
    ChannelClosed {
        channel: Arc<str>,
        reason: CloseReason,
    },
    /// A publisher opened segment `seq` (its POST headers arrived, or a local writer was
    /// taken). Seen before the previous segment finishes when the publisher preconnects.
    PublisherConnected {
        channel: Arc<str>,
        seq: SeqNo,
    },
    /// A GET for segment `seq` (resolved from `-1`/`-2`) found it and waits for or streams it.
    SubscriberConnected {
        channel: Arc<str>,
        seq: SeqNo,
    },
    /// Segment `seq` received its first byte; the write head moved past it.
    SegmentStarted {
        channel: Arc<str>,
        seq: SeqNo,
    },
    /// A publisher's segment ended (finished, or dropped with what it had).
    SegmentEnded {
        channel: Arc<str>,
        seq: SeqNo,
        end: SegmentEnd,
        len_bytes: usize,
    },
}

/// The trickle server. Cheap to clone; every clone is the same server.
#[derive(Clone, Debug)]
pub struct TrickleServer {
    inner: Arc<ServerInner>,
}

#[derive(Debug)]
struct ServerInner {
    config: ServerConfig,
    channels: Mutex<HashMap<Arc<str>, Arc<Channel>>>,
    events: broadcast::Sender<ServerEvent>,
}

/// Room for events a slow [`TrickleServer::events`] receiver has not read yet.
const EVENT_CAPACITY: usize = 1024;

impl TrickleServer {
    /// A server with no channels. Inside a tokio runtime it also starts the idle-channel
    /// sweeper, which stops when the last clone of the server is dropped.
    pub fn new(config: ServerConfig) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let server = Self {
            inner: Arc::new(ServerInner {
                config,
                channels: Mutex::new(HashMap::new()),
                events,
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_idle_channels(
                Arc::downgrade(&server.inner),
                server.inner.config.sweep_interval,
            ));
        }
        server
    }

    /// The HTTP routes, relative to where the router is nested (go-livepeer nests them under
    /// `/ai/trickle`): `POST /{channel}`, `GET /{channel}/next`, `GET|POST|DELETE
    /// /{channel}/{seq}`, `DELETE /{channel}`.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Creates a channel; creating an existing one is a no-op, as go-livepeer's
    /// `CreateChannel`.
    pub fn create_channel(&self, name: &str) -> Result<(), Refusal> {
        self.get_or_create(name).map(|_| ())
    }

    /// Closes a channel: its readers see the end, its publishers get `Lp-Trickle-Closed`.
    pub fn close_channel(&self, name: &str) -> Result<(), Refusal> {
        self.close(name, CloseReason::Deleted)
    }

    /// Whether the channel exists and is open.
    pub fn has_channel(&self, name: &str) -> bool {
        self.open_channel(name).is_some()
    }

    /// Names of the open channels.
    pub fn channel_names(&self) -> Vec<String> {
        self.inner
            .channels
            .lock()
            .values()
            .filter(|channel| !channel.is_closed())
            .map(|channel| channel.name().to_string())
            .collect()
    }

    /// Publishes to a channel in-process, seq 0 up, like an HTTP publisher.
    pub fn local_publisher(&self, channel: &str) -> LocalPublisher {
        LocalPublisher::new(self.clone(), channel)
    }

    /// Subscribes to a channel in-process from the next segment, like an HTTP subscriber.
    pub fn local_subscriber(&self, channel: &str) -> LocalSubscriber {
        LocalSubscriber::new(self.clone(), channel)
    }

    /// Every [`ServerEvent`] from now on. A receiver that lags more than a thousand events
    /// loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: ServerEvent) {
        // No receiver is the normal case outside tests.
        let _ = self.inner.events.send(event);
    }

    /// The channel, open or closed but still lingering.
    fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.inner.channels.lock().get(name).cloned()
    }

    fn open_channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.channel(name).filter(|channel| !channel.is_closed())
    }

    /// The channel a publisher writes to: created on the fly only with `autocreate`.
    fn channel_for_publish(&self, name: &str) -> Result<Arc<Channel>, Refusal> {
        match self.open_channel(name) {
            Some(channel) => Ok(channel),
            None if self.inner.config.autocreate => self.get_or_create(name),
            None => Err(Refusal::ChannelNotFound),
        }
    }

    fn get_or_create(&self, name: &str) -> Result<Arc<Channel>, Refusal> {
        if name.is_empty() || name.contains('/') {
            return Err(Refusal::InvalidChannelName(name.to_string()));
        }
        let channel = {
            let mut channels = self.inner.channels.lock();
            if let Some(channel) = channels.get(name).filter(|channel| !channel.is_closed()) {
                return Ok(channel.clone());
            }
            let max_channels = self.inner.config.max_channels;
            let open_channels = channels
                .values()
                .filter(|channel| !channel.is_closed())
                .count();
            if open_channels >= max_channels {
                return Err(Refusal::TooManyChannels { max_channels });
            }
            let name: Arc<str> = name.into();
            let channel = Arc::new(Channel::new(
                name.clone(),
                self.inner.config.segments_per_channel,
            ));
            channels.insert(name, channel.clone());
            channel
        };
        tracing::debug!(channel = %channel.name(), "trickle channel created");
        self.emit(ServerEvent::ChannelCreated {
            channel: channel.name().clone(),
        });
        Ok(channel)
    }

    fn close(&self, name: &str, reason: CloseReason) -> Result<(), Refusal> {
        let channel = self.open_channel(name).ok_or(Refusal::ChannelNotFound)?;
        channel.close();
        tracing::debug!(channel = %channel.name(), ?reason, "trickle channel closed");
        self.emit(ServerEvent::ChannelClosed {
            channel: channel.name().clone(),
            reason,
        });
        Ok(())
    }
}

/// Closes channels idle past the timeout, as go-livepeer's `sweepIdleChannels`.
async fn sweep_idle_channels(server: Weak<ServerInner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = server.upgrade() else {
            return;
        };
        let server = TrickleServer { inner };
        let config = &server.inner.config;
        let idle: Vec<Arc<str>> = {
            let mut channels = server.inner.channels.lock();
            channels.retain(|_, channel| {
                channel
                    .closed_at()
                    .is_none_or(|closed_at| closed_at.elapsed() <= config.closed_channel_linger)
            });
            channels
                .values()
                .filter(|channel| {
                    !channel.is_closed()
                        && channel.last_write().elapsed() > config.idle_channel_timeout
                })
                .map(|channel| channel.name().clone())
                .collect()
        };
        for name in idle {
            // A channel closed meanwhile is simply gone already.
            let _ = server.close(&name, CloseReason::Idle);
        }
    }
}
