//! The `exec` pipeline: a local process per stream that reads the stream's MPEG-TS on stdin
//! and writes processed MPEG-TS on stdout (`LIVE_AI_PIPELINE=exec:<command line>`).
//!
//! The command line is split as a POSIX shell would split simple words and quotes (no shell
//! runs: no globbing, variables or pipes; write a script for those). Per stream the worker
//! gets `LIVE_AI_STREAM_KEY`, and `LIVE_AI_PIPELINE_PARAMS` (JSON) when parameters were
//! given. Its stderr is logged line by line under a span naming the stream and the pid.
//!
//! # Supervision contract
//!
//! | event | what the supervisor does |
//! |---|---|
//! | process starts | a fresh output [`RingBuffer`] becomes the stream's next output generation ([`Stream::set_output`]), so viewers rebase onto it |
//! | input chunk | written to stdin; a worker that reads slowly makes our input reader lag: the lost bytes are skipped, counted ([`ExecStatus::input_skipped_bytes`]) and the worker resynchronises on the next TS packet |
//! | stdout bytes | written to the output ring in whole 188-byte packets as they arrive (ISO/IEC 13818-1 §2.4.3.2), so a viewer that lags lands on a packet boundary |
//! | process exits while the input is open | a crash: restarted after a [`Backoff`] delay, the new process fed from the newest input (not the backlog, which would only add latency) |
//! | no output for [`Supervision::out_timeout`] while input flows | stuck: killed and restarted as after a crash (the [monitor](crate::supervise::monitor) raises it) |
//! | a restart beyond [`Supervision::max_restarts`] within the window | the stream fails: it is closed (its publisher and viewers are let go) with the reason logged and on the status board |
//! | input closes (the publisher left) | stdin is closed so the worker can flush, then after [`ExecOptions::eof_grace`] it is killed; its output ring is closed and the supervisor ends |
//! | stream closes, or another worker installs the output | the process is killed at once and the supervisor ends |
//!
//! Each process leads its own process group and is killed with the group (SIGKILL), so a
//! script's children go with it; `kill_on_drop` covers a supervisor dropped with its runtime.
//! If the gateway itself is killed, workers see EOF on stdin and are expected to exit.
//!
//! It does not judge what the worker writes: garbage is stored as bytes and left to the
//! output's readers, which skip what does not demux. Its stdin and stdout paths scan video
//! PES headers for the [latency probe](crate::supervise::latency), which matches output to
//! input frames by PTS (`ffmpeg -copyts` keeps them).
//!
//! ```no_run
//! use livegate_media::{registry::StreamRegistry, StreamKey};
//! use livegate_pipeline::exec::{attach_exec, ExecOptions, ExecSpec};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = StreamRegistry::new();
//! let stream = registry.create(StreamKey::parse("cam1")?)?;
//! let spec = ExecSpec::parse("examples/workers/ffmpeg-filter.sh negate")?;
//! let worker = attach_exec(&spec, &stream, stream.input(), ExecOptions::default());
//! stream.close();
//! let status = worker.finished().await; // the process is gone
//! assert!(status.pid.is_none());
//! # Ok(()) }
//! ```

mod backoff;
pub mod stderr;

use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use livegate_media::registry::{OutputSlot, Stream};
use livegate_media::ring::{ReadOutcome, RingBuffer, RingReader, DEFAULT_CAPACITY_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

pub use backoff::Backoff;

use crate::supervise::latency::VideoPtsScanner;
use crate::supervise::metrics::PipelineMetrics;
use crate::supervise::monitor::SharedProbe;
use crate::supervise::oversight::{stream_left, Oversight, RestartReason};
use crate::supervise::status::StatusBoard;
use crate::Supervision;
pub(crate) use backoff::BackoffState;

/// Environment variable holding the stream key, for every worker.
pub const STREAM_KEY_ENV: &str = "LIVE_AI_STREAM_KEY";
/// Environment variable holding the pipeline parameters as JSON, when there are any.
pub const PARAMS_ENV: &str = "LIVE_AI_PIPELINE_PARAMS";

const TS_PACKET_BYTES: usize = 188;
/// Most bytes taken from a worker's stdout in one read (and so the largest output chunk).
const STDOUT_READ_BYTES: usize = 64 * 1024;
/// How long the output and stderr readers may take to see EOF once the process group is
/// gone; longer means something outside the group holds the pipes, and they are dropped.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

/// A command line for `exec:`, split into a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    command_line: String,
    /// Never empty: the program, then its arguments.
    argv: Vec<String>,
}

/// Why an `exec:` command line cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecSpecError {
    /// Nothing after `exec:`.
    #[error("exec: the command line is empty")]
    Empty,
    /// An unterminated quote or a trailing backslash.
    #[error("exec: cannot split {command_line:?}: unterminated quote or trailing backslash")]
    Quoting { command_line: String },
}

impl ExecSpec {
    /// Splits `command_line` into words as `sh` would for plain words, `'single'` and
    /// `"double"` quotes and backslash escapes; nothing is expanded.
    ///
    /// ```
    /// use livegate_pipeline::exec::ExecSpec;
    /// let spec = ExecSpec::parse(r#"ffmpeg -vf "hue=s=0, negate" -f mpegts"#)?;
    /// assert_eq!(spec.program(), "ffmpeg");
    /// assert_eq!(spec.args(), ["-vf", "hue=s=0, negate", "-f", "mpegts"]);
    /// # Ok::<(), livegate_pipeline::exec::ExecSpecError>(())
    /// ```
    pub fn parse(command_line: &str) -> Result<ExecSpec, ExecSpecError> {
        let argv = shell_words::split(command_line).map_err(|_| ExecSpecError::Quoting {
            command_line: command_line.to_owned(),
        })?;
        if argv.is_empty() {
            return Err(ExecSpecError::Empty);
        }
        Ok(ExecSpec {
            command_line: command_line.to_owned(),
            argv,
        })
    }

    /// The program: a path, or a name looked up in `PATH`.
    pub fn program(&self) -> &str {
        &self.argv[0]
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[String] {
        &self.argv[1..]
    }

    /// The command line as configured.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }
}

impl fmt::Display for ExecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command_line)
    }
}

/// How [`attach_exec`] runs and supervises a worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecOptions {
    /// Pipeline parameters as JSON text, given to the worker as [`PARAMS_ENV`].
    pub params_json: Option<String>,
    /// Restart delays after crashes.
    pub backoff: Backoff,
    /// Capacity of each output ring.
    pub output_capacity_bytes: usize,
    /// How long a worker may keep running to flush its output once its input ended.
    pub eof_grace: Duration,
    /// The stuck-worker watchdog and the restart budget.
    pub supervision: Supervision,
    /// Where the worker's status is shown.
    pub status: StatusBoard,
    /// Latency, restarts and failures for Prometheus.
    pub metrics: Option<PipelineMetrics>,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            params_json: None,
            backoff: Backoff::default(),
            output_capacity_bytes: DEFAULT_CAPACITY_BYTES,
            eof_grace: Duration::from_secs(2),
            supervision: Supervision::default(),
            status: StatusBoard::default(),
            metrics: None,
        }
    }
}

/// What a supervisor has done so far, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecStatus {
    /// The running process, if one runs now.
    pub pid: Option<u32>,
    /// Processes started (the first start and every restart).
    pub starts: u64,
    /// Input bytes the workers never got: lost to lag, or skipped to feed a restarted worker
    /// live input.
    pub input_skipped_bytes: u64,
    /// How the last process ended.
    pub last_exit: Option<ExitStatus>,
    /// Processes killed because they wrote nothing while their input flowed.
    pub watchdog_restarts: u64,
    /// Why the supervisor gave the worker up and failed the stream.
    pub failure: Option<String>,
    /// The supervisor has ended: no process runs and none will start.
    pub finished: bool,
}

/// A running exec supervisor. Dropping it leaves the supervisor running: it ends by itself
/// when its input or stream closes.
#[derive(Debug)]
pub struct ExecWorker {
    status: watch::Receiver<ExecStatus>,
    task: JoinHandle<()>,
}

impl ExecWorker {
    /// The supervisor's status now and every later change.
    pub fn status(&self) -> watch::Receiver<ExecStatus> {
        self.status.clone()
    }

    /// Waits until the supervisor has ended; by then every process it started has exited
    /// and been reaped.
    pub async fn finished(self) -> ExecStatus {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "exec supervisor failed");
        }
        let status = self.status.borrow().clone();
        status
    }
}

/// Starts supervising `spec` for `stream`: a process fed from `input`, restarted on crashes,
/// each start a new output generation. Ends by itself when `input` or the stream closes.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn attach_exec(
    spec: &ExecSpec,
    stream: &Arc<Stream>,
    input: &Arc<RingBuffer>,
    options: ExecOptions,
) -> ExecWorker {
    let (status_tx, status) = watch::channel(ExecStatus::default());
    let span = tracing::info_span!("exec", stream = %stream.key());
    let oversight = span.in_scope(|| {
        Oversight::start(
            "exec",
            stream,
            input,
            options.supervision,
            &options.status,
            options.metrics.clone(),
        )
    });
    let supervisor = Supervisor {
        oversight,
        spec: spec.clone(),
        options,
        stream: stream.clone(),
        slots: stream.subscribe_output(),
        input: input.reader_from_oldest(),
        status: status_tx,
        output: None,
    };
    let task = tokio::spawn(supervisor.run().instrument(span));
    ExecWorker { status, task }
}

/// Why a process stopped being served.
enum Ended {
    /// It exited by itself while the input was open.
    Exited(ExitStatus),
    /// It wrote no output for the watchdog's timeout while its input flowed.
    Stuck,
    /// The input closed: the worker was given its grace and the supervisor ends.
    InputClosed,
    /// The stream closed or another worker took the output: the supervisor ends.
    StreamLeft,
}

/// One started process and the tasks reading its pipes.
struct Process {
    child: Child,
    pid: Option<u32>,
    stdin: ChildStdin,
    stdout_task: JoinHandle<()>,
    stderr_task: JoinHandle<()>,
}

struct Supervisor {
    oversight: Oversight,
    spec: ExecSpec,
    options: ExecOptions,
    stream: Arc<Stream>,
    slots: watch::Receiver<OutputSlot>,
    input: RingReader,
    status: watch::Sender<ExecStatus>,
    /// The output ring of the latest process.
    output: Option<Arc<RingBuffer>>,
}

impl Supervisor {
    async fn run(mut self) {
        let mut backoff = BackoffState::new(self.options.backoff);
        loop {
            let started = Instant::now();
            let ended = match self.start() {
                Ok(process) => self.serve(process).await,
                Err(e) => {
                    tracing::warn!(command = %self.spec, error = %e, "cannot start the worker");
                    Ended::Exited(ExitStatus::default())
                }
            };
            let reason = match ended {
                Ended::Exited(_) => RestartReason::Crash,
                Ended::Stuck => RestartReason::Stuck,
                Ended::InputClosed | Ended::StreamLeft => break,
            };
            if let Err(failure) = self.oversight.restart(reason, &self.stream) {
                self.status.send_modify(|s| s.failure = Some(failure));
                break;
            }
            let delay = backoff.delay_after(started.elapsed());
            tracing::warn!(delay_ms = delay.as_millis() as u64, "restarting the worker");
            let left = {
                let Supervisor {
                    input,
                    status,
                    slots,
                    output,
                    ..
                } = &mut self;
                tokio::select! {
                    () = tokio::time::sleep(delay) => false,
                    () = discard_until_closed(input, status) => true,
                    () = stream_left(slots, output.as_ref()) => true,
                }
            };
            if left {
                break;
            }
            // A restarted worker gets live input; the backlog would only add latency.
            let skipped_bytes = self.input.skip_to_newest();
            self.status
                .send_modify(|s| s.input_skipped_bytes += skipped_bytes);
        }
        self.status.send_modify(|s| s.finished = true);
        self.oversight.on_end();
        tracing::info!("exec worker stopped");
    }

    /// Spawns the process and installs its output ring as the stream's next generation.
    fn start(&mut self) -> std::io::Result<Process> {
        let mut command = Command::new(self.spec.program());
        command
            .args(self.spec.args())
            .env(STREAM_KEY_ENV, self.stream.key().as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group, so the whole tree can be killed with it.
            .process_group(0);
        if let Some(params) = &self.options.params_json {
            command.env(PARAMS_ENV, params);
        }
        let mut child = command.spawn()?;
        let pid = child.id();
        let (stdin, stdout, stderr) = (
            child.stdin.take().expect("piped"),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );

        // Counted first, so whoever sees the new generation sees this start counted.
        self.status.send_modify(|s| {
            s.pid = pid;
            s.starts += 1;
        });
        self.oversight.on_start(pid);
        let output = RingBuffer::new(self.options.output_capacity_bytes);
        self.stream.set_output(output.clone());
        self.output = Some(output.clone());
        let span = tracing::info_span!("worker", pid);
        let stdout_task = tokio::spawn(
            copy_stdout(stdout, output, self.oversight.probe.clone()).instrument(span.clone()),
        );
        let stderr_task =
            tokio::spawn(stderr::log_lines(BufReader::new(stderr)).instrument(span.clone()));
        span.in_scope(|| tracing::info!(command = %self.spec, "worker started"));
        Ok(Process {
            child,
            pid,
            stdin,
            stdout_task,
            stderr_task,
        })
    }

    /// Feeds the process until it exits, the input closes or the stream leaves us; then makes
    /// sure it and its group are gone.
    async fn serve(&mut self, process: Process) -> Ended {
        let Process {
            mut child,
            pid,
            stdin,
            stdout_task,
            stderr_task,
        } = process;
        let eof_grace = self.options.eof_grace;
        let ended = {
            let Supervisor {
                input,
                status,
                slots,
                output,
                oversight,
                ..
            } = self;
            let Oversight { stuck, probe, .. } = oversight;
            stuck.borrow_and_update();
            tokio::select! {
                // Closing the stream also closes its input: the stream wins, with no grace.
                biased;
                () = stream_left(slots, output.as_ref()) => Ended::StreamLeft,
                Ok(()) = stuck.changed() => Ended::Stuck,
                exit = child.wait() => match exit {
                    Ok(exit) => Ended::Exited(exit),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot wait for the worker");
                        Ended::Exited(ExitStatus::default())
                    }
                },
                () = feed(input, stdin, status, probe, eof_grace) => Ended::InputClosed,
            }
        };

        let exit = match &ended {
            Ended::Exited(exit) => {
                tracing::warn!(?pid, %exit, "worker exited while its input is open");
                kill_group(pid);
                Some(*exit)
            }
            Ended::Stuck => {
                tracing::warn!(?pid, "killing the stuck worker");
                kill_group(pid);
                self.status.send_modify(|s| s.watchdog_restarts += 1);
                child.wait().await.ok()
            }
            Ended::StreamLeft => {
                kill_group(pid);
                child.wait().await.ok()
            }
            Ended::InputClosed => {
                // `feed` dropped stdin: the worker sees EOF and may flush its last output,
                // unless the stream is closing too (its close closes the input first).
                let grace = tokio::time::timeout(self.options.eof_grace, child.wait());
                let exited = tokio::select! {
                    biased;
                    () = stream_left(&mut self.slots, self.output.as_ref()) => None,
                    exited = grace => exited.ok(),
                };
                let exit = match exited {
                    Some(exit) => exit.ok(),
                    None => {
                        tracing::info!(?pid, "worker killed after its input ended");
                        kill_group(pid);
                        child.wait().await.ok()
                    }
                };
                kill_group(pid);
                exit
            }
        };

        for mut task in [stdout_task, stderr_task] {
            if tokio::time::timeout(PIPE_DRAIN, &mut task).await.is_err() {
                tracing::warn!(?pid, "a process outside the worker's group holds its pipes");
                task.abort();
            }
        }
        if matches!(ended, Ended::InputClosed) {
            // This generation is over; viewers drain it and wait for a republish.
            if let Some(output) = &self.output {
                output.close();
            }
        }
        self.status.send_modify(|s| {
            s.pid = None;
            s.last_exit = exit;
        });
        self.oversight.entry.update(|s| s.pid = None);
        tracing::info!(?pid, exit = ?exit, "worker ended");
        ended
    }
}

/// Writes every input chunk to the worker's stdin until the input closes and is drained,
/// then drops stdin (EOF). A worker that stops reading does not hold this up forever: once
/// the input has closed, a write still blocked after `eof_grace` ends the feed; a worker that
/// closed its stdin gets nothing more while the input is watched until it closes.
async fn feed(
    input: &mut RingReader,
    stdin: ChildStdin,
    status: &watch::Sender<ExecStatus>,
    probe: &SharedProbe,
    eof_grace: Duration,
) {
    let mut stdin = Some(stdin);
    let mut scanner = VideoPtsScanner::default();
    loop {
        match input.read().await {
            ReadOutcome::Chunk(chunk) => {
                let Some(pipe) = stdin.as_mut() else { continue };
                let now = Instant::now();
                scanner.scan(&chunk, |pts| probe.lock().on_input(pts, now));
                let ring = input.ring().clone();
                tokio::select! {
                    // Biased so the watch on the input is only set up when the pipe is full.
                    biased;
                    written = pipe.write_all(&chunk) => if let Err(e) = written {
                        tracing::info!(error = %e, "worker closed its stdin");
                        stdin = None;
                    },
                    () = async {
                        until_closed(&ring).await;
                        tokio::time::sleep(eof_grace).await;
                    } => {
                        tracing::info!("worker stopped reading after its input ended");
                        return;
                    }
                }
            }
            ReadOutcome::Lagged { skipped_bytes } => {
                tracing::warn!(skipped_bytes, "worker reads too slowly; input skipped");
                status.send_modify(|s| s.input_skipped_bytes += skipped_bytes);
            }
            ReadOutcome::Closed => return,
        }
    }
}

/// Reads and drops the input until it closes, counting nothing as skipped: between processes
/// no worker is there to lose it (the restart skips to the newest input and counts that).
async fn discard_until_closed(input: &mut RingReader, status: &watch::Sender<ExecStatus>) {
    loop {
        match input.read().await {
            ReadOutcome::Chunk(_) => {}
            ReadOutcome::Lagged { skipped_bytes } => {
                status.send_modify(|s| s.input_skipped_bytes += skipped_bytes);
            }
            ReadOutcome::Closed => return,
        }
    }
}

/// Resolves when `ring` is closed.
async fn until_closed(ring: &Arc<RingBuffer>) {
    let mut watcher = ring.reader();
    while watcher.read().await != ReadOutcome::Closed {}
}

/// Copies the worker's stdout into `output` in whole TS packets until EOF or the ring closes.
async fn copy_stdout(mut stdout: ChildStdout, output: Arc<RingBuffer>, probe: SharedProbe) {
    let mut buf = BytesMut::with_capacity(STDOUT_READ_BYTES);
    let mut scanner = VideoPtsScanner::default();
    loop {
        if buf.capacity() - buf.len() < TS_PACKET_BYTES {
            buf.reserve(STDOUT_READ_BYTES);
        }
        match stdout.read_buf(&mut buf).await {
            Ok(0) => {
                // A partial last packet is still the worker's output.
                let _ = output.write(buf.split().freeze());
                return;
            }
            Ok(_) => {
                let whole = buf.len() - buf.len() % TS_PACKET_BYTES;
                if whole == 0 {
                    continue;
                }
                // `split_to` shares the allocation with the ring; the tail stays here.
                let chunk = buf.split_to(whole).freeze();
                let now = Instant::now();
                scanner.scan(&chunk, |pts| {
                    probe.lock().on_output(pts, now);
                });
                if output.write(chunk).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the worker's stdout");
                return;
            }
        }
    }
}

/// SIGKILLs the process group led by `pid`: the worker and whatever it started.
fn kill_group(pid: Option<u32>) {
    let Some(pgid) = pid.and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
        return;
    };
    // SAFETY: kill(2) reads no memory of ours. A negative pid names the process group, the
    // child's own (`process_group(0)`); its id stays reserved while the unreaped leader or
    // any member exists. Only after a leader that exited was reaped and its group emptied
    // could the id name a new group, which needs the pid space to wrap in between. ESRCH
    // (already gone) is fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_like_sh_without_expansion() {
        let spec = ExecSpec::parse(r#"sh -c 'head -c 1000; exit 1' "$HOME" a\ b"#).unwrap();
        assert_eq!(spec.program(), "sh");
        assert_eq!(spec.args(), ["-c", "head -c 1000; exit 1", "$HOME", "a b"]);
        assert_eq!(
            spec.to_string(),
            r#"sh -c 'head -c 1000; exit 1' "$HOME" a\ b"#
        );
    }

    #[test]
    fn empty_and_unbalanced_command_lines_are_refused() {
        assert_eq!(ExecSpec::parse("  "), Err(ExecSpecError::Empty));
        let err = ExecSpec::parse("ffmpeg -vf 'negate").unwrap_err();
        assert!(matches!(err, ExecSpecError::Quoting { .. }), "{err}");
    }
}
