//! Cluster mode against a real `redis-server` on loopback: origin claims, the node registry,
//! recovery after a Redis restart, and edge pulls between two in-process nodes over HTTP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livegate_cluster::testing::RedisServer;
use livegate_cluster::{Cluster, ClusterConfig, ClusterView};
use livegate_media::registry::StreamRegistry;
use livegate_media::ring::{ReadOutcome, RingBuffer};
use livegate_media::StreamKey;
use livegate_whep::{Attachment, RemoteLease};
use livegate_whip::{ClaimError, OriginClaim};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Longest any wait of these tests may take on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);
/// Short, so renewals and expiries happen within a test.
const TTL: Duration = Duration::from_secs(2);
const SECRET: &str = "s3cret";

struct Node {
    cluster: Cluster,
    registry: StreamRegistry,
    metrics: prometheus::Registry,
    url: String,
    server: JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Node {
    async fn start(redis: &RedisServer) -> Node {
        Node::start_with(redis, false).await
    }

    async fn start_with(redis: &RedisServer, redirect: bool) -> Node {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let registry = StreamRegistry::new();
        let metrics = prometheus::Registry::new();
        let config = ClusterConfig {
            redis_url: redis.url(),
            node_url: url.clone(),
            secret: SECRET.into(),
            redirect,
            ttl: TTL,
            republish_grace: Duration::from_millis(500),
        };
        let cluster = Cluster::start(config, registry.clone(), &metrics).unwrap();
        let router = cluster.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Node {
            cluster,
            registry,
            metrics,
            url,
            server,
        }
    }

    async fn claim(&self, stream: &str, replace: bool) -> Result<OriginClaim, ClaimError> {
        self.cluster
            .origin_claims()
            .claim(&key(stream), replace)
            .await
    }

    async fn attach(&self, stream: &str) -> Attachment {
        self.cluster
            .remote_streams()
            .attach(&key(stream), Instant::now() + DEADLINE)
            .await
            .unwrap()
    }

    fn metric(&self, name: &str) -> f64 {
        self.metrics
            .gather()
            .iter()
            .find(|family| family.name() == name)
            .map(|family| {
                let metric = &family.get_metric()[0];
                if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                    metric.get_counter().value()
                } else {
                    metric.get_gauge().value()
                }
            })
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

fn key(s: &str) -> StreamKey {
    StreamKey::parse(s).unwrap()
}

/// Polls `check` (a state in Redis or in another node, which no event announces here)
/// until it holds, for at most [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn view(node: &Node) -> ClusterView {
    node.cluster.view().await.unwrap()
}

#[tokio::test]
async fn one_origin_per_key_idle_takeover_replace_and_release() {
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);

    let first = a.claim("cam", false).await.unwrap();
    match b.claim("cam", false).await {
        Err(ClaimError::Taken { node, .. }) => assert_eq!(node, a.url),
        other => panic!("B claimed A's live stream: {other:?}"),
    }
    // A republish on the node that holds it is its own business.
    let second = a.claim("cam", false).await.unwrap();
    drop(first);
    assert!(matches!(
        b.claim("cam", false).await,
        Err(ClaimError::Taken { .. })
    ));

    // The publisher left A (its grace): B may take the stream without `replace`, and A
    // learns it lost it.
    second.set_idle(true);
    let lost = second.lost();
    let deadline = Instant::now() + DEADLINE;
    let on_b = loop {
        match b.claim("cam", false).await {
            Ok(claim) => break claim,
            Err(e) => assert!(
                Instant::now() < deadline,
                "B never took the idle stream: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::timeout(DEADLINE, lost.cancelled())
        .await
        .expect("A learns within a renewal that B took the stream");
    assert_eq!(a.metric("livegate_cluster_claims_lost_total"), 1.0);
    drop(second);

    // `replace` takes a live stream.
    let replaced = a.claim("cam", true).await.unwrap();
    tokio::time::timeout(DEADLINE, on_b.lost().cancelled())
        .await
        .expect("B learns that A replaced it");
    assert_eq!(view(&b).await.origins[0].node, a.cluster.node_id());

    // Dropping the last handle releases the key at once, not after the TTL.
    drop(on_b);
    drop(replaced);
    eventually("the key is released", || async {
        view(&b).await.origins.is_empty()
    })
    .await;
    b.claim("cam", false).await.unwrap();
}

#[tokio::test]
async fn the_registry_lists_live_nodes_and_forgets_one_that_leaves() {
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let _claim = a.claim("cam", false).await.unwrap();
    eventually("both nodes heartbeat", || async {
        view(&b).await.nodes.len() == 2 && b.metric("livegate_cluster_nodes") == 2.0
    })
    .await;
    let seen = view(&b).await;
    let node_a = seen.nodes.iter().find(|n| n.url == a.url).unwrap();
    assert_eq!(node_a.origins, vec!["cam".to_owned()]);
    assert_eq!(b.metric("livegate_cluster_redis_up"), 1.0);

    a.cluster.shutdown().await;
    let seen = view(&b).await;
    assert_eq!(seen.nodes.len(), 1, "{seen:?}");
    assert!(seen.origins.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn a_redis_restart_stops_new_work_then_nodes_and_claims_come_back() {
    let redis = RedisServer::start().await;
    let port = redis.port();
    let a = Node::start(&redis).await;
    let _claim = a.claim("cam", false).await.unwrap();

    redis.kill().await;
    assert!(matches!(
        a.claim("other", false).await,
        Err(ClaimError::Unavailable(_))
    ));
    let started = Instant::now();
    let unavailable = a
        .cluster
        .remote_streams()
        .attach(&key("elsewhere"), Instant::now() + DEADLINE)
        .await;
    assert!(unavailable.is_err(), "a look-up without Redis is refused");
    assert!(started.elapsed() < Duration::from_secs(5), "and promptly");
    eventually("the heartbeat notices", || async {
        a.metric("livegate_cluster_redis_up") == 0.0
    })
    .await;

    // Everything Redis held is gone (no persistence); the heartbeat puts it back.
    let redis = RedisServer::start_on(port).await;
    eventually("node and claim are back", || async {
        a.cluster
            .view()
            .await
            .is_ok_and(|v| v.nodes.len() == 1 && v.origins.len() == 1)
    })
    .await;
    a.claim("other", false).await.unwrap();
    drop(redis);
}

/// Writes numbered TS packets into `ring` every few milliseconds until it closes.
fn produce(ring: Arc<RingBuffer>) -> JoinHandle<()> {
    produce_tagged(ring, 0)
}

/// [`produce`], with `tag` in each packet's fourth byte to tell producers apart.
fn produce_tagged(ring: Arc<RingBuffer>, tag: u8) -> JoinHandle<()> {
    tokio::spawn(async move {
        for n in 0u32.. {
            let mut packet = vec![0u8; 188];
            packet[..4].copy_from_slice(&[0x47, 0x01, 0x00, tag]);
            packet[4..8].copy_from_slice(&n.to_be_bytes());
            if ring.write(Bytes::from(packet)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

fn lease(attachment: Attachment) -> RemoteLease {
    match attachment {
        Attachment::Pulled(lease) => lease,
        Attachment::Local => panic!("expected an edge pull, got Local"),
        Attachment::Redirect(url) => panic!("expected an edge pull, got a redirect to {url}"),
    }
}

#[tokio::test]
async fn an_edge_pulls_once_for_all_its_viewers_and_stops_with_the_last() {
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let origin = a.registry.create(key("cam")).unwrap();
    let output = RingBuffer::new(1 << 20);
    origin.set_output(output.clone());
    let producer = produce(output.clone());
    let claim = a.claim("cam", false).await.unwrap();

    // On the origin itself the stream is local.
    assert!(matches!(a.attach("cam").await, Attachment::Local));
    let first = lease(b.attach("cam").await);
    let second = lease(b.attach("cam").await);
    let edge = b.registry.get(&key("cam")).expect("the edge stream");
    let ring = edge.next_output(None).await.unwrap();
    let mut reader = ring.reader_from_oldest();
    let mut numbers = Vec::new();
    while numbers.len() < 20 {
        match tokio::time::timeout(DEADLINE, reader.read()).await.unwrap() {
            ReadOutcome::Chunk(chunk) => {
                for packet in chunk.chunks(188) {
                    assert_eq!(&packet[..3], &[0x47, 0x01, 0x00]);
                    numbers.push(u32::from_be_bytes(packet[4..8].try_into().unwrap()));
                }
            }
            other => panic!("edge output: {other:?}"),
        }
    }
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost: {numbers:?}"
    );
    assert_eq!(a.metric("livegate_cluster_origin_pulls_total"), 1.0);
    assert_eq!(a.metric("livegate_cluster_origin_pulls_active"), 1.0);
    assert_eq!(b.metric("livegate_cluster_edge_pulls_active"), 1.0);

    drop(first);
    assert!(!edge.is_closed(), "one viewer is still there");
    drop(second);
    assert!(
        edge.is_closed(),
        "the last viewer's lease ends the edge stream"
    );
    assert!(b.registry.get(&key("cam")).is_none());
    eventually("the origin sees the pull go", || async {
        a.metric("livegate_cluster_origin_pulls_active") == 0.0
    })
    .await;

    // A new viewer pulls again; the origin ending its stream ends the edge's.
    let third = lease(b.attach("cam").await);
    let edge = b.registry.get(&key("cam")).unwrap();
    edge.next_output(None).await.unwrap();
    drop(claim);
    a.registry.remove(&origin);
    let mut slots = edge.subscribe_output();
    tokio::time::timeout(DEADLINE, slots.wait_for(|s| s.closed))
        .await
        .expect("the edge stream ends with its origin's")
        .unwrap();
    assert_eq!(a.metric("livegate_cluster_origin_pulls_total"), 2.0);
    drop(third);
    producer.await.unwrap();
}

/// The first packet of the next chunk `reader` gets, its fourth byte (the producer's tag).
async fn next_tag(reader: &mut livegate_media::ring::RingReader) -> Option<u8> {
    match tokio::time::timeout(DEADLINE, reader.read()).await.unwrap() {
        ReadOutcome::Chunk(chunk) => Some(chunk[3]),
        ReadOutcome::Lagged { .. } => Box::pin(next_tag(reader)).await,
        ReadOutcome::Closed => None,
    }
}

#[tokio::test]
async fn an_edge_follows_its_stream_to_a_new_origin() {
    let redis = RedisServer::start().await;
    let (a, b, c) = (
        Node::start(&redis).await,
        Node::start(&redis).await,
        Node::start(&redis).await,
    );
    let on_a = a.registry.create(key("cam")).unwrap();
    let output_a = RingBuffer::new(1 << 20);
    on_a.set_output(output_a.clone());
    let _producer_a = produce_tagged(output_a, 0xA);
    let claim_a = a.claim("cam", false).await.unwrap();

    let _viewer = lease(b.attach("cam").await);
    let edge = b.registry.get(&key("cam")).unwrap();
    let first = edge.next_output(None).await.unwrap();
    assert_eq!(next_tag(&mut first.reader_from_oldest()).await, Some(0xA));

    // The publisher moves to C (here by replacement; a republish after A's death reaches
    // the same state once A's claim expires): A loses the key and ends its stream.
    let on_c = c.registry.create(key("cam")).unwrap();
    let output_c = RingBuffer::new(1 << 20);
    on_c.set_output(output_c.clone());
    let _producer_c = produce_tagged(output_c, 0xC);
    let _claim_c = c.claim("cam", true).await.unwrap();
    tokio::time::timeout(DEADLINE, claim_a.lost().cancelled())
        .await
        .unwrap();
    a.registry.remove(&on_a);

    // B's viewers stay; the stream's next output generation comes from C.
    let second = tokio::time::timeout(DEADLINE, edge.next_output(Some(&first)))
        .await
        .expect("a new output generation")
        .expect("the edge stream goes on");
    assert_eq!(next_tag(&mut second.reader_from_oldest()).await, Some(0xC));
    assert!(!edge.is_closed());
    assert_eq!(c.metric("livegate_cluster_origin_pulls_total"), 1.0);
}

#[tokio::test]
async fn a_publisher_moving_onto_an_edge_continues_the_stream_its_viewers_watch() {
    let redis = RedisServer::start().await;
    let (a, b) = (Node::start(&redis).await, Node::start(&redis).await);
    let on_a = a.registry.create(key("cam")).unwrap();
    let output_a = RingBuffer::new(1 << 20);
    on_a.set_output(output_a.clone());
    let _producer_a = produce_tagged(output_a, 0xA);
    let claim_a = a.claim("cam", false).await.unwrap();
    let viewer = lease(b.attach("cam").await);
    let edge = b.registry.get(&key("cam")).unwrap();
    let pulled = edge.next_output(None).await.unwrap();
    assert_eq!(next_tag(&mut pulled.reader_from_oldest()).await, Some(0xA));

    // The publisher comes to B: B's claim hands over the stream B's viewer is watching.
    let mut claim_b = b.claim("cam", true).await.unwrap();
    let continued = claim_b
        .take_continued()
        .expect("the edge stream is handed over");
    assert!(Arc::ptr_eq(&continued, &edge));
    assert!(!edge.is_closed(), "the viewer's stream goes on");
    assert!(Arc::ptr_eq(&b.registry.get(&key("cam")).unwrap(), &edge));
    eventually("B stops pulling", || async {
        b.metric("livegate_cluster_edge_pulls_active") == 0.0
    })
    .await;
    tokio::time::timeout(DEADLINE, claim_a.lost().cancelled())
        .await
        .unwrap();

    // The new publisher's output is the stream's next generation, and the viewer's lease
    // (now of no pull) leaving does not end the stream.
    let output_b = RingBuffer::new(1 << 20);
    edge.set_output(output_b.clone());
    let _producer_b = produce_tagged(output_b, 0xB);
    let next = tokio::time::timeout(DEADLINE, edge.next_output(Some(&pulled)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_tag(&mut next.reader_from_oldest()).await, Some(0xB));
    drop(viewer);
    assert!(!edge.is_closed());
    assert!(b.registry.get(&key("cam")).is_some());
}

#[tokio::test]
async fn the_internal_endpoint_wants_the_secret_and_serves_only_origins() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis).await;
    let url = format!("{}/internal/streams/cam/output", a.url);
    let http = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(status(http.get(&url)).await, 401);
    assert_eq!(status(http.get(&url).bearer_auth("s3cre")).await, 401);
    assert_eq!(status(http.get(&url).bearer_auth(SECRET)).await, 404);
    assert_eq!(a.metric("livegate_cluster_origin_pulls_total"), 0.0);
}

#[tokio::test]
async fn redirect_mode_answers_with_the_origins_whep_url() {
    let redis = RedisServer::start().await;
    let a = Node::start(&redis).await;
    let b = Node::start_with(&redis, true).await;
    let _claim = a.claim("cam", false).await.unwrap();
    match b.attach("cam").await {
        Attachment::Redirect(url) => assert_eq!(url, format!("{}/live/cam/whep", a.url)),
        _ => panic!("expected a redirect"),
    }
    assert!(b.registry.get(&key("cam")).is_none(), "no pull");
}

#[test]
fn cluster_mode_without_a_secret_refuses_to_start() {
    let config = ClusterConfig {
        redis_url: "redis://127.0.0.1:1/".into(),
        node_url: "http://127.0.0.1:8935".into(),
        secret: String::new(),
        redirect: false,
        ttl: TTL,
        republish_grace: TTL,
    };
    let error = Cluster::start(config, StreamRegistry::new(), &prometheus::Registry::new())
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("LIVE_AI_CLUSTER_SECRET"),
        "{error}"
    );
}
