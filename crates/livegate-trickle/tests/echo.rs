//! `trickle-echo` end to end: the binary between two channels of the real server.

mod common;

use std::process::Stdio;

use common::{bounded, payload, wait_event, TestServer};
use livegate_trickle::{ServerEvent, SubscriberConfig, TricklePublisher, TrickleSubscriber};

fn is(event: &ServerEvent, wanted_channel: &str, wanted_seq: i64, publisher: bool) -> bool {
    match event {
        ServerEvent::PublisherConnected { channel, seq } if publisher => {
            &**channel == wanted_channel && *seq == wanted_seq
        }
        ServerEvent::SubscriberConnected { channel, seq } if !publisher => {
            &**channel == wanted_channel && *seq == wanted_seq
        }
        _ => false,
    }
}

#[tokio::test]
async fn trickle_echo_copies_segments_chunk_by_chunk_and_exits_with_its_input() {
    let server = TestServer::with_channels(&["cam", "cam-out"]).await;
    let mut events = server.trickle.events();
    let mut echo = tokio::process::Command::new(env!("CARGO_BIN_EXE_trickle-echo"))
        .arg("--subscribe")
        .arg(server.url("cam"))
        .arg("--publish")
        .arg(server.url("cam-out"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The worker is ready once it waits for input 0 and has its output 0 preconnected.
    let mut ready = (false, false);
    while ready != (true, true) {
        let (event, _) = wait_event(&mut events, |event| {
            is(event, "cam", 0, false) || is(event, "cam-out", 0, true)
        })
        .await;
        ready.0 |= is(&event, "cam", 0, false);
        ready.1 |= is(&event, "cam-out", 0, true);
    }

    let mut output = TrickleSubscriber::with_config(
        &server.url("cam-out"),
        SubscriberConfig {
            start_seq: 0,
            ..SubscriberConfig::default()
        },
    )
    .unwrap();
    let mut input = TricklePublisher::new(&server.url("cam")).unwrap();

    // Segment 0: the first chunk comes out before the input segment is finished.
    let mut writer = input.next_segment();
    writer.write(payload(0, 0, 500)).await.unwrap();
    let mut echoed = bounded("output segment 0", output.next_segment())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed.seq(), 0);
    let first = bounded("the first echoed chunk", echoed.next_chunk()).await;
    assert_eq!(first.unwrap().unwrap(), payload(0, 0, 500));
    writer.write(payload(0, 1, 700)).await.unwrap();
    writer.finish().await.unwrap();
    let rest = bounded("the rest of segment 0", echoed.read_to_end()).await;
    assert_eq!(rest.unwrap(), payload(0, 1, 700));

    // Segments 1 and 2, byte-exact and in order.
    for seq in 1..3 {
        let mut writer = input.next_segment();
        let mut sent = Vec::new();
        for chunk in 0..3 {
            let bytes = payload(seq, chunk, 900);
            sent.extend_from_slice(&bytes);
            writer.write(bytes).await.unwrap();
        }
        writer.finish().await.unwrap();
        let echoed = bounded("an output segment", output.next_segment())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed.seq(), seq);
        assert_eq!(
            bounded("its bytes", echoed.read_to_end()).await.unwrap(),
            sent
        );
    }

    // Closing the input ends the worker, which closes its output.
    input.close().await.unwrap();
    let status = bounded("trickle-echo to exit", echo.wait()).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(bounded("the output's end", output.next_segment())
        .await
        .unwrap()
        .is_none());
    assert!(!server.trickle.has_channel("cam-out"));
}
