//! One stream's upstream worker from attach to end: connection attempts, each a new output
//! generation, with backoff and a restart budget.
//!
//! | event | what the supervisor does |
//! |---|---|
//! | attach | spawned; returns at once, so the publisher's 201 never waits for the upstream |
//! | an attempt starts | a fresh output ring becomes the stream's next output generation, *before* the POST: viewers follow it without reconnecting, and the WHIP session asks its publisher for a keyframe, which is held until the connection can send it |
//! | offer built, POST answered, ICE, DTLS, first media out, first media back | logged with the elapsed time since the attempt started, recorded in the status |
//! | the attempt fails or ends (error, upstream close, media watchdog) | the upstream resource is DELETEd; after a backoff delay ([`Backoff`], reset after a healthy run) another attempt, while input keeps being held |
//! | more than `max_restarts` failures within `restart_window` | the stream is closed ([`Stream::close`](livegate_media::registry::Stream::close)) with the reason logged |
//! | the input closes (the publisher left) or the stream closes | the current attempt ends, the resource is DELETEd, the last output ring closed; the worker ends |

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livegate_media::registry::OutputSlot;
use livegate_media::ring::RingBuffer;
use livegate_media::Codec;
use livegate_pipeline::exec::Backoff;
use livegate_pipeline::supervise::monitor::spawn_monitor;
use livegate_pipeline::supervise::status::{StatusBoard, WorkerState};
use livegate_pipeline::supervise::RestartBudget;
use livegate_pipeline::upstream::UpstreamSpec;
use livegate_pipeline::{Supervision, WorkerJob};
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use tokio::sync::watch;

use crate::data_channel::DataRelay;
use crate::error::UpstreamError;
use crate::offer::{answer_sends, OfferSpec, OfferingPeer};
use crate::peer::{Borrowed, Connection, ConnectionEnd};
use crate::receive::MediaReceiver;
use crate::send::{InputFeed, InputRead};
use crate::status::{Phase, PhaseClock, UpstreamStatus};
use crate::whip_http::{self, UpstreamResource};
use crate::{StatusTable, UpstreamOptions};
use parking_lot::Mutex;

/// Everything one worker owns.
pub(crate) struct Worker {
    pub(crate) options: Arc<UpstreamOptions>,
    pub(crate) supervision: Supervision,
    pub(crate) http: reqwest::Client,
    pub(crate) spec: UpstreamSpec,
    pub(crate) job: WorkerJob,
    pub(crate) status: watch::Sender<UpstreamStatus>,
    /// The gateway's status board, where `GET /live/{stream}/status` finds the worker.
    pub(crate) board: Option<StatusBoard>,
    /// The connector's table of running workers, left when the worker ends.
    pub(crate) table: Arc<Mutex<StatusTable>>,
}

/// Why the worker ended.
enum Final {
    InputClosed,
    StreamClosed,
    BudgetExhausted(String),
}

/// What a wait that keeps holding the input gave.
enum Held<T> {
    Done(T),
    End(ConnectionEnd),
}

/// The state that outlives a connection.
struct Carry {
    feed: InputFeed,
    relay: DataRelay,
    slot: watch::Receiver<OutputSlot>,
}

impl Worker {
    pub(crate) async fn run(mut self) {
        let key = self.job.stream.key().to_string();
        let mut carry = Carry {
            feed: InputFeed::new(&self.job.input, self.options.max_held_bytes),
            relay: DataRelay::new(
                key.clone(),
                self.job.publisher_data.take(),
                self.options.max_pending_data_messages,
            ),
            slot: self.job.stream.subscribe_output(),
        };
        // The board's monitor reports the input and output rates; the watchdog is ours
        // (it knows a connection from a process), so the monitor gets no timeout.
        let entry = self.board.as_ref().map(|board| {
            let entry = board.register(self.job.stream.key(), "whip");
            let _monitor = spawn_monitor(
                self.job.stream.clone(),
                self.job.input.clone(),
                entry.clone(),
                None,
                None,
            );
            entry
        });
        let board = |change: &dyn Fn(&mut livegate_pipeline::supervise::status::WorkerStatus)| {
            if let Some(entry) = &entry {
                entry.update(change);
            }
        };
        let mut budget = RestartBudget::new(
            self.supervision.max_restarts,
            self.supervision.restart_window,
        );
        let mut next_delay = self.options.backoff.initial;
        let mut attempt = 0u32;
        let mut output: Arc<RingBuffer>;
        let ended = loop {
            attempt += 1;
            self.status.send_modify(|s| {
                s.attempts = attempt;
                s.reconnects = attempt - 1;
                s.connected = false;
                s.phases = Default::default();
            });
            board(&|s| {
                s.state = WorkerState::Starting;
                s.starts = u64::from(attempt);
                s.restarts = u64::from(attempt - 1);
            });
            let ring = RingBuffer::new(self.options.output_capacity_bytes);
            self.job.stream.set_output(ring.clone());
            carry.slot.borrow_and_update();
            output = ring.clone();
            if self.job.stream.is_closed() {
                break Final::StreamClosed;
            }
            let (error, ran) = match self.attempt(&key, attempt, &ring, &mut carry).await {
                ConnectionEnd::InputClosed => break Final::InputClosed,
                ConnectionEnd::StreamClosed => break Final::StreamClosed,
                ConnectionEnd::Failed(error) => (error, Duration::ZERO),
                ConnectionEnd::FailedAfter { error, ran } => (error, ran),
            };
            tracing::warn!(stream = %key, attempt, error = %error, ran_s = ran.as_secs(), "upstream connection ended");
            self.status
                .send_modify(|s| s.last_error = Some(error.to_string()));
            let watchdog = matches!(error, UpstreamError::NoMedia(_));
            board(&|s| {
                s.state = WorkerState::Restarting;
                s.watchdog_restarts += u64::from(watchdog);
            });

            if !budget.try_restart(tokio::time::Instant::now()) {
                break Final::BudgetExhausted(format!(
                    "{}; the last failure: {error}",
                    budget.exhausted_reason()
                ));
            }
            let delay = delay_after(&self.options.backoff, &mut next_delay, ran);
            tracing::info!(stream = %key, delay_ms = delay.as_millis() as u64, "reconnecting to the upstream");
            if let Held::End(end) = hold_while(tokio::time::sleep(delay), &mut carry).await {
                break match end {
                    ConnectionEnd::InputClosed => Final::InputClosed,
                    _ => Final::StreamClosed,
                };
            }
        };
        let reason = match ended {
            Final::InputClosed => {
                // The viewers drain what was written and wait for the next publisher.
                output.close();
                "the input closed (the publisher left)".to_owned()
            }
            Final::StreamClosed => "the stream closed or another worker took its output".to_owned(),
            Final::BudgetExhausted(reason) => {
                tracing::error!(stream = %key, reason = %reason, "closing the stream: the upstream keeps failing");
                board(&|s| {
                    s.state = WorkerState::Failed;
                    s.failure = Some(reason.clone());
                });
                self.job.stream.close();
                reason
            }
        };
        tracing::info!(stream = %key, attempts = attempt, reason = %reason, "upstream worker ended");
        // Out of the table first, so whoever sees `ended` finds it gone.
        {
            let mut table = self.table.lock();
            let mine = self.status.subscribe();
            if table
                .get(&key)
                .is_some_and(|entry| entry.same_channel(&mine))
            {
                table.remove(&key);
            }
        }
        self.status.send_modify(|s| {
            s.connected = false;
            s.ended = Some(reason);
        });
    }

    /// One connection: offer, POST, run, DELETE.
    async fn attempt(
        &self,
        key: &str,
        attempt: u32,
        output: &Arc<RingBuffer>,
        carry: &mut Carry,
    ) -> ConnectionEnd {
        let started = Instant::now();
        let phases = PhaseClock::new(started);
        let endpoint =
            match whip_http::endpoint(&self.spec.url_for(key), self.job.params_json.as_deref()) {
                Ok(endpoint) => endpoint,
                Err(e) => return ConnectionEnd::Failed(e),
            };
        let bind = match self.bind_addr(&endpoint).await {
            Ok(bind) => bind,
            Err(e) => return ConnectionEnd::Failed(e),
        };
        let offer_spec = OfferSpec {
            bind,
            tracks: vec![Codec::H264, Codec::Opus],
            direction: RTCRtpTransceiverDirection::Sendrecv,
            h264_profile_level_id: self.options.h264_profile_level_id.clone(),
            data_channel: Some(self.options.data_channel_label.clone()),
            dtls_passive: self.options.dtls_passive,
            ice_check_interval: self.options.ice_check_interval,
            stream_id: key.to_owned(),
        };
        let mut peer = match OfferingPeer::bind(&offer_spec).await {
            Ok(peer) => peer,
            Err(e) => return ConnectionEnd::Failed(e),
        };
        let offer = match peer.offer() {
            Ok(offer) => offer,
            Err(e) => return ConnectionEnd::Failed(e),
        };
        phases.reached(Phase::OfferBuilt, key, attempt, &self.status);

        let token = self.options.bearer_token.as_deref();
        let post = whip_http::post_offer(
            &self.http,
            &endpoint,
            offer,
            token,
            self.options.request_timeout,
        );
        let (answer, resource) = match hold_while(post, carry).await {
            Held::Done(Ok(answered)) => answered,
            Held::Done(Err(e)) => return ConnectionEnd::Failed(e),
            Held::End(end) => return end,
        };
        phases.reached(Phase::PostAnswered, key, attempt, &self.status);
        tracing::debug!(stream = key, answer = %answer, "the upstream's answer");

        let end = match self.connect(key, peer.apply_answer(answer.clone()), &answer, output) {
            Err(e) => ConnectionEnd::Failed(e),
            Ok(receiver) => {
                let borrowed = Borrowed {
                    stream: key,
                    live_stream: &self.job.stream,
                    attempt,
                    phases: &phases,
                    status: &self.status,
                    feed: &mut carry.feed,
                    relay: &mut carry.relay,
                    slot: &mut carry.slot,
                    output,
                    connect_deadline: started + self.options.connect_timeout,
                    connect_timeout: self.options.connect_timeout,
                    out_timeout: self.supervision.out_timeout,
                };
                Connection::new(peer, receiver, borrowed).run().await
            }
        };
        self.delete(key, &resource).await;
        end
    }

    fn connect(
        &self,
        key: &str,
        applied: Result<(), UpstreamError>,
        answer: &str,
        output: &Arc<RingBuffer>,
    ) -> Result<MediaReceiver, UpstreamError> {
        applied?;
        let sends = answer_sends(answer);
        if sends.is_empty() {
            tracing::warn!(
                stream = key,
                "the upstream's answer sends no media back: the stream gets no output"
            );
        }
        Ok(MediaReceiver::new(
            self.options.ingest.clone(),
            &sends,
            output.clone(),
        )?)
    }

    async fn delete(&self, key: &str, resource: &UpstreamResource) {
        let token = self.options.bearer_token.as_deref();
        match whip_http::delete(&self.http, resource, token, self.options.delete_timeout).await {
            Ok(Some(status)) => tracing::debug!(stream = key, status, "upstream resource deleted"),
            Ok(None) => {}
            Err(e) => {
                tracing::info!(stream = key, error = %e, "upstream DELETE failed; its own timeouts will reap the session")
            }
        }
    }

    /// The socket address for the connection: the configured one, else this host's address
    /// towards the upstream (a connected UDP socket sends nothing), port chosen by the OS.
    async fn bind_addr(&self, endpoint: &reqwest::Url) -> Result<SocketAddr, UpstreamError> {
        if let Some(bind) = self.options.bind {
            return Ok(bind);
        }
        let url_error = |reason: String| UpstreamError::Url {
            url: endpoint.to_string(),
            reason,
        };
        let host = endpoint
            .host_str()
            .ok_or_else(|| url_error("no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = endpoint.port_or_known_default().unwrap_or(80);
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| url_error("no address".to_owned()))?;
        let unspecified: std::net::IpAddr = match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
        probe.connect(target)?;
        Ok(SocketAddr::new(probe.local_addr()?.ip(), 0))
    }
}

/// The delay before the next attempt: doubling from `initial` up to `max`, back to
/// `initial` after a run of at least `healthy_after`.
fn delay_after(policy: &Backoff, next: &mut Duration, ran: Duration) -> Duration {
    if ran >= policy.healthy_after {
        *next = policy.initial;
    }
    let delay = (*next).min(policy.max);
    *next = delay.saturating_mul(2).min(policy.max);
    delay
}

/// Awaits `future` while the input keeps being read into the hold queue, publisher
/// messages keep being queued, and the stream is watched: ends early if either closes.
async fn hold_while<F: Future>(future: F, carry: &mut Carry) -> Held<F::Output> {
    tokio::pin!(future);
    let mut units = Vec::new();
    loop {
        let relay_ready = carry.relay.wants_publisher_message(false);
        tokio::select! {
            biased;
            changed = carry.slot.changed() => {
                let closed = changed.is_err() || carry.slot.borrow_and_update().closed;
                if closed {
                    return Held::End(ConnectionEnd::StreamClosed);
                }
                // Another worker's output would end the connection once it runs; a new
                // generation during a POST is handled there.
            }
            read = carry.feed.read(&mut units) => {
                for au in units.drain(..) {
                    carry.feed.hold(au);
                }
                if read == InputRead::Closed {
                    return Held::End(ConnectionEnd::InputClosed);
                }
            }
            message = carry.relay.next_publisher_message(), if relay_ready => {
                if let Some(message) = message {
                    carry.relay.queue(message);
                }
            }
            output = &mut future => return Held::Done(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_to_its_cap_and_resets_after_a_healthy_run() {
        let policy = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            healthy_after: Duration::from_secs(10),
        };
        let mut next = policy.initial;
        let delays: Vec<u128> = (0..5)
            .map(|_| delay_after(&policy, &mut next, Duration::ZERO).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert_eq!(
            delay_after(&policy, &mut next, Duration::from_secs(10)),
            policy.initial
        );
    }
}
