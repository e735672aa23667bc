//! Supervision of exec workers with real processes: a worker that reads but never writes is
//! found stuck and restarted, one that keeps failing uses up its restart budget and fails the
//! stream, and frames that keep their timestamps are timed from input to output.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livegate_media::registry::{Stream, StreamRegistry};
use livegate_media::ring::{ReadOutcome, RingReader};
use livegate_media::StreamKey;
use livegate_pipeline::exec::{attach_exec, ExecOptions, ExecSpec, ExecStatus};
use livegate_pipeline::supervise::metrics::PipelineMetrics;
use livegate_pipeline::supervise::status::{StatusBoard, WorkerState};
use livegate_pipeline::Supervision;

/// Only a safety net against a hang; no test waits for it to pass.
const SAFETY_NET: Duration = Duration::from_secs(60);

fn fixture_chunks() -> Vec<Bytes> {
    let path: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/h264-baseline-opus.ts");
    let ts = Bytes::from(std::fs::read(path).unwrap());
    (0..ts.len())
        .step_by(7 * 188)
        .map(|start| ts.slice(start..(start + 7 * 188).min(ts.len())))
        .collect()
}

fn stream() -> (StreamRegistry, Arc<Stream>) {
    let registry = StreamRegistry::new();
    let stream = registry.create(StreamKey::parse("cam").unwrap()).unwrap();
    (registry, stream)
}

/// Writes the fixture into the input in a loop, a chunk every few milliseconds, as a live
/// publisher would, until the input closes.
fn publish_until_closed(stream: &Arc<Stream>) -> tokio::task::JoinHandle<()> {
    let input = stream.input().clone();
    tokio::spawn(async move {
        let chunks = fixture_chunks();
        for chunk in chunks.iter().cycle() {
            if input.write(chunk.clone()).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn wait_finished(mut status: tokio::sync::watch::Receiver<ExecStatus>) -> ExecStatus {
    tokio::time::timeout(SAFETY_NET, status.wait_for(|s| s.finished))
        .await
        .expect("the supervisor ended")
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_swallows_its_input_is_restarted_then_given_up() {
    let (_registry, stream) = stream();
    let board = StatusBoard::default();
    let metrics = PipelineMetrics::register(&prometheus::Registry::new()).unwrap();
    let mut options = ExecOptions::default();
    options.supervision = Supervision {
        out_timeout: Some(Duration::from_millis(400)),
        max_restarts: 2,
        restart_window: Duration::from_secs(60),
    };
    options.status = board.clone();
    options.metrics = Some(metrics.clone());
    // Reads everything, writes nothing, never exits: only the watchdog can tell.
    let spec = ExecSpec::parse("sh -c 'cat > /dev/null'").unwrap();
    let worker = attach_exec(&spec, &stream, stream.input(), options);
    let mut states = worker.status();
    let publisher = publish_until_closed(&stream);

    // While it is alive, the board shows it.
    tokio::time::timeout(SAFETY_NET, states.wait_for(|s| s.watchdog_restarts >= 1))
        .await
        .unwrap()
        .unwrap();
    let shown = board
        .get(stream.key())
        .expect("a status entry while running");
    assert_eq!(shown.pipeline, "exec");
    assert!(shown.input.bytes > 0, "{shown:?}");
    assert_eq!(shown.output.bytes, 0, "{shown:?}");

    let status = wait_finished(worker.status()).await;
    assert_eq!(
        status.starts, 3,
        "the first start and two restarts: {status:?}"
    );
    assert_eq!(status.watchdog_restarts, 3, "each process was found stuck");
    let failure = status.failure.expect("the supervisor gave up");
    assert!(
        failure.contains("more than 2 restarts within 60s"),
        "{failure}"
    );
    assert!(stream.is_closed(), "a given-up worker fails its stream");
    assert_eq!(
        metrics.restarts.with_label_values(&["exec", "stuck"]).get(),
        2
    );
    assert_eq!(metrics.failures.with_label_values(&["exec"]).get(), 1);
    tokio::time::timeout(SAFETY_NET, publisher)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_keeps_crashing_uses_up_its_budget() {
    let (_registry, stream) = stream();
    let board = StatusBoard::default();
    let mut options = ExecOptions::default();
    options.supervision = Supervision {
        out_timeout: None,
        max_restarts: 1,
        restart_window: Duration::from_secs(60),
    };
    options.status = board.clone();
    let spec = ExecSpec::parse("sh -c 'exit 3'").unwrap();
    let worker = attach_exec(&spec, &stream, stream.input(), options);
    let entry_seen = board.get(stream.key()).expect("registered at attach");
    assert_eq!(entry_seen.state, WorkerState::Starting);
    let status = wait_finished(worker.status()).await;
    assert_eq!(status.starts, 2);
    assert_eq!(status.watchdog_restarts, 0);
    assert!(status.failure.is_some());
    assert!(stream.is_closed());
}

/// Reads the output until it closes, failing on a lag.
async fn drain(mut reader: RingReader) -> usize {
    let mut bytes = 0;
    loop {
        match tokio::time::timeout(SAFETY_NET, reader.read()).await {
            Ok(ReadOutcome::Chunk(chunk)) => bytes += chunk.len(),
            Ok(ReadOutcome::Closed) => return bytes,
            Ok(lagged) => panic!("lagged: {lagged:?}"),
            Err(_) => panic!("the output did not close"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_keep_their_timestamps_are_timed_through_the_worker() {
    let (_registry, stream) = stream();
    let metrics = PipelineMetrics::register(&prometheus::Registry::new()).unwrap();
    let mut options = ExecOptions::default();
    options.metrics = Some(metrics.clone());
    let worker = attach_exec(
        &ExecSpec::parse("cat").unwrap(),
        &stream,
        stream.input(),
        options,
    );
    let output = stream.next_output(None).await.unwrap();
    let reader = output.reader_from_oldest();
    let chunks = fixture_chunks();
    let video_frames = {
        let mut n = 0;
        let mut scanner = livegate_pipeline::supervise::latency::VideoPtsScanner::default();
        for chunk in &chunks {
            scanner.scan(chunk, |_| n += 1);
        }
        n
    };
    for chunk in chunks {
        stream.input().write(chunk).unwrap();
    }
    stream.input().close();
    assert!(drain(reader).await > 0);
    let status = wait_finished(worker.status()).await;
    assert!(status.last_exit.unwrap().success());

    let histogram = metrics.latency("exec");
    assert!(video_frames > 30);
    assert_eq!(
        histogram.get_sample_count(),
        video_frames,
        "every picture cat passed on was matched by its PTS"
    );
    let mean_s = histogram.get_sample_sum() / video_frames as f64;
    assert!(
        mean_s > 0.0 && mean_s < 1.0,
        "cat adds well under a second: {mean_s}"
    );
}
