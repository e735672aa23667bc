//! What every worker of a gateway shares: how workers are supervised and the parts handed
//! in from outside this crate.

use std::time::Duration;

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
#[derive(Debug, Clone, Default)]
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
}
