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
//! - trickle and webrtc workers come later, one module each.
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
//! [`Stream::set_output`], which closes the previous output, so viewers move to the next
//! output generation (see [`livegate_media::registry::OutputSlot`]). A worker ends by itself
//! when its input closes (the publisher left) or its stream closes; nobody needs to stop it.
//!
//! ```
//! use livegate_media::{registry::StreamRegistry, StreamKey};
//! use livegate_pipeline::Pipeline;
//!
//! let registry = StreamRegistry::new();
//! let stream = registry.create(StreamKey::parse("cam1")?)?;
//! let pipeline: Pipeline = "passthrough".parse()?;
//! pipeline.attach(&stream, stream.input());
//! assert!(stream.output().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use livegate_media::registry::Stream;
use livegate_media::ring::RingBuffer;

pub mod exec;
pub mod file_source;
pub mod looped_file;
pub mod passthrough;

use exec::{ExecOptions, ExecSpec, ExecSpecError};

/// The kind of worker that turns every published stream's input into its output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pipeline {
    /// The output is the input ([`passthrough`]).
    #[default]
    Passthrough,
    /// A local process per stream ([`exec`]), configured as `exec:<command line>`.
    Exec(ExecSpec),
}

/// A pipeline that [`Pipeline::from_str`] cannot make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineParseError {
    /// Not a pipeline name livegate knows.
    #[error("unknown pipeline {0:?}; supported: passthrough, exec:<command line>")]
    Unknown(String),
    /// `exec:` with a command line that cannot be split.
    #[error(transparent)]
    Exec(#[from] ExecSpecError),
}

impl Pipeline {
    /// The name it is configured by.
    pub fn name(&self) -> &'static str {
        match self {
            Pipeline::Passthrough => "passthrough",
            Pipeline::Exec(_) => "exec",
        }
    }

    /// Starts a worker that turns `input` (the buffer the stream's current publisher writes:
    /// [`Stream::input`] at first, a reconnected publisher's buffer later) into a new output
    /// generation of `stream`. The worker ends by itself when `input` or the stream closes.
    pub fn attach(&self, stream: &Arc<Stream>, input: &Arc<RingBuffer>) {
        self.attach_with_params(stream, input, None);
    }

    /// [`attach`](Pipeline::attach), with the stream's pipeline parameters (JSON text, e.g.
    /// the auth webhook's `params`) for the workers that take them: an exec worker gets them
    /// as `LIVE_AI_PIPELINE_PARAMS`; passthrough ignores them.
    pub fn attach_with_params(
        &self,
        stream: &Arc<Stream>,
        input: &Arc<RingBuffer>,
        params_json: Option<String>,
    ) {
        match self {
            Pipeline::Passthrough => passthrough::attach_passthrough(stream, input),
            Pipeline::Exec(spec) => {
                let options = ExecOptions {
                    params_json,
                    ..ExecOptions::default()
                };
                // The supervisor ends by itself with its input or stream.
                drop(exec::attach_exec(spec, stream, input, options));
            }
        }
    }
}

impl FromStr for Pipeline {
    type Err = PipelineParseError;

    /// `passthrough`, or `exec:` followed by a command line ([`ExecSpec::parse`]).
    fn from_str(s: &str) -> Result<Pipeline, PipelineParseError> {
        if let Some(command_line) = s.strip_prefix("exec:") {
            return Ok(Pipeline::Exec(ExecSpec::parse(command_line)?));
        }
        match s {
            "passthrough" => Ok(Pipeline::Passthrough),
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
}
