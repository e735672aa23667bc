//! The upstream worker against a real livegate WHIP server (passthrough, which echoes the
//! publisher's data channel and, once answered `sendrecv`, its media) behind a WHIP endpoint
//! the test controls: it holds offers until released and can end a session behind the
//! worker's back. The stream's input is a fixture played in real time, as a publisher's
//! would be; the publisher's data channel is the worker's end of the seam's queue pair.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use livegate_media::registry::{Stream, StreamRegistry};
use livegate_media::ring::{ReadOutcome, RingBuffer};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{Codec, StreamKey};
use livegate_pipeline::file_source::{FileSource, FileSourceSpec};
use livegate_pipeline::upstream::{UpstreamConnector, UpstreamSpec};
use livegate_pipeline::{data_channel_pair, Pipeline, WorkerJob};
use livegate_rtc::{RtcConfig, RtcServer};
use livegate_upstream::{UpstreamOptions, UpstreamStatus, WhipUpstream};
use livegate_whep::{OutputConfig, StreamOutputs};
use livegate_whip::auth::AuthRequest;
use livegate_whip::{WhipConfig, WhipMetrics, WhipServer};
use livegate_wish::{ResourceId, SessionResource};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

/// Longest any single wait may take on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// The upstream: a livegate WHIP server, passthrough, behind our own endpoint.
struct Upstream {
    url: String,
    server: WhipServer,
    posts: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
    sessions: Arc<Mutex<Vec<(StreamKey, ResourceId)>>>,
    deletes: Arc<Mutex<u32>>,
}

#[derive(Clone)]
struct EndpointState {
    server: WhipServer,
    posts: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
    sessions: Arc<Mutex<Vec<(StreamKey, ResourceId)>>>,
    deletes: Arc<Mutex<u32>>,
}

impl Upstream {
    async fn start() -> Upstream {
        Upstream::start_with(Pipeline::Passthrough).await
    }

    /// An upstream whose streams go through `pipeline` before they are echoed.
    async fn start_with(pipeline: Pipeline) -> Upstream {
        let rtc = RtcServer::bind(RtcConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let config = WhipConfig {
            // A sendrecv publisher gets its stream's output back: passthrough's, its own media.
            echo: Some(StreamOutputs::new(OutputConfig::default()).unwrap()),
            ..WhipConfig::default()
        };
        let server = WhipServer::new(
            config,
            StreamRegistry::new(),
            pipeline,
            rtc,
            WhipMetrics::unregistered(),
        );
        let (posts_tx, posts) = mpsc::unbounded_channel();
        let state = EndpointState {
            server: server.clone(),
            posts: posts_tx,
            gate: Arc::new(Semaphore::new(0)),
            sessions: Arc::new(Mutex::new(Vec::new())),
            deletes: Arc::new(Mutex::new(0)),
        };
        let (gate, sessions, deletes) = (
            state.gate.clone(),
            state.sessions.clone(),
            state.deletes.clone(),
        );
        let app = Router::new()
            .route("/live/{stream}/whip", post(offer))
            .route("/live/{stream}/whip/{id}", delete(end))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/live/{{stream}}/whip",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream {
            url,
            server,
            posts,
            gate,
            sessions,
            deletes,
        }
    }

    async fn wait_post(&mut self) {
        tokio::time::timeout(DEADLINE, self.posts.recv())
            .await
            .expect("the worker POSTs an offer in time")
            .unwrap();
    }

    /// Ends the newest session on the upstream's side (as a crash or restart of the AI
    /// service would): its peer connection is closed with a DTLS close_notify.
    async fn drop_session(&self) {
        let (key, id) = self.sessions.lock().last().cloned().unwrap();
        assert!(self.server.stop(&key, id).await);
    }
}

async fn offer(
    State(state): State<EndpointState>,
    Path(stream): Path<String>,
    body: String,
) -> Response {
    let _ = state.posts.send(());
    state.gate.acquire().await.unwrap().forget();
    let key = StreamKey::parse(&stream).unwrap();
    match state
        .server
        .publish(key.clone(), body, AuthRequest::whip(&key))
        .await
    {
        Ok(published) => {
            state.sessions.lock().push((key, published.id));
            let location = format!("/live/{stream}/whip/{}", published.id);
            (
                StatusCode::CREATED,
                [
                    ("location", location),
                    ("content-type", "application/sdp".to_owned()),
                ],
                published.answer,
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn end(
    State(state): State<EndpointState>,
    Path((stream, id)): Path<(String, String)>,
) -> StatusCode {
    *state.deletes.lock() += 1;
    let key = StreamKey::parse(&stream).unwrap();
    match id.parse::<ResourceId>() {
        Ok(id) if state.server.stop(&key, id).await => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

fn fixture() -> std::path::PathBuf {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/h264-baseline-opus.ts"
    )
    .into()
}

/// A stream `key` whose input is the fixture in a loop, in real time: a file source plays
/// it as another stream's output, and a task copies that into `key`'s input.
async fn live_stream(key: &str, shutdown: &CancellationToken) -> Arc<Stream> {
    let registry = StreamRegistry::new();
    let source = FileSource::load(&FileSourceSpec {
        key: StreamKey::parse("source").unwrap(),
        path: fixture(),
    })
    .await
    .unwrap();
    tokio::spawn(source.run(registry.clone(), shutdown.clone()));
    let stream = registry.create(StreamKey::parse(key).unwrap()).unwrap();
    let input = stream.input().clone();
    tokio::spawn(async move {
        let source = StreamKey::parse("source").unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let (_, ring) = registry.wait_for_output(&source, deadline).await.unwrap();
        let mut reader = ring.reader_from_oldest();
        loop {
            match reader.read().await {
                ReadOutcome::Chunk(chunk) => {
                    if input.write(chunk).is_err() {
                        break;
                    }
                }
                ReadOutcome::Lagged { .. } => {}
                ReadOutcome::Closed => break,
            }
        }
    });
    stream
}

/// Video access units of an output generation, counted as they are written, until `n`.
async fn video_frames(ring: &Arc<RingBuffer>, n: usize) -> (usize, bool) {
    let mut reader = ring.reader_from_oldest();
    let (mut demuxer, mut events) = (Demuxer::new(), Vec::new());
    let (mut frames, mut first_is_keyframe) = (0, None);
    while frames < n {
        match tokio::time::timeout(DEADLINE, reader.read())
            .await
            .expect("the output grows in time")
        {
            ReadOutcome::Chunk(chunk) => demuxer.push(&chunk, &mut events),
            ReadOutcome::Lagged { .. } => {}
            ReadOutcome::Closed => break,
        }
        for event in events.drain(..) {
            if let DemuxEvent::AccessUnit(au) = event {
                if au.codec == Codec::H264 {
                    first_is_keyframe.get_or_insert(au.keyframe);
                    frames += 1;
                }
            }
        }
    }
    (frames, first_is_keyframe.unwrap_or(false))
}

async fn wait_status(
    status: &mut watch::Receiver<UpstreamStatus>,
    what: &str,
    until: impl FnMut(&UpstreamStatus) -> bool,
) -> UpstreamStatus {
    let reached = tokio::time::timeout(DEADLINE, status.wait_for(until))
        .await
        .map(|seen| seen.unwrap().clone());
    reached.unwrap_or_else(|_| panic!("{what}: {:?}", status.borrow()))
}

/// The worker's logs (its start-up phases) on the test's output; `RUST_LOG` refines them.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "livegate_upstream=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

fn options() -> UpstreamOptions {
    UpstreamOptions {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..UpstreamOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_before_the_upstream_answers_come_back_in_order_across_a_reconnection() {
    logs();
    let shutdown = CancellationToken::new();
    let mut upstream = Upstream::start().await;
    let stream = live_stream("cam", &shutdown).await;
    let (mut publisher, worker_end) = data_channel_pair();
    let job = WorkerJob {
        publisher_data: Some(worker_end),
        ..WorkerJob::new(stream.clone(), stream.input().clone())
    };
    let connector = WhipUpstream::new(options());
    connector.attach(&UpstreamSpec::parse(&upstream.url).unwrap(), job);
    let mut status = connector.subscribe("cam").unwrap();

    // The publisher talks at once; the upstream has not even been asked yet.
    const EARLY: usize = 20;
    let message = |i: usize| Bytes::from(format!("{{\"seq\":{i}}}"));
    for i in 0..EARLY {
        publisher.to_worker.send(message(i)).await.unwrap();
    }
    upstream.wait_post().await;
    let before = connector.status("cam").unwrap();
    assert!(!before.connected, "{before:?}");
    assert!(before.phases.offer_built_ms.is_some(), "{before:?}");
    assert_eq!(before.phases.post_answered_ms, None);
    assert_eq!(before.attempts, 1);
    let first_output = stream
        .output()
        .expect("the attempt installed its output first");

    upstream.gate.add_permits(1);
    for i in 0..EARLY {
        assert_eq!(echo(&mut publisher).await, message(i), "message {i}");
    }
    let up = wait_status(&mut status, "connected", |s| s.connected).await;
    for (name, phase) in [
        ("post_answered", up.phases.post_answered_ms),
        ("ice_connected", up.phases.ice_connected_ms),
        ("dtls_connected", up.phases.dtls_connected_ms),
    ] {
        assert!(phase.is_some(), "{name}: {up:?}");
    }
    assert!(up.phases.ice_connected_ms <= up.phases.dtls_connected_ms);
    assert_eq!(up.data_messages_pending, 0);
    // Held input goes out once connected.
    let sent = wait_status(&mut status, "media sent", |s| {
        s.phases.first_media_sent_ms.is_some()
    })
    .await;
    assert!(sent.phases.first_media_sent_ms >= sent.phases.dtls_connected_ms);

    // Messages after the channel opened go straight through, still in order.
    publisher.to_worker.send(message(EARLY)).await.unwrap();
    assert_eq!(echo(&mut publisher).await, message(EARLY));

    // The upstream drops the session: the worker reconnects in a new output generation,
    // and the publisher's messages flow again on the new connection's channel.
    upstream.drop_session().await;
    upstream.gate.add_permits(1);
    let again = wait_status(&mut status, "reconnected", |s| {
        s.reconnects == 1 && s.connected
    })
    .await;
    assert!(again.last_error.is_some(), "{again:?}");
    let second_output = stream.output().unwrap();
    assert!(!Arc::ptr_eq(&first_output, &second_output));
    assert!(first_output.is_closed(), "the old generation was closed");
    publisher.to_worker.send(message(EARLY + 1)).await.unwrap();
    assert_eq!(echo(&mut publisher).await, message(EARLY + 1));

    // The publisher leaves: the worker ends, DELETEs its session and closes its output.
    stream.input().close();
    let ended = wait_status(&mut status, "ended", |s| s.ended.is_some()).await;
    assert!(!ended.connected);
    assert!(second_output.is_closed());
    assert!(*upstream.deletes.lock() >= 2, "one DELETE per connection");
    assert!(
        connector.status("cam").is_none(),
        "an ended worker leaves the table"
    );
    shutdown.cancel();
}

async fn echo(publisher: &mut livegate_pipeline::PublisherDataChannel) -> Bytes {
    tokio::time::timeout(DEADLINE, publisher.from_worker.recv())
        .await
        .expect("the echo comes back in time")
        .expect("the worker keeps the channel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_keeps_refusing_closes_the_stream_after_the_restart_budget() {
    logs();
    let shutdown = CancellationToken::new();
    // An endpoint that refuses every offer, counting them.
    let refusals = Arc::new(Mutex::new(0u32));
    let counted = refusals.clone();
    let app = Router::new().route(
        "/live/{stream}/whip",
        post(move || {
            let counted = counted.clone();
            async move {
                *counted.lock() += 1;
                (StatusCode::SERVICE_UNAVAILABLE, "no GPU free")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/live/{{stream}}/whip",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let stream = live_stream("refused", &shutdown).await;
    let mut slot = stream.subscribe_output();
    let connector = WhipUpstream::new(UpstreamOptions {
        backoff: livegate_pipeline::exec::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            healthy_after: Duration::from_secs(30),
        },
        ..options()
    })
    .with_supervision(livegate_pipeline::Supervision {
        out_timeout: Some(Duration::from_secs(5)),
        max_restarts: 3,
        restart_window: Duration::from_secs(60),
    });
    connector.attach(
        &UpstreamSpec::parse(&url).unwrap(),
        WorkerJob::new(stream.clone(), stream.input().clone()),
    );
    let mut status = connector.subscribe("refused").unwrap();

    tokio::time::timeout(DEADLINE, slot.wait_for(|s| s.closed))
        .await
        .expect("the stream is closed in time")
        .unwrap();
    let ended = wait_status(&mut status, "ended", |s| s.ended.is_some()).await;
    // The first attempt and three restarts, then the budget is spent.
    assert_eq!(*refusals.lock(), 4);
    assert_eq!((ended.attempts, ended.reconnects), (4, 3));
    let reason = ended.ended.unwrap();
    assert!(reason.contains("more than 3 restarts"), "{reason}");
    assert!(ended.last_error.unwrap().contains("503"));
    assert!(stream.is_closed());
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_media_becomes_each_connections_output_generation() {
    logs();
    let shutdown = CancellationToken::new();
    let upstream = Upstream::start().await;
    upstream.gate.add_permits(2);
    let stream = live_stream("echoed", &shutdown).await;
    let connector = WhipUpstream::new(options());
    connector.attach(
        &UpstreamSpec::parse(&upstream.url).unwrap(),
        WorkerJob::new(stream.clone(), stream.input().clone()),
    );
    let mut status = connector.subscribe("echoed").unwrap();

    // The processed media (here the publisher's own, echoed) comes back into the output
    // generation the connection installed, starting at a keyframe.
    let first_output = stream.next_output(None).await.unwrap();
    let (frames, keyframe_first) = video_frames(&first_output, 30).await;
    assert_eq!(frames, 30);
    assert!(keyframe_first);
    let media = wait_status(&mut status, "media both ways", |s| {
        s.phases.first_media_received_ms.is_some()
    })
    .await;
    assert!(media.phases.first_media_sent_ms <= media.phases.first_media_received_ms);
    println!("start-up phases: {:?}", media.phases);

    // The upstream drops the session: the next connection's media is the next generation.
    upstream.drop_session().await;
    let second_output = stream.next_output(Some(&first_output)).await.unwrap();
    let (frames, keyframe_first) = video_frames(&second_output, 15).await;
    assert_eq!(frames, 15);
    assert!(keyframe_first);
    let again = connector.status("echoed").unwrap();
    assert_eq!((again.reconnects, again.connected), (1, true), "{again:?}");

    stream.close();
    wait_status(&mut status, "ended", |s| s.ended.is_some()).await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_sends_nothing_back_while_input_flows_is_reconnected() {
    logs();
    let shutdown = CancellationToken::new();
    // It answers sendrecv, but its worker swallows the input and writes nothing.
    let upstream = Upstream::start_with("exec:sh -c 'cat >/dev/null'".parse().unwrap()).await;
    upstream.gate.add_permits(2);
    let stream = live_stream("silent", &shutdown).await;
    let out_timeout = Duration::from_millis(800);
    let connector = WhipUpstream::new(options()).with_supervision(livegate_pipeline::Supervision {
        out_timeout: Some(out_timeout),
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
    });
    connector.attach(
        &UpstreamSpec::parse(&upstream.url).unwrap(),
        WorkerJob::new(stream.clone(), stream.input().clone()),
    );
    let mut status = connector.subscribe("silent").unwrap();

    let sent = wait_status(&mut status, "media sent", |s| {
        s.phases.first_media_sent_ms.is_some()
    })
    .await;
    assert_eq!(sent.phases.first_media_received_ms, None);
    let reconnected =
        wait_status(&mut status, "watchdog reconnection", |s| s.reconnects == 1).await;
    let error = reconnected.last_error.unwrap();
    assert!(error.contains("no media from the upstream"), "{error}");

    stream.close();
    wait_status(&mut status, "ended", |s| s.ended.is_some()).await;
    shutdown.cancel();
}
