//! Pipeline workers: what turns a stream's input MPEG-TS into its output MPEG-TS.
//!
//! In the gateway's flow (publisher → input [`RingBuffer`] → **pipeline worker** → output
//! [`RingBuffer`] → viewers) this crate owns the middle step. A [`Pipeline`] is the kind of
//! worker livegate runs for every published stream (`LIVE_AI_PIPELINE`); each kind lives in its
//! own module:
//!
//! - [`passthrough`]: the output is the input, untouched.
//! - [`exec`]: a local process per stream, MPEG-TS in on stdin and out on stdout
//!   (`exec:<command line>`), restarted with backoff when it crashes.
//! - [`upstream`]: `whip:<url>`, an upstream realtime AI service reached as a WHIP client;
//!   the worker lives in `livegate-upstream` and is handed in through [`WorkerContext`].
//! - [`trickle`]: `trickle:<url>` or `trickle`, a remote worker over go-livepeer's trickle
//!   protocol: input cut into IDR-aligned segments on channel `{stream}`, output read from
//!   `{stream}-out`, on a remote trickle server or on channels the gateway hosts.
//!
//! [`file_source`] is not a pipeline (it has no input): it plays an MPEG-TS file in a loop as a
//! stream's output, for smoke tests and for checking playback before any publisher exists.
//!
//! This crate knows nothing of WebRTC or HTTP, and it does not create or remove publishers'
//! streams: the WHIP layer owns their life and calls [`Pipeline::attach`].
//!
//! # Worker contract
//!
//! A worker serves one *input generation*: the buffer one publisher connection writes. When a
//! publisher reconnects within its grace period with a new input buffer, the WHIP layer
//! attaches the pipeline again; the new worker installs a new output with
//! [`Stream::set_output`](livegate_media::registry::Stream::set_output), which closes the previous output, so viewers move to the next
//! output generation (see [`livegate_media::registry::OutputSlot`]). A worker ends by itself
//! when its input closes (the publisher left) or its stream closes; nobody needs to stop it.
//!
//! ```
//! use livegate_media::{registry::StreamRegistry, StreamKey};
//! use livegate_pipeline::{Pipeline, WorkerContext, WorkerJob};
//!
//! let registry = StreamRegistry::new();
//! let stream = registry.create(StreamKey::parse("cam1")?)?;
//! let pipeline: Pipeline = "passthrough".parse()?;
//! pipeline.attach(&WorkerContext::default(), WorkerJob::new(stream.clone(), stream.input().clone()))?;
//! assert!(stream.output().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

mod context;
pub mod exec;
pub mod file_source;
mod job;
pub mod looped_file;
pub mod passthrough;
pub mod supervise;
pub mod trickle;
pub mod upstream;

pub use context::{Supervision, WorkerContext};
use exec::{ExecOptions, ExecSpec, ExecSpecError};
pub use job::{
    data_channel_pair, PublisherDataChannel, WorkerDataChannel, WorkerJob, DATA_CHANNEL_QUEUE,
};
use trickle::{TrickleAttachError, TrickleOptions, TrickleSpec, TrickleSpecError};
use upstream::{UpstreamSpec, UpstreamSpecError};

/// The kind of worker that turns every published stream's input into its output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pipeline {
    /// The output is the input ([`passthrough`]).
    #[default]
    Passthrough,
    /// A local process per stream ([`exec`]), configured as `exec:<command line>`.
    Exec(ExecSpec),
    /// A remote worker over the trickle protocol ([`trickle`]), configured as `trickle`
    /// (channels hosted by this gateway) or `trickle:<url>` (a remote trickle server).
    Trickle(TrickleSpec),
    /// An upstream realtime AI service reached as a WHIP client ([`upstream`]), configured
    /// as `whip:<url>`.
    Whip(UpstreamSpec),
}

/// A pipeline that [`Pipeline::from_str`] cannot make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineParseError {
    /// Not a pipeline name livegate knows.
    #[error(
        "unknown pipeline {0:?}; supported: passthrough, exec:<command line>, trickle, \
         trickle:<url>, whip:<url>"
    )]
    Unknown(String),
    /// `exec:` with a command line that cannot be split.
    #[error(transparent)]
    Exec(#[from] ExecSpecError),
    /// `trickle:` with something that is not an HTTP URL.
    #[error(transparent)]
    Trickle(#[from] TrickleSpecError),
    /// `whip:` with something that is not an HTTP URL.
    #[error(transparent)]
    Whip(#[from] UpstreamSpecError),
}

/// A worker that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// A `whip:` pipeline in a gateway built without an upstream connector.
    #[error("pipeline whip: needs an upstream connector, and none was configured")]
    NoUpstreamConnector,
    /// The trickle worker could not start.
    #[error(transparent)]
    Trickle(#[from] TrickleAttachError),
}

impl Pipeline {
    /// The name it is configured by.
    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::Passthrough => "passthrough",
            Pipeline::Exec(_) => "exec",
            Pipeline::Trickle(_) => "trickle",
            Pipeline::Whip(_) => "whip",
        }
    }

    /// Starts a worker that turns `job.input` (the buffer the stream's current publisher
    /// writes: [`Stream::input`](livegate_media::registry::Stream::input) at first, a reconnected publisher's buffer later) into a new
    /// output generation of `job.stream`. The worker ends by itself when its input or the
    /// stream closes. Returns at once; a worker that connects somewhere does so in the
    /// background.
    pub fn attach(&self, context: &WorkerContext, job: WorkerJob) -> Result<(), AttachError> {
        if *self == Pipeline::Passthrough {
            watch_passthrough(context, &job);
        }
        match self {
            Pipeline::Passthrough => passthrough::attach_job(job),
            Pipeline::Exec(spec) => {
                let options = ExecOptions {
                    params_json: job.params_json,
                    supervision: context.supervision,
                    status: context.status.clone(),
                    metrics: context.metrics.clone(),
                    ..ExecOptions::default()
                };
                // The supervisor ends by itself with its input or stream.
                drop(exec::attach_exec(spec, &job.stream, &job.input, options));
            }
            Pipeline::Trickle(spec) => {
                let options = TrickleOptions {
                    min_segment: context.min_segment,
                    server: context.trickle_server.clone(),
                    supervision: context.supervision,
                    status: context.status.clone(),
                    metrics: context.metrics.clone(),
                    ..TrickleOptions::default()
                };
                trickle::attach_trickle(spec, job, options)?;
            }
            Pipeline::Whip(spec) => context
                .upstream
                .as_ref()
                .ok_or(AttachError::NoUpstreamConnector)?
                .attach(spec, job),
        }
        Ok(())
    }
}

/// Shows a passthrough stream on the status board. Nothing can get stuck (the output is the
/// input), so the monitor only reports; outside a runtime (a synchronous caller) there is
/// nothing to report with, and the stream simply has no status entry.
fn watch_passthrough(context: &WorkerContext, job: &WorkerJob) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let entry = context.status.register(job.stream.key(), "passthrough");
    entry.update(|s| s.starts = 1);
    supervise::monitor::spawn_monitor(job.stream.clone(), job.input.clone(), entry, None, None);
}

impl FromStr for Pipeline {
    type Err = PipelineParseError;

    /// `passthrough`, `exec:` followed by a command line ([`ExecSpec::parse`]), or `whip:`
    /// followed by an upstream's WHIP URL ([`UpstreamSpec::parse`]).
    fn from_str(s: &str) -> Result<Pipeline, PipelineParseError> {
        if let Some(command_line) = s.strip_prefix("exec:") {
            return Ok(Pipeline::Exec(ExecSpec::parse(command_line)?));
        }
        if let Some(url) = s.strip_prefix("trickle:") {
            return Ok(Pipeline::Trickle(TrickleSpec::parse(Some(url))?));
        }
        if let Some(url) = s.strip_prefix("whip:") {
            return Ok(Pipeline::Whip(UpstreamSpec::parse(url)?));
        }
        match s {
            "passthrough" => Ok(Pipeline::Passthrough),
            "trickle" => Ok(Pipeline::Trickle(TrickleSpec::Hosted)),
            other => Err(PipelineParseError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for Pipeline {
    /// The configured form, which [`Pipeline::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pipeline::Passthrough => f.write_str("passthrough"),
            Pipeline::Exec(spec) => write!(f, "exec:{spec}"),
            Pipeline::Trickle(spec) => spec.fmt(f),
            Pipeline::Whip(spec) => write!(f, "whip:{spec}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        let pipeline: Pipeline = "passthrough".parse().unwrap();
        assert_eq!(pipeline, Pipeline::Passthrough);
        assert_eq!(pipeline.to_string().parse::<Pipeline>(), Ok(pipeline));
        let err = "Passthrough".parse::<Pipeline>().unwrap_err();
        assert_eq!(err, PipelineParseError::Unknown("Passthrough".into()));
        assert!(err.to_string().contains("supported: passthrough"), "{err}");
    }

    #[test]
    fn exec_command_lines_round_trip_and_bad_ones_are_refused() {
        let pipeline: Pipeline = "exec:ffmpeg -vf 'hue=s=0' -f mpegts pipe:1"
            .parse()
            .unwrap();
        let Pipeline::Exec(spec) = &pipeline else {
            panic!("{pipeline:?}")
        };
        assert_eq!(spec.args(), ["-vf", "hue=s=0", "-f", "mpegts", "pipe:1"]);
        assert_eq!(pipeline.name(), "exec");
        assert_eq!(pipeline.to_string().parse::<Pipeline>(), Ok(pipeline));
        assert_eq!(
            "exec:".parse::<Pipeline>(),
            Err(PipelineParseError::Exec(ExecSpecError::Empty))
        );
        assert!(matches!(
            "exec:sh -c 'exit".parse::<Pipeline>(),
            Err(PipelineParseError::Exec(ExecSpecError::Quoting { .. }))
        ));
    }

    #[test]
    fn whip_urls_round_trip_and_non_http_ones_are_refused() {
        let pipeline: Pipeline = "whip:https://ai.example/whip/{stream}".parse().unwrap();
        assert_eq!(pipeline.name(), "whip");
        assert_eq!(pipeline.to_string().parse::<Pipeline>(), Ok(pipeline));
        for bad in ["whip:", "whip:ftp://x", "whip:http://", "whip:http:///path"] {
            assert!(
                matches!(bad.parse::<Pipeline>(), Err(PipelineParseError::Whip(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_in_pipeline_urls_are_never_printed() {
        for (configured, shown) in [
            (
                "whip:https://user:secret@ai.example/whip",
                "whip:https://***@ai.example/whip",
            ),
            (
                "trickle:http://secret@10.0.0.1:8935/ai/trickle",
                "trickle:http://***@10.0.0.1:8935/ai/trickle",
            ),
        ] {
            let pipeline: Pipeline = configured.parse().unwrap();
            assert_eq!(pipeline.to_string(), shown);
            assert!(!format!("{pipeline:?}").contains("secret"), "{pipeline:?}");
        }
    }

    #[test]
    fn a_whip_pipeline_without_a_connector_does_not_attach() {
        let registry = livegate_media::registry::StreamRegistry::new();
        let stream = registry
            .create(livegate_media::StreamKey::parse("a").unwrap())
            .unwrap();
        let pipeline: Pipeline = "whip:http://127.0.0.1:1/whip".parse().unwrap();
        let job = WorkerJob::new(stream.clone(), stream.input().clone());
        assert!(matches!(
            pipeline.attach(&WorkerContext::default(), job),
            Err(AttachError::NoUpstreamConnector)
        ));
        assert!(stream.output().is_none());
    }
}
