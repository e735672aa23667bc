//! The trickle protocol end to end: the real server on 127.0.0.1 and the real client.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{bounded, payload, wait_event, TestServer};
use livegate_trickle::{
    CloseReason, ServerConfig, ServerEvent, SubscriberConfig, TrickleError, TricklePublisher,
    TrickleSubscriber,
};

fn subscriber_from(url: &str, start_seq: i64) -> TrickleSubscriber {
    TrickleSubscriber::with_config(
        url,
        SubscriberConfig {
            start_seq,
            ..SubscriberConfig::default()
        },
    )
    .unwrap()
}

/// (seq, length, checksum) of each segment, short enough for an assertion message.
fn summary(segments: &[(i64, Vec<u8>)]) -> Vec<(i64, usize, u64)> {
    segments
        .iter()
        .map(|(seq, bytes)| {
            let checksum = bytes.iter().fold(0u64, |sum, &byte| {
                sum.wrapping_mul(31).wrapping_add(u64::from(byte))
            });
            (*seq, bytes.len(), checksum)
        })
        .collect()
}

/// Publishes segment by segment: `chunks` chunks of 1000 bytes each.
async fn publish(publisher: &mut TricklePublisher, chunks: usize) -> (i64, Vec<u8>) {
    let mut segment = publisher.next_segment();
    let seq = segment.seq();
    let mut all = Vec::new();
    for chunk in 0..chunks {
        let bytes = payload(seq, chunk, 1000);
        all.extend_from_slice(&bytes);
        segment.write(bytes).await.unwrap();
    }
    bounded("the POST's answer", segment.finish())
        .await
        .unwrap();
    (seq, all)
}

#[tokio::test]
async fn segments_round_trip_in_order_and_byte_exact() {
    let server = TestServer::with_channels(&["rt"]).await;
    let mut events = server.trickle.events();
    let mut subscriber = subscriber_from(&server.url("rt"), 0);
    let mut publisher = TricklePublisher::new(&server.url("rt")).unwrap();
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(segment) = subscriber.next_segment().await.unwrap() {
            let seq = segment.seq();
            got.push((seq, segment.read_to_end().await.unwrap()));
        }
        got
    });
    let mut sent = Vec::new();
    for chunks in [3, 1, 5, 2] {
        sent.push(publish(&mut publisher, chunks).await);
    }
    publisher.close().await.unwrap();
    let got = bounded("the subscriber to see the end", reading)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert_eq!(summary(&got), summary(&sent), "{seen:#?}");
}

#[tokio::test]
async fn subscribers_receive_bytes_while_the_segment_is_written() {
    let server = TestServer::with_channels(&["live"]).await;
    let mut subscriber = subscriber_from(&server.url("live"), 0);
    let mut publisher = TricklePublisher::new(&server.url("live")).unwrap();
    let mut writer = publisher.next_segment();
    writer.write(Bytes::from_static(b"first")).await.unwrap();
    let mut segment = bounded("segment 0", subscriber.next_segment())
        .await
        .unwrap()
        .unwrap();
    // The POST is still open: the first chunk came through before it ended.
    let first = bounded("the first chunk", segment.next_chunk()).await;
    assert_eq!(first.unwrap().unwrap(), "first");
    writer.write(Bytes::from_static(b"second")).await.unwrap();
    let second = bounded("the second chunk", segment.next_chunk()).await;
    assert_eq!(second.unwrap().unwrap(), "second");
    writer.finish().await.unwrap();
    assert!(bounded("the end", segment.next_chunk()).await.is_none());
}

#[tokio::test]
async fn a_subscriber_at_minus_one_starts_with_the_next_segment() {
    let server = TestServer::with_channels(&["mid"]).await;
    let mut events = server.trickle.events();
    let mut publisher = TricklePublisher::new(&server.url("mid")).unwrap();
    publish(&mut publisher, 1).await;
    publish(&mut publisher, 1).await;
    // Segment 2 is being written when the subscriber arrives.
    let mut current = publisher.next_segment();
    current.write(payload(2, 0, 100)).await.unwrap();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SegmentStarted { seq: 2, .. })
    })
    .await;

    let mut subscriber = TrickleSubscriber::new(&server.url("mid")).unwrap();
    let next = tokio::spawn(async move {
        let segment = subscriber.next_segment().await.unwrap().unwrap();
        (segment.seq(), segment.read_to_end().await.unwrap())
    });
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SubscriberConnected { seq: 3, .. })
    })
    .await;
    current.finish().await.unwrap();
    let (seq, bytes) = publish(&mut publisher, 2).await;
    assert_eq!(seq, 3);
    assert_eq!(bounded("segment 3", next).await.unwrap(), (3, bytes));
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_gets_470_and_jumps_to_the_latest() {
    let server = TestServer::start(ServerConfig {
        segments_per_channel: 3,
        ..ServerConfig::default()
    })
    .await;
    server.trickle.create_channel("behind").unwrap();
    let mut publisher = TricklePublisher::new(&server.url("behind")).unwrap();
    for _ in 0..6 {
        publish(&mut publisher, 1).await;
    }

    // The raw protocol: segment 0 is gone, segment 9 too far ahead; both say where to go.
    let http = reqwest::Client::new();
    for seq in [0, 9] {
        let response = http
            .get(format!("{}/{seq}", server.url("behind")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 470, "seq {seq}");
        assert_eq!(response.headers()["lp-trickle-latest"], "6", "seq {seq}");
    }
    // The window of 3 holds 4, 5 and the preconnected 6 (which evicted 3), as in go-livepeer.
    let response = http
        .get(format!("{}/4", server.url("behind")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["lp-trickle-seq"], "4");

    let mut subscriber = subscriber_from(&server.url("behind"), 0);
    let next = tokio::spawn(async move {
        let segment = subscriber.next_segment().await.unwrap().unwrap();
        (segment.seq(), segment.read_to_end().await.unwrap())
    });
    let mut events = server.trickle.events();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SubscriberConnected { seq: 6, .. })
    })
    .await;
    let sent = publish(&mut publisher, 2).await;
    assert_eq!(bounded("segment 6", next).await.unwrap(), sent);
}

#[tokio::test]
async fn the_publisher_preconnects_the_next_segment() {
    let server = TestServer::with_channels(&["pre"]).await;
    let mut events = server.trickle.events();
    let mut publisher = TricklePublisher::new(&server.url("pre")).unwrap();
    // Creating the publisher opens seq 0 before any segment is asked for.
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::PublisherConnected { seq: 0, .. })
    })
    .await;
    let mut zero = publisher.next_segment();
    zero.write(payload(0, 0, 10)).await.unwrap();
    // Segment 0 is still open while the server already holds the POST for 1.
    let (_, before) = wait_event(&mut events, |event| {
        matches!(event, ServerEvent::PublisherConnected { seq: 1, .. })
    })
    .await;
    assert!(
        !before
            .iter()
            .any(|event| matches!(event, ServerEvent::SegmentEnded { .. })),
        "{before:?}"
    );
    zero.finish().await.unwrap();
    let (ended, _) = wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SegmentEnded { .. })
    })
    .await;
    assert!(matches!(
        ended,
        ServerEvent::SegmentEnded {
            seq: 0,
            len_bytes: 10,
            ..
        }
    ));
}

#[tokio::test]
async fn a_stalled_segment_times_out_and_the_subscriber_goes_on() {
    let server = TestServer::with_channels(&["stall"]).await;
    let stall_timeout = Duration::from_millis(300);
    let mut subscriber = TrickleSubscriber::with_config(
        &server.url("stall"),
        SubscriberConfig {
            start_seq: 0,
            stall_timeout,
            ..SubscriberConfig::default()
        },
    )
    .unwrap();
    let mut publisher = TricklePublisher::new(&server.url("stall")).unwrap();
    let mut zero = publisher.next_segment();
    zero.write(payload(0, 0, 10)).await.unwrap();
    let mut segment = bounded("segment 0", subscriber.next_segment())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(segment.next_chunk().await.unwrap().unwrap().len(), 10);
    // The publisher stalls: nothing more arrives.
    let stalled_at = Instant::now();
    let stalled = bounded("the stall timeout", segment.next_chunk()).await;
    assert!(
        matches!(
            stalled,
            Some(Err(TrickleError::SegmentStalled { seq: 0, .. }))
        ),
        "{stalled:?}"
    );
    assert!(stalled_at.elapsed() >= stall_timeout);
    assert!(segment.next_chunk().await.is_none());
    // It resumes: the subscriber continues with segment 1.
    zero.finish().await.unwrap();
    let sent = publish(&mut publisher, 1).await;
    let next = bounded("segment 1", subscriber.next_segment())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.seq(), 1);
    assert_eq!(next.read_to_end().await.unwrap(), sent.1);
}

#[tokio::test]
async fn closing_the_channel_ends_subscribers_and_refuses_posts() {
    let server = TestServer::with_channels(&["bye"]).await;
    let mut events = server.trickle.events();
    let mut subscriber = subscriber_from(&server.url("bye"), 0);
    let mut publisher = TricklePublisher::new(&server.url("bye")).unwrap();
    let sent = publish(&mut publisher, 1).await;
    let segment = subscriber.next_segment().await.unwrap().unwrap();
    assert_eq!(segment.read_to_end().await.unwrap(), sent.1);
    // The subscriber is waiting for segment 1 when the channel closes.
    let waiting = tokio::spawn(async move { subscriber.next_segment().await });
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SubscriberConnected { seq: 1, .. })
    })
    .await;
    publisher.close().await.unwrap();
    assert!(bounded("the end", waiting)
        .await
        .unwrap()
        .unwrap()
        .is_none());
    let (closed, _) = wait_event(&mut events, |event| {
        matches!(event, ServerEvent::ChannelClosed { .. })
    })
    .await;
    assert!(matches!(
        closed,
        ServerEvent::ChannelClosed {
            reason: CloseReason::Deleted,
            ..
        }
    ));

    // Further POSTs are refused.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/2", server.url("bye")))
        .body("late")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let mut late = TricklePublisher::new(&server.url("bye")).unwrap();
    let mut writer = late.next_segment();
    let refused = match writer.write(Bytes::from_static(b"late")).await {
        Err(error) => error,
        Ok(()) => writer.finish().await.unwrap_err(),
    };
    assert!(
        matches!(refused, TrickleError::ChannelNotFound),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_preconnected_post_learns_that_the_channel_closed() {
    let server = TestServer::with_channels(&["pending"]).await;
    let mut events = server.trickle.events();
    let mut publisher = TricklePublisher::new(&server.url("pending")).unwrap();
    let waiting = publisher.next_segment();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::PublisherConnected { seq: 1, .. })
    })
    .await;
    server.trickle.close_channel("pending").unwrap();
    let answer = bounded("the POST's answer", waiting.finish()).await;
    assert!(
        matches!(answer, Err(TrickleError::ChannelClosed)),
        "{answer:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_their_status() {
    let server = TestServer::start(ServerConfig {
        max_segment_bytes: 1500,
        ..ServerConfig::default()
    })
    .await;
    server.trickle.create_channel("bad").unwrap();
    let http = reqwest::Client::new();
    let status = |response: reqwest::Response| response.status().as_u16();

    let get = |path: &str| http.get(format!("{}/{path}", server.base_url)).send();
    assert_eq!(status(get("bad/abc").await.unwrap()), 400);
    assert_eq!(status(get("bad/-3").await.unwrap()), 400);
    assert_eq!(status(get("nope/0").await.unwrap()), 404);
    assert_eq!(status(get("nope/next").await.unwrap()), 404);
    let next = get("bad/next").await.unwrap();
    assert_eq!(next.headers()["lp-trickle-latest"], "0");
    assert_eq!(next.text().await.unwrap(), "0");

    let post = |path: &str| {
        http.post(format!("{}/{path}", server.base_url))
            .body("x")
            .send()
    };
    let invalid = post("bad/1.5").await.unwrap();
    assert_eq!(invalid.status(), 400);
    assert!(invalid
        .text()
        .await
        .unwrap()
        .starts_with("invalid seq \"1.5\""));
    assert_eq!(status(post("nope/0").await.unwrap()), 404);
    // Without autocreate, POST {channel} only confirms an existing channel, as go-livepeer.
    assert_eq!(status(post("bad").await.unwrap()), 200);
    assert_eq!(status(post("nope").await.unwrap()), 404);

    let delete = |path: &str| http.delete(format!("{}/{path}", server.base_url)).send();
    assert_eq!(status(delete("nope").await.unwrap()), 400);
    assert_eq!(status(delete("bad/7").await.unwrap()), 400);

    // Oversized: the segment is cut at the limit and the POST answered 413.
    let mut publisher = TricklePublisher::new(&server.url("bad")).unwrap();
    let mut writer = publisher.next_segment();
    let mut outcome = Ok(());
    for chunk in 0..4 {
        outcome = writer.write(payload(0, chunk, 1000)).await;
        if outcome.is_err() {
            break;
        }
    }
    let refused = match outcome {
        Err(error) => error,
        Ok(()) => bounded("the 413", writer.finish()).await.unwrap_err(),
    };
    assert!(
        matches!(&refused, TrickleError::Status { status: 413, reason } if reason.contains("1500")),
        "{refused:?}"
    );
    // A second POST for the same seq is refused: it already has bytes.
    let again = post("bad/0").await.unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn channel_limits_and_autocreate() {
    let server = TestServer::start(ServerConfig {
        max_channels: 1,
        autocreate: true,
        ..ServerConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let post = |path: &str| {
        http.post(format!("{}/{path}", server.base_url))
            .body("")
            .send()
    };
    assert_eq!(post("first").await.unwrap().status(), 200);
    let refused = post("second/0").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.text().await.unwrap(),
        "channel limit reached (1 channels)\n"
    );
    assert_eq!(server.trickle.channel_names(), vec!["first".to_string()]);
}

#[tokio::test]
async fn idle_channels_expire() {
    let server = TestServer::start(ServerConfig {
        idle_channel_timeout: Duration::from_millis(100),
        sweep_interval: Duration::from_millis(20),
        ..ServerConfig::default()
    })
    .await;
    let mut events = server.trickle.events();
    server.trickle.create_channel("idle").unwrap();
    let (closed, _) = wait_event(&mut events, |event| {
        matches!(event, ServerEvent::ChannelClosed { .. })
    })
    .await;
    assert!(matches!(
        closed,
        ServerEvent::ChannelClosed {
            reason: CloseReason::Idle,
            ..
        }
    ));
    assert!(!server.trickle.has_channel("idle"));
}

#[tokio::test]
async fn in_process_publishing_reaches_http_subscribers_and_back() {
    let server = TestServer::with_channels(&["local"]).await;
    let mut local = server.trickle.local_publisher("local");
    let mut subscriber = subscriber_from(&server.url("local"), 0);
    let mut writer = local.next_segment().unwrap();
    writer.write(Bytes::from_static(b"in-process")).unwrap();
    writer.finish();
    let segment = subscriber.next_segment().await.unwrap().unwrap();
    assert_eq!(segment.read_to_end().await.unwrap(), b"in-process");

    let mut local_subscriber = server.trickle.local_subscriber("local");
    let mut reader = local_subscriber.next_segment().unwrap();
    assert_eq!(reader.seq(), 1);
    let mut publisher = TricklePublisher::new(&server.url("local")).unwrap();
    // The HTTP publisher starts at 0, which exists: refused, then 1 goes through.
    let zero = publisher.next_segment();
    assert!(zero.finish().await.is_err());
    let (seq, sent) = publish(&mut publisher, 2).await;
    assert_eq!(seq, 1);
    let mut got = Vec::new();
    while let Some(chunk) = bounded("a chunk", reader.next_chunk()).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, sent);
    local.close().unwrap();
    assert!(local_subscriber.next_segment().is_none());
}

#[tokio::test]
async fn a_publisher_that_disappears_leaves_what_it_wrote() {
    let server = TestServer::with_channels(&["gone"]).await;
    let mut events = server.trickle.events();
    let mut subscriber = subscriber_from(&server.url("gone"), 0);
    let reading = tokio::spawn(async move {
        let segment = subscriber.next_segment().await.unwrap().unwrap();
        (segment.seq(), segment.read_to_end().await.unwrap())
    });

    // Gone before its first byte: segment 0 stays open for a reconnecting publisher.
    let first = TricklePublisher::new(&server.url("gone")).unwrap();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::PublisherConnected { seq: 0, .. })
    })
    .await;
    drop(first);
    let mut again = TricklePublisher::new(&server.url("gone")).unwrap();
    let mut writer = again.next_segment();
    assert_eq!(writer.seq(), 0);
    writer.write(Bytes::from_static(b"abc")).await.unwrap();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SegmentStarted { seq: 0, .. })
    })
    .await;
    // Gone mid-segment: the segment ends with what arrived, and readers move on.
    drop(writer);
    let (ended, _) = wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SegmentEnded { seq: 0, .. })
    })
    .await;
    assert!(matches!(
        ended,
        ServerEvent::SegmentEnded {
            end: livegate_trickle::SegmentEnd::Dropped,
            len_bytes: 3,
            ..
        }
    ));
    assert_eq!(
        bounded("the truncated segment", reading).await.unwrap(),
        (0, b"abc".to_vec())
    );
}

fn retrying(url: &str, max_retries: u32) -> TrickleSubscriber {
    TrickleSubscriber::with_config(
        url,
        SubscriberConfig {
            start_seq: 0,
            max_retries,
            retry_backoff_initial: Duration::from_millis(10),
            retry_backoff_max: Duration::from_millis(40),
            ..SubscriberConfig::default()
        },
    )
    .unwrap()
}

/// A 127.0.0.1 port nothing listens on (bound, then released).
fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn connection_errors_are_retried_until_the_server_is_there() {
    let addr = free_port();
    let mut subscriber = retrying(&format!("http://{addr}/ai/trickle/late"), 1000);
    let reading = tokio::spawn(async move {
        let segment = subscriber.next_segment().await.unwrap().unwrap();
        (segment.seq(), segment.read_to_end().await.unwrap())
    });
    let server = TestServer::start_on(addr, ServerConfig::default()).await;
    let mut events = server.trickle.events();
    server.trickle.create_channel("late").unwrap();
    wait_event(&mut events, |event| {
        matches!(event, ServerEvent::SubscriberConnected { seq: 0, .. })
    })
    .await;
    let mut publisher = TricklePublisher::new(&server.url("late")).unwrap();
    let sent = publish(&mut publisher, 2).await;
    assert_eq!(bounded("segment 0", reading).await.unwrap(), sent);
}

#[tokio::test]
async fn connection_errors_give_up_after_the_retries() {
    let addr = free_port();
    let mut subscriber = retrying(&format!("http://{addr}/ai/trickle/none"), 3);
    let started = Instant::now();
    let outcome = bounded("the retries", subscriber.next_segment()).await;
    assert!(
        matches!(
            outcome,
            Err(TrickleError::RetriesExhausted { attempts: 4, .. })
        ),
        "{outcome:?}"
    );
    // Backoff 10 + 20 + 40 ms at least between the four attempts.
    assert!(started.elapsed() >= Duration::from_millis(70));
}
