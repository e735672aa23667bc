//! The trickle pipelines with a real worker process (`trickle-echo`, the pass-through worker
//! of `livegate-trickle`) over real HTTP on 127.0.0.1: channels the gateway hosts, and a
//! remote trickle server; a worker that never answers, and one whose output channel closes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use livegate_media::registry::{Stream, StreamRegistry};
use livegate_media::ring::ReadOutcome;
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec, StreamKey};
use livegate_pipeline::supervise::metrics::PipelineMetrics;
use livegate_pipeline::trickle::{attach_trickle, TrickleOptions, TrickleSpec, TrickleStatus};
use livegate_pipeline::{Supervision, WorkerJob};
use livegate_trickle::{ServerConfig, TrickleServer};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Only a safety net against a hang; no test waits for it to pass.
const SAFETY_NET: Duration = Duration::from_secs(60);

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
}

/// The `trickle-echo` binary beside this test's profile directory, built if this run did
/// not build it (`cargo test -p livegate-pipeline` alone does not).
fn trickle_echo() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("trickle-echo");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "livegate-trickle", "--bin", "trickle-echo"])
            .current_dir(repo_path(""))
            .status()
            .unwrap();
        assert!(status.success(), "building trickle-echo");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// A trickle server on 127.0.0.1, nested under `/ai/trickle` as the gateway nests it.
async fn serve(server: &TrickleServer) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().nest("/ai/trickle", server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ai/trickle", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

fn echo(base: &str, stream: &str) -> Child {
    Command::new(trickle_echo())
        .args(["--subscribe", &format!("{base}/{stream}")])
        .args(["--publish", &format!("{base}/{stream}-out")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn stream() -> (StreamRegistry, Arc<Stream>) {
    let registry = StreamRegistry::new();
    let stream = registry.create(StreamKey::parse("cam").unwrap()).unwrap();
    (registry, stream)
}

fn fixture() -> Bytes {
    Bytes::from(std::fs::read(repo_path("tests/fixtures/h264-baseline-opus.ts")).unwrap())
}

fn video_units(ts: &[u8]) -> Vec<AccessUnit> {
    let mut demuxer = Demuxer::new();
    let mut events = Vec::new();
    demuxer.push(ts, &mut events);
    demuxer.finish(&mut events);
    events
        .into_iter()
        .filter_map(|event| match event {
            DemuxEvent::AccessUnit(au) if au.codec == Codec::H264 => Some(au),
            _ => None,
        })
        .collect()
}

/// Writes the fixture into the input a few times, paced like a live publisher, then ends the
/// input. Each pass is shifted in time so timestamps keep rising, as a live stream's do.
fn publish_then_close(stream: &Arc<Stream>, passes: u64) -> tokio::task::JoinHandle<Vec<u64>> {
    let input = stream.input().clone();
    tokio::spawn(async move {
        let ts = fixture();
        let mut sent_pts = Vec::new();
        for pass in 0..passes {
            let shifted = shift_pts(&ts, pass * 10 * 90_000);
            sent_pts.extend(video_units(&shifted).iter().map(|au| au.pts.ticks()));
            for start in (0..shifted.len()).step_by(7 * 188) {
                let chunk = shifted.slice(start..(start + 7 * 188).min(shifted.len()));
                if input.write(chunk).is_err() {
                    return sent_pts;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        input.close();
        sent_pts
    })
}

/// The stream with every PTS, DTS and PCR moved by `by_90k` (at most 10 minutes), so a looped
/// file reads as one continuous stream.
fn shift_pts(ts: &Bytes, by_90k: u64) -> Bytes {
    if by_90k == 0 {
        return ts.clone();
    }
    let mut out = ts.to_vec();
    for packet in out.chunks_mut(188) {
        if packet.len() < 188 || packet[0] != 0x47 {
            continue;
        }
        let adaptation = (packet[3] >> 4) & 0x3;
        let mut payload = 4;
        if adaptation & 0x2 != 0 {
            let len = usize::from(packet[4]);
            if len > 0 && packet[5] & 0x10 != 0 {
                let pcr = &mut packet[6..12];
                let base = (u64::from(pcr[0]) << 25)
                    | (u64::from(pcr[1]) << 17)
                    | (u64::from(pcr[2]) << 9)
                    | (u64::from(pcr[3]) << 1)
                    | (u64::from(pcr[4]) >> 7);
                let base = (base + by_90k) & ((1 << 33) - 1);
                pcr[0] = (base >> 25) as u8;
                pcr[1] = (base >> 17) as u8;
                pcr[2] = (base >> 9) as u8;
                pcr[3] = (base >> 1) as u8;
                pcr[4] = (pcr[4] & 0x7f) | (((base & 1) as u8) << 7);
            }
            payload = 5 + len;
        }
        let pusi = packet[1] & 0x40 != 0;
        if !pusi || adaptation & 0x1 == 0 || payload + 14 > 188 {
            continue;
        }
        let pes = &mut packet[payload..];
        if pes[..3] != [0, 0, 1] {
            continue;
        }
        let flags = pes[7] >> 6;
        for (present, at) in [(flags & 0x2 != 0, 9), (flags == 0x3, 14)] {
            if !present || at + 5 > pes.len() {
                continue;
            }
            let b = &mut pes[at..at + 5];
            let t = ((u64::from(b[0] >> 1) & 0x7) << 30)
                | (u64::from(b[1]) << 22)
                | (u64::from(b[2] >> 1) << 15)
                | (u64::from(b[3]) << 7)
                | u64::from(b[4] >> 1);
            let t = (t + by_90k) & ((1 << 33) - 1);
            b[0] = (b[0] & 0xf1) | (((t >> 30) as u8 & 0x7) << 1);
            b[1] = (t >> 22) as u8;
            b[2] = (((t >> 15) as u8) << 1) | 1;
            b[3] = (t >> 7) as u8;
            b[4] = ((t as u8) << 1) | 1;
        }
    }
    Bytes::from(out)
}

/// Everything written to the stream's outputs, across generations, until the stream's output
/// closes for good or the worker stops.
async fn read_outputs(stream: Arc<Stream>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut current = None;
    while let Ok(output) = stream.next_output(current.as_ref()).await {
        let mut reader = output.reader_from_oldest();
        loop {
            match reader.read().await {
                ReadOutcome::Chunk(chunk) => bytes.extend_from_slice(&chunk),
                ReadOutcome::Lagged { skipped_bytes } => panic!("lagged {skipped_bytes}"),
                ReadOutcome::Closed => break,
            }
        }
        if stream.is_closed() || output.is_closed() && stream.input().is_closed() {
            break;
        }
        current = Some(output);
    }
    bytes
}

async fn finished(mut status: watch::Receiver<TrickleStatus>) -> TrickleStatus {
    tokio::time::timeout(SAFETY_NET, status.wait_for(|s| s.finished))
        .await
        .expect("the trickle worker ended")
        .unwrap()
        .clone()
}

/// The pipeline through `spec` with a `trickle-echo` worker on `echo_base`: the output is the
/// input's pictures, timed through the worker.
async fn echo_round_trip(spec: TrickleSpec, server: Option<TrickleServer>, echo_base: &str) {
    let (_registry, stream) = stream();
    let metrics = PipelineMetrics::register(&prometheus::Registry::new()).unwrap();
    let options = TrickleOptions {
        server,
        metrics: Some(metrics.clone()),
        min_segment: Duration::from_millis(500),
        ..TrickleOptions::default()
    };
    let job = WorkerJob::new(stream.clone(), stream.input().clone());
    let worker = attach_trickle(&spec, job, options).unwrap();
    let mut worker_process = echo(echo_base, "cam");
    let reader = tokio::spawn(read_outputs(stream.clone()));
    let sent_pts = publish_then_close(&stream, 3).await.unwrap();

    let status = finished(worker.status()).await;
    let out = tokio::time::timeout(SAFETY_NET, reader)
        .await
        .unwrap()
        .unwrap();
    let got = video_units(&out);
    assert!(status.input_segments >= 3, "{status:?}");
    assert!(status.output_segments >= 2, "{status:?}");
    // The worker joins at the next segment, so the first may be missed; the rest all come.
    assert!(
        got.len() * 2 > sent_pts.len(),
        "{} of {} pictures came back",
        got.len(),
        sent_pts.len()
    );
    assert!(got[0].keyframe, "output starts at a segment's IDR");
    let sent: HashSet<u64> = sent_pts.iter().copied().collect();
    assert!(
        got.iter().all(|au| sent.contains(&au.pts.ticks())),
        "every picture out is a picture in"
    );
    assert!(
        metrics.latency("trickle").get_sample_count() as usize >= got.len() / 2,
        "pictures were timed through the worker"
    );
    let exit = tokio::time::timeout(SAFETY_NET, worker_process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "trickle-echo ended with the input: {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_the_gateways_own_channels_carries_the_stream() {
    let server = TrickleServer::new(ServerConfig::default());
    let (base, _serving) = serve(&server).await;
    echo_round_trip(TrickleSpec::Hosted, Some(server), &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_a_remote_trickle_server_carries_the_stream() {
    // The remote side creates the channels, as a go-livepeer orchestrator does.
    let remote = TrickleServer::new(ServerConfig::default());
    remote.create_channel("cam").unwrap();
    remote.create_channel("cam-out").unwrap();
    let (base, _serving) = serve(&remote).await;
    let spec = TrickleSpec::parse(Some(&base)).unwrap();
    echo_round_trip(spec, None, &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_while_input_flows_restarts_then_fails_the_stream() {
    let server = TrickleServer::new(ServerConfig::default());
    let (_registry, stream) = stream();
    let options = TrickleOptions {
        server: Some(server.clone()),
        supervision: Supervision {
            out_timeout: Some(Duration::from_millis(400)),
            max_restarts: 1,
            restart_window: Duration::from_secs(60),
        },
        ..TrickleOptions::default()
    };
    let job = WorkerJob::new(stream.clone(), stream.input().clone());
    let worker = attach_trickle(&TrickleSpec::Hosted, job, options).unwrap();
    // Nobody serves the channels: the input flows and nothing comes back.
    let publisher = publish_then_close(&stream, 20);
    let status = finished(worker.status()).await;
    assert_eq!(status.starts, 2, "{status:?}");
    assert_eq!(status.watchdog_restarts, 1, "{status:?}");
    let failure = status.failure.expect("given up");
    assert!(failure.contains("more than 1 restarts"), "{failure}");
    assert!(stream.is_closed());
    assert!(
        !server.has_channel("cam") && !server.has_channel("cam-out"),
        "the failed stream's channels are closed: {:?}",
        server.channel_names()
    );
    publisher.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_channel_is_a_crash_and_the_output_resubscribed() {
    let server = TrickleServer::new(ServerConfig::default());
    let (base, _serving) = serve(&server).await;
    let (_registry, stream) = stream();
    let options = TrickleOptions {
        server: Some(server.clone()),
        min_segment: Duration::from_millis(500),
        ..TrickleOptions::default()
    };
    let job = WorkerJob::new(stream.clone(), stream.input().clone());
    let worker = attach_trickle(&TrickleSpec::Hosted, job, options).unwrap();
    let mut status = worker.status();
    let _echo = echo(&base, "cam");
    let publisher = publish_then_close(&stream, 6);
    tokio::time::timeout(SAFETY_NET, status.wait_for(|s| s.output_segments >= 1))
        .await
        .unwrap()
        .unwrap();
    // The worker (or anyone) closes the output channel mid-stream.
    server.close_channel("cam-out").unwrap();
    tokio::time::timeout(SAFETY_NET, status.wait_for(|s| s.starts >= 2))
        .await
        .unwrap()
        .unwrap();
    assert!(
        server.has_channel("cam-out"),
        "a fresh output channel for the next worker"
    );
    assert!(status.borrow().failure.is_none());
    stream.close();
    publisher.await.unwrap();
    finished(worker.status()).await;
}
