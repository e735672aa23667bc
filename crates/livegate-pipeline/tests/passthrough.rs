//! Passthrough as viewers see it through the registry: the publisher's bytes unchanged,
//! waiting viewers served once it attaches, the end of the stream, and a publisher's
//! reconnection as a new output generation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livegate_media::registry::{StreamClosed, StreamRegistry};
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader};
use livegate_media::StreamKey;
use livegate_pipeline::passthrough::attach_passthrough;
use livegate_pipeline::{Pipeline, WorkerContext, WorkerJob};
use tokio::time::Instant;

fn key(s: &str) -> StreamKey {
    StreamKey::parse(s).unwrap()
}

/// A real stream, cut into the 7-packet chunks a publisher session writes.
fn publisher_chunks() -> Vec<Bytes> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/h264-baseline-opus.ts");
    let ts = Bytes::from(std::fs::read(path).unwrap());
    (0..ts.len())
        .step_by(7 * 188)
        .map(|start| ts.slice(start..(start + 7 * 188).min(ts.len())))
        .collect()
}

/// Everything the reader gets until the ring closes; a lag fails the test.
fn drain(reader: &mut RingReader) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    loop {
        match reader.try_read() {
            Some(ReadOutcome::Chunk(chunk)) => chunks.push(chunk),
            Some(ReadOutcome::Closed) => return chunks,
            Some(lagged) => panic!("viewer lagged: {lagged:?}"),
            None => panic!("ring still open"),
        }
    }
}

#[test]
fn viewers_get_the_publishers_bytes_unchanged_and_uncopied() {
    let registry = StreamRegistry::new();
    let stream = registry.create(key("cam")).unwrap();
    Pipeline::Passthrough
        .attach(
            &WorkerContext::default(),
            WorkerJob::new(stream.clone(), stream.input().clone()),
        )
        .unwrap();
    let output = stream.output().expect("passthrough installs an output");
    let mut viewers = [output.reader(), output.reader()];

    let sent = publisher_chunks();
    for chunk in &sent {
        stream.input().write(chunk.clone()).unwrap();
    }
    stream.input().close();

    for viewer in &mut viewers {
        let got = drain(viewer);
        assert_eq!(got, sent);
        // Zero copy: every viewer holds the publisher's own allocation.
        for (got, sent) in got.iter().zip(&sent) {
            assert_eq!(got.as_ptr(), sent.as_ptr());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_viewer_waiting_for_output_gets_it_when_passthrough_attaches() {
    let registry = StreamRegistry::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting_registry = registry.clone();
    let mut viewer = Box::pin(async move {
        waiting_registry
            .wait_for_output(&key("cam"), deadline)
            .await
    });

    // The viewer arrives before the publisher, then the publisher before its pipeline.
    tokio::select! {
        biased;
        waited = &mut viewer => panic!("no stream yet, but the wait ended: {waited:?}"),
        () = std::future::ready(()) => {}
    }
    let stream = registry.create(key("cam")).unwrap();
    tokio::select! {
        biased;
        waited = &mut viewer => panic!("no output yet, but the wait ended: {waited:?}"),
        () = std::future::ready(()) => {}
    }

    attach_passthrough(&stream, stream.input());
    let (found, output) = viewer.await.expect("output once passthrough attached");
    assert!(Arc::ptr_eq(&found, &stream));
    assert!(Arc::ptr_eq(&output, stream.input()));
    // Served at once: no virtual time passed, so the viewer did not sit out its deadline.
    assert!(Instant::now() < deadline);
}

#[tokio::test]
async fn closing_the_stream_ends_the_output_for_good() {
    let registry = StreamRegistry::new();
    let stream = registry.create(key("cam")).unwrap();
    attach_passthrough(&stream, stream.input());
    let output = stream.output().unwrap();
    let mut viewer = output.reader();
    stream
        .input()
        .write(Bytes::from_static(&[0x47; 188]))
        .unwrap();

    assert!(registry.remove(&stream));
    // The viewer drains what was written, then the output is over and nothing follows it.
    assert_eq!(
        viewer.read().await,
        ReadOutcome::Chunk(Bytes::from_static(&[0x47; 188]))
    );
    assert_eq!(viewer.read().await, ReadOutcome::Closed);
    assert_eq!(
        stream.next_output(Some(&output)).await.err(),
        Some(StreamClosed)
    );
    assert!(stream.subscribe_output().borrow().closed);
}

#[tokio::test(start_paused = true)]
async fn a_reconnected_publisher_becomes_the_next_output_generation() {
    let registry = StreamRegistry::new();
    let stream = registry.create(key("cam")).unwrap();
    attach_passthrough(&stream, stream.input());
    let first = stream.output().unwrap();
    let mut viewer = first.reader();

    // The publisher leaves: its input, which is the output, closes; the stream stays open.
    stream.input().write(Bytes::from_static(b"first")).unwrap();
    stream.input().close();
    assert_eq!(
        viewer.read().await,
        ReadOutcome::Chunk(Bytes::from_static(b"first"))
    );
    assert_eq!(viewer.read().await, ReadOutcome::Closed);
    assert!(!stream.is_closed());

    let mut next = Box::pin(stream.next_output(Some(&first)));
    tokio::select! {
        biased;
        got = &mut next => panic!("no new publisher yet, but got {got:?}"),
        () = std::future::ready(()) => {}
    }

    // It comes back within its grace period with a new input buffer.
    let reconnected = RingBuffer::new(64 * 1024);
    attach_passthrough(&stream, &reconnected);
    let second = next.await.expect("the next generation");
    assert!(Arc::ptr_eq(&second, &reconnected));
    assert_eq!(stream.subscribe_output().borrow().generation, 2);

    let mut viewer = second.reader();
    reconnected.write(Bytes::from_static(b"second")).unwrap();
    assert_eq!(
        viewer.read().await,
        ReadOutcome::Chunk(Bytes::from_static(b"second"))
    );
}
