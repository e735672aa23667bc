//! The exec pipeline with real processes: `cat` gives back the input, the ffmpeg example
//! worker gives H.264 + Opus, the PyAV example transforms every picture, a crashing worker is restarted with backoff as new output
//! generations, and closing the stream kills the worker with everything it started.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livegate_media::registry::{Stream, StreamRegistry};
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec, StreamKey};
use livegate_pipeline::exec::{attach_exec, ExecOptions, ExecSpec, ExecWorker};
use livegate_pipeline::{Pipeline, WorkerContext, WorkerJob};
use tokio::time::Instant;

/// Only a safety net against a hang; no test waits for it to pass.
const SAFETY_NET: Duration = Duration::from_secs(60);

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// The fixture cut into the 7-packet chunks a publisher session writes.
fn publisher_chunks() -> (Bytes, Vec<Bytes>) {
    let ts = Bytes::from(std::fs::read(repo_path("tests/fixtures/h264-baseline-opus.ts")).unwrap());
    let chunks = (0..ts.len())
        .step_by(7 * 188)
        .map(|start| ts.slice(start..(start + 7 * 188).min(ts.len())))
        .collect();
    (ts, chunks)
}

fn access_units(ts: &[u8]) -> Vec<AccessUnit> {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(ts, &mut events);
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|event| match event {
            DemuxEvent::AccessUnit(au) => Some(au),
            DemuxEvent::Tracks(_) => None,
        })
        .collect()
}

/// Every chunk until the ring closes; a lag fails the test.
async fn drain(mut reader: RingReader) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    loop {
        match tokio::time::timeout(SAFETY_NET, reader.read()).await {
            Ok(ReadOutcome::Chunk(chunk)) => chunks.push(chunk),
            Ok(ReadOutcome::Closed) => return chunks,
            Ok(lagged) => panic!("output reader lagged: {lagged:?}"),
            Err(_) => panic!("the output did not close"),
        }
    }
}

fn start(command_line: &str, options: ExecOptions) -> (StreamRegistry, Arc<Stream>, ExecWorker) {
    let registry = StreamRegistry::new();
    let stream = registry.create(StreamKey::parse("cam").unwrap()).unwrap();
    let spec = ExecSpec::parse(command_line).unwrap();
    let worker = attach_exec(&spec, &stream, stream.input(), options);
    (registry, stream, worker)
}

/// Publishes the whole fixture, ends the input, and returns what the worker wrote.
async fn run_fixture_through(command_line: &str) -> (Bytes, Vec<Bytes>, ExecWorker) {
    let (_registry, stream, worker) = start(command_line, ExecOptions::default());
    let output = stream.next_output(None).await.expect("the worker's output");
    let reader = output.reader_from_oldest();
    let (ts, chunks) = publisher_chunks();
    for chunk in chunks {
        stream.input().write(chunk).unwrap();
    }
    stream.input().close();
    (ts, drain(reader).await, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_gives_back_the_input_in_whole_packets() {
    let (ts, chunks, worker) = run_fixture_through("cat").await;

    assert!(
        chunks.iter().all(|c| c.len() % 188 == 0),
        "whole TS packets"
    );
    let out: Vec<u8> = chunks.concat();
    assert_eq!(out.len(), ts.len());
    assert!(out == ts[..], "cat's output differs from its input");
    let (sent, got) = (access_units(&ts), access_units(&out));
    assert!(sent.len() > 100, "the fixture holds audio and video");
    assert_eq!(got, sent);

    let status = worker.finished().await;
    assert_eq!(status.starts, 1, "cat ended by EOF, not by a crash");
    assert!(status.last_exit.unwrap().success(), "{status:?}");
    assert!(status.finished && status.pid.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ffmpeg_example_worker_outputs_h264_without_b_frames_and_opus() {
    let script = repo_path("examples/workers/ffmpeg-filter.sh");
    let command_line = format!("{} negate", script.display());
    let (ts, chunks, worker) = run_fixture_through(&command_line).await;

    let sent = access_units(&ts);
    let got = access_units(&chunks.concat());
    let of = |units: &[AccessUnit], codec| -> Vec<AccessUnit> {
        units
            .iter()
            .filter(|au| au.codec == codec)
            .cloned()
            .collect()
    };
    let (sent_video, got_video) = (of(&sent, Codec::H264), of(&got, Codec::H264));
    let (sent_audio, got_audio) = (of(&sent, Codec::Opus), of(&got, Codec::Opus));
    assert_eq!(
        got_video.len(),
        sent_video.len(),
        "one picture out per picture in"
    );
    assert!(got_video[0].keyframe, "the output starts decodable");
    // No B-frames: decoding order is presentation order (ISO/IEC 14496-10 §C.4).
    assert!(got_video
        .windows(2)
        .all(|w| w[0].pts.ticks() < w[1].pts.ticks()));
    assert!(got_video
        .iter()
        .all(|au| au.dts.is_none_or(|dts| dts == au.pts)));
    let span = |units: &[AccessUnit]| {
        units.last().unwrap().pts.ticks() - units.first().unwrap().pts.ticks()
    };
    // Re-encoded audio may regroup samples, but it covers the input's time within a frame.
    assert!(
        span(&got_audio).abs_diff(span(&sent_audio)) <= 2 * 1_800,
        "audio lost"
    );
    // The effect changed the pictures: no output picture is an input picture.
    assert!(got_video
        .iter()
        .all(|au| sent_video.iter().all(|s| s.data != au.data)));

    let status = worker.finished().await;
    assert_eq!(status.starts, 1);
    assert!(status.last_exit.unwrap().success(), "{status:?}");
}

/// The Python with PyAV and numpy that runs the PyAV example: `LIVEGATE_TEST_PYTHON`
/// (scripts/test.sh makes a venv and sets it), else `python3`.
fn pyav_python() -> String {
    let python = std::env::var("LIVEGATE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = std::process::Command::new(&python)
        .args(["-c", "import av, numpy"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "{python} cannot import av and numpy: run scripts/test.sh, or set LIVEGATE_TEST_PYTHON \
         to a Python with `pip install av numpy`"
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pyav_example_worker_transforms_every_picture_and_keeps_timestamps() {
    let script = repo_path("examples/workers/pyav-worker.py");
    let command_line = format!("{} {}", pyav_python(), script.display());
    let (ts, chunks, worker) = run_fixture_through(&command_line).await;

    let sent = access_units(&ts);
    let got = access_units(&chunks.concat());
    let video = |units: &[AccessUnit]| -> Vec<AccessUnit> {
        units
            .iter()
            .filter(|au| au.codec == Codec::H264)
            .cloned()
            .collect()
    };
    let (sent_video, got_video) = (video(&sent), video(&got));
    assert_eq!(
        got_video.len(),
        sent_video.len(),
        "one picture out per picture in"
    );
    assert!(got_video[0].keyframe, "the output starts decodable");
    // Timestamps kept: the gateway matches output to input by PTS for latency.
    let pts = |units: &[AccessUnit]| units.iter().map(|au| au.pts).collect::<Vec<_>>();
    assert_eq!(pts(&got_video), pts(&sent_video));
    assert!(
        got.iter().any(|au| au.codec == Codec::Opus),
        "audio is carried on"
    );
    // The placeholder model inverted the pictures: none is an input picture.
    assert!(got_video
        .iter()
        .all(|au| sent_video.iter().all(|s| s.data != au.data)));

    let status = worker.finished().await;
    assert_eq!(status.starts, 1);
    assert!(status.last_exit.unwrap().success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_exits_is_restarted_with_backoff_as_a_new_output_generation() {
    // Real time (paused time would jump to the next timer while a real process works), with
    // short delays so the test is quick.
    let mut options = ExecOptions::default();
    options.backoff.initial = Duration::from_millis(50);
    let backoff = options.backoff;
    let (_registry, stream, worker) = start("sh -c 'head -c 1000; exit 1'", options);
    let mut slots = stream.subscribe_output();
    let status = worker.status();

    let mut installed_at = Vec::new();
    for generation in 1..=4u64 {
        let output = tokio::time::timeout(
            SAFETY_NET,
            slots.wait_for(|slot| slot.generation == generation),
        )
        .await
        .expect("the next generation")
        .unwrap()
        .buffer
        .clone()
        .unwrap();
        installed_at.push(Instant::now());
        assert_eq!(status.borrow().starts, generation);
        if generation == 4 {
            break;
        }
        // Each process gets the input written after it started, and its 1000 bytes make up
        // its own generation, which the next start closes.
        let reader = output.reader_from_oldest();
        let sent = Bytes::from(vec![generation as u8; 6 * 188]);
        stream.input().write(sent.clone()).unwrap();
        let got = drain(reader).await.concat();
        assert_eq!(got, sent[..1000]);
        // The generation closed when the next process started, after this one's exit.
        let exited = status.borrow().last_exit.expect("the worker exited");
        assert_eq!(exited.code(), Some(1));
    }
    // Between two starts the supervisor waited at least the doubling delay.
    let gaps: Vec<Duration> = installed_at.windows(2).map(|w| w[1] - w[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let delay = backoff.initial * 2u32.pow(i as u32);
        assert!(
            *gap >= delay,
            "restart {i} after {gap:?}, before its {delay:?} backoff"
        );
    }

    stream.close();
    let status = worker.finished().await;
    assert_eq!(status.starts, 4);
    assert!(status.finished && status.pid.is_none());
}

/// Whether `pid` runs: it exists and is not a zombie waiting for its parent.
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name (proc(5)).
        Ok(stat) => !matches!(
            stat.rsplit(") ").next().and_then(|s| s.chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_stream_kills_the_worker_and_what_it_started() {
    // The worker starts a grandchild that would outlive it and reports its pid on stdout,
    // padded to one TS packet's length so it arrives as one chunk.
    // Closing the stream closes its input too; the grace a worker gets to flush after its
    // input ends must not apply (it would outlast the safety net below).
    let mut options = ExecOptions::default();
    options.eof_grace = Duration::from_secs(600);
    let (registry, stream, worker) =
        start(r#"sh -c 'sleep 600 & printf "%-188s" $!; wait'"#, options);
    let output = stream.next_output(None).await.unwrap();
    let mut reader = output.reader_from_oldest();
    let ReadOutcome::Chunk(chunk) = reader.read().await else {
        panic!("no pid from the worker");
    };
    let grandchild: u32 = std::str::from_utf8(&chunk).unwrap().trim().parse().unwrap();
    let leader = worker.status().borrow().pid.expect("a running worker");
    assert!(is_running(leader) && is_running(grandchild));

    assert!(registry.remove(&stream));
    let status = tokio::time::timeout(SAFETY_NET, worker.finished())
        .await
        .expect("the supervisor ends with its stream");
    assert_eq!(status.last_exit.unwrap().signal(), Some(SIGKILL));
    assert_eq!(status.starts, 1, "a closed stream restarts nothing");
    // The leader was reaped by the supervisor, so it is gone from /proc.
    assert!(!Path::new(&format!("/proc/{leader}")).exists());
    // The grandchild was killed with the group (its stdout closed, which let the supervisor
    // finish); the kernel gives no event for a non-child's end, so look until it is dead.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while is_running(grandchild) {
        assert!(
            std::time::Instant::now() < deadline,
            "{grandchild} survived its worker"
        );
        std::thread::yield_now();
    }
}

/// Signal 9 on every Unix (POSIX `kill -9`).
const SIGKILL: i32 = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_pipeline_runs_the_command() {
    let registry = StreamRegistry::new();
    let stream = registry.create(StreamKey::parse("cam").unwrap()).unwrap();
    // The worker says which stream it serves, through the environment.
    let pipeline: Pipeline =
        r#"exec:sh -c 'printf "%-188s" "$LIVE_AI_STREAM_KEY"; cat >/dev/null'"#
            .parse()
            .unwrap();
    pipeline
        .attach(
            &WorkerContext::default(),
            WorkerJob::new(stream.clone(), stream.input().clone()),
        )
        .unwrap();
    let output: Arc<RingBuffer> = stream.next_output(None).await.unwrap();
    let mut reader = output.reader_from_oldest();
    let ReadOutcome::Chunk(chunk) = reader.read().await else {
        panic!("nothing from the worker");
    };
    assert_eq!(std::str::from_utf8(&chunk).unwrap().trim(), "cam");
    stream.close();
}
