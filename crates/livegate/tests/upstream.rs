//! The `whip:<url>` pipeline end to end: gateway A publishes each stream to gateway B (the
//! "upstream", here `passthrough`) as a WHIP client. Between them a small HTTP proxy holds
//! A's offer until the test releases it, so the test can prove A answered its publisher
//! before the upstream was reached, and can cut the upstream session to see A reconnect.

// livegate-whip's independent publisher (webrtc crate), which has a data channel; shared by
// path rather than copied.
#[path = "../../livegate-whip/tests/peer/mod.rs"]
mod peer;
mod whip_common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use whip_common::*;

const FIXTURE: &str = "h264-baseline-opus.ts";

/// A reverse proxy to B that holds each POST until [`Proxy::release`] and remembers the
/// `Location` B gave, so a test can DELETE the upstream session behind A's back.
struct Proxy {
    base: String,
    posts: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
    locations: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    posts: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
    locations: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let (posts_tx, posts) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(0));
        let locations = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            posts: posts_tx,
            gate: gate.clone(),
            locations: locations.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy {
            base,
            posts,
            gate,
            locations,
        }
    }

    /// Lets `n` held (or future) POSTs through.
    fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    async fn wait_post(&mut self) {
        tokio::time::timeout(DEADLINE, self.posts.recv())
            .await
            .expect("A POSTs its offer in time")
            .unwrap();
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::POST {
        let _ = state.posts.send(());
        state.gate.acquire().await.unwrap().forget();
    }
    let url = format!("{}{}", state.upstream, uri);
    let mut request = state.http.request(method, url).body(body);
    if let Some(content_type) = headers.get("content-type") {
        request = request.header("content-type", content_type.as_bytes());
    }
    let Ok(response) = request.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let mut out = HeaderMap::new();
    for name in ["content-type", "location", "etag"] {
        if let Some(value) = response.headers().get(name) {
            out.insert(name, value.as_bytes().try_into().unwrap());
        }
    }
    if let Some(location) = response.headers().get("location") {
        state
            .locations
            .lock()
            .push(location.to_str().unwrap().to_owned());
    }
    let body = response.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_is_answered_before_the_upstream_and_its_media_reaches_it() {
    let (upstream, upstream_base) = gateway(&[]).await;
    let mut proxy = Proxy::start(&upstream_base).await;
    let pipeline = format!("whip:{}/live/{{stream}}/whip", proxy.base);
    let (gateway_a, base_a) = gateway(&["--pipeline", &pipeline]).await;

    // The publisher's 201 (and its connection) come while A's offer is still held: the
    // upstream has not even seen it.
    let publisher = publish(&base_a, "cam", &publish_options(FIXTURE).await).await;
    proxy.wait_post().await;
    assert_eq!(
        metric(&upstream_base, "livegate_whip_publishers_active").await,
        Some(0.0),
        "B has no session while A's offer is held"
    );
    publisher
        .wait_video_frames_sent(15, DEADLINE)
        .await
        .unwrap();

    // Released, the offer reaches B; the publisher's media flows through A to B, where a
    // viewer of B plays it.
    let released_at = Instant::now();
    proxy.release(1);
    let viewer = play(&upstream_base, "cam").await;
    viewer.wait_connected(DEADLINE).await.unwrap();
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();
    let stats = viewer.stats();
    assert!(stats.video.keyframes >= 1, "{stats:?}");
    println!(
        "B's viewer had 30 frames {:?} after the offer was released",
        released_at.elapsed()
    );
    assert_eq!(proxy.locations.lock().len(), 1);

    viewer.close().await;
    publisher.disconnect().await;
    assert!(gateway_a.shutdown(Duration::from_secs(5)).await);
    assert!(upstream.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_of_a_plays_the_upstreams_media_and_keeps_playing_across_a_reconnection() {
    // B sends each publisher's stream back when it offers sendrecv, as an AI service would.
    let (upstream, upstream_base) = gateway(&["--whip-echo", "true"]).await;
    let proxy = Proxy::start(&upstream_base).await;
    proxy.release(2);
    let pipeline = format!("whip:{}/live/{{stream}}/whip", proxy.base);
    let (gateway_a, base_a) = gateway(&["--pipeline", &pipeline]).await;

    let publisher = publish(&base_a, "cam", &publish_options(FIXTURE).await).await;
    let viewer = play(&base_a, "cam").await;
    viewer.wait_connected(DEADLINE).await.unwrap();
    viewer.wait_video_frames(30, DEADLINE).await.unwrap();
    let running = wait_status(&base_a, "cam", "running", |s| {
        s["worker"]["state"] == "running"
    })
    .await;
    assert_eq!(running["worker"]["pipeline"], "whip");
    let generation = running["output_generation"].as_u64().unwrap();
    let keyframe_requests = "livegate_whip_keyframe_requests_total";
    let requests_before = metric(&base_a, keyframe_requests).await.unwrap_or(0.0);

    // The upstream ends the session behind A's back (a restarted AI service would).
    let location = proxy.locations.lock()[0].clone();
    let deleted = reqwest::Client::new()
        .delete(format!("{upstream_base}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let frames_before = viewer.stats().video.frames;

    let after = wait_status(&base_a, "cam", "reconnected", |s| {
        s["worker"]["restarts"] == 1 && s["worker"]["state"] == "running"
    })
    .await;
    assert_eq!(
        after["output_generation"].as_u64().unwrap(),
        generation + 1,
        "each connection is an output generation"
    );
    viewer
        .wait_video_frames(frames_before + 45, DEADLINE)
        .await
        .expect("frames resume from the new connection");
    assert!(viewer.closed_reason().is_none(), "the viewer stayed");
    // The new generation made A's WHIP session ask its publisher for a keyframe.
    assert!(metric(&base_a, keyframe_requests).await.unwrap_or(0.0) > requests_before);

    let log = viewer.stats().video.frame_log;
    let backwards: Vec<_> = log
        .windows(2)
        .filter(|pair| (pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp) as i32) <= 0)
        .collect();
    assert!(
        backwards.is_empty(),
        "RTP timestamps went backwards: {backwards:?}"
    );
    assert!(log.iter().filter(|f| f.is_keyframe()).count() >= 2);

    viewer.close().await;
    publisher.disconnect().await;
    assert!(gateway_a.shutdown(Duration::from_secs(5)).await);
    assert!(upstream.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_messages_sent_before_the_upstream_is_reached_come_back_in_order() {
    let (upstream, upstream_base) = gateway(&[]).await;
    let mut proxy = Proxy::start(&upstream_base).await;
    let pipeline = format!("whip:{}/live/{{stream}}/whip", proxy.base);
    let (gateway_a, base_a) = gateway(&["--pipeline", &pipeline]).await;

    let mut publisher = peer::Publisher::new(
        webrtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly,
        Some("control"),
    )
    .await;
    let offer = publisher.offer().await;
    let response = reqwest::Client::new()
        .post(format!("{base_a}/live/chat/whip"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    publisher.apply_answer(response.text().await.unwrap()).await;
    publisher.connected().await;
    let channel = publisher.data_channel_open().await;

    // A is still waiting for the upstream's answer when these go out.
    proxy.wait_post().await;
    const MESSAGES: usize = 50;
    for i in 0..MESSAGES {
        channel
            .send_text(&format!("{{\"seq\":{i}}}"))
            .await
            .unwrap();
    }
    proxy.release(1);
    for i in 0..MESSAGES {
        assert_eq!(
            publisher.next_message().await,
            Bytes::from(format!("{{\"seq\":{i}}}")),
            "message {i}"
        );
    }

    publisher.close().await;
    assert!(gateway_a.shutdown(Duration::from_secs(5)).await);
    assert!(upstream.shutdown(Duration::from_secs(5)).await);
}
