//! What every worker of a gateway shares: how workers are supervised and the parts handed
//! in from outside this crate.

use std::time::Duration;

use livegate_media::ts::segment::DEFAULT_MIN_SEGMENT_DURATION;
use livegate_trickle::TrickleServer;

use crate::supervise::metrics::PipelineMetrics;
use crate::supervise::status::StatusBoard;
use crate::upstream::SharedUpstreamConnector;

/// How stuck or crashing workers are handled (`LIVE_AI_OUT_TIMEOUT`,
/// `LIVE_AI_MAX_RESTARTS`, `LIVE_AI_RESTART_WINDOW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// No output for this long while input keeps arriving means the worker is stuck: it is
    /// restarted (or reconnected). `None` turns the watchdog off.
    pub out_timeout: Option<Duration>,
    /// Restarts (crashes and watchdog restarts alike) allowed within `restart_window`; one
    /// more fails the stream.
    pub max_restarts: u32,
    /// The window `max_restarts` is counted over.
    pub restart_window: Duration,
}

impl Default for Supervision {
    fn default() -> Supervision {
        Supervision {
            out_timeout: Some(Duration::from_secs(5)),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}

/// Process-wide context for [`Pipeline::attach`](crate::Pipeline::attach). Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// Stuck and crashing workers.
    pub supervision: Supervision,
    /// Starts `whip:` upstream workers; `None` where the binary did not provide one, which
    /// makes a `whip:` pipeline fail to attach.
    pub upstream: Option<SharedUpstreamConnector>,
    /// Every stream's worker status.
    pub status: StatusBoard,
    /// Prometheus metrics; `None` in tests that do not look at them.
    pub metrics: Option<PipelineMetrics>,
    /// The trickle channels this gateway hosts (`trickle` without a URL); `None` makes that
    /// pipeline fail to attach.
    pub trickle_server: Option<TrickleServer>,
    /// Shortest trickle input segment (`LIVE_AI_MIN_SEG_DUR`).
    pub min_segment: Duration,
}

impl Default for WorkerContext {
    fn default() -> WorkerContext {
        WorkerContext {
            supervision: Supervision::default(),
            upstream: None,
            status: StatusBoard::default(),
            metrics: None,
            trickle_server: None,
            min_segment: DEFAULT_MIN_SEGMENT_DURATION,
        }
    }
}
