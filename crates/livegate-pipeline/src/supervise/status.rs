//! What each stream's worker is doing, for `GET /live/{stream}/status` and the streams list:
//! one entry per stream with a worker, kept by the worker's own tasks and removed when they
//! end.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use livegate_media::StreamKey;
use parking_lot::Mutex;
use serde::Serialize;

use super::latency::{LatencySummary, TimestampMode};

/// A worker's life as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Started, no output yet.
    Starting,
    /// Writing output.
    Running,
    /// Crashed or stuck; waiting out the backoff before the next start.
    Restarting,
    /// Given up: it needed more restarts than the budget allows ([`WorkerStatus::failure`]).
    Failed,
    /// Its input or stream ended.
    Stopped,
}

/// One direction of the worker's media: its input buffer or its current output buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowStatus {
    /// Bits per second over the last second.
    pub bitrate_bps: u64,
    /// Bytes written since the buffer was made.
    pub bytes: u64,
    /// How long ago the last write was, in milliseconds; `None` before the first.
    pub last_write_ms_ago: Option<u64>,
    /// PTS (90 kHz) of the last video frame seen, where the worker's paths scan it.
    pub last_video_pts_90k: Option<u64>,
}

/// A stream's worker as `GET /live/{stream}/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// `passthrough`, `exec`, `trickle` or `whip`.
    pub pipeline: &'static str,
    pub state: WorkerState,
    /// The running process of an exec worker.
    pub pid: Option<u32>,
    /// Processes or connections started.
    pub starts: u64,
    /// Restarts for any reason (crash, watchdog).
    pub restarts: u64,
    /// Restarts because the worker wrote nothing while its input flowed.
    pub watchdog_restarts: u64,
    /// Why the worker was given up.
    pub failure: Option<String>,
    pub input: FlowStatus,
    pub output: FlowStatus,
    /// Whether output frames carry their input frames' timestamps.
    pub timestamps: TimestampMode,
    /// Input-to-output time of the recent frames, where it can be measured.
    pub latency: Option<LatencySummary>,
}

impl WorkerStatus {
    fn new(pipeline: &'static str) -> WorkerStatus {
        WorkerStatus {
            pipeline,
            state: WorkerState::Starting,
            pid: None,
            starts: 0,
            restarts: 0,
            watchdog_restarts: 0,
            failure: None,
            input: FlowStatus::default(),
            output: FlowStatus::default(),
            timestamps: TimestampMode::Unknown,
            latency: None,
        }
    }
}

type Cells = Mutex<HashMap<StreamKey, Arc<Mutex<WorkerStatus>>>>;

/// Every stream's worker status. Cheap to clone; clones share the entries.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    cells: Arc<Cells>,
}

impl StatusBoard {
    /// Registers the worker now serving `key`, replacing an earlier worker's entry.
    pub fn register(&self, key: &StreamKey, pipeline: &'static str) -> StatusEntry {
        let cell = Arc::new(Mutex::new(WorkerStatus::new(pipeline)));
        self.cells.lock().insert(key.clone(), cell.clone());
        StatusEntry(Arc::new(EntryInner {
            board: Arc::downgrade(&self.cells),
            key: key.clone(),
            cell,
        }))
    }

    /// The status of `key`'s worker, if one is registered.
    pub fn get(&self, key: &StreamKey) -> Option<WorkerStatus> {
        let cell = self.cells.lock().get(key).cloned()?;
        let status = cell.lock().clone();
        Some(status)
    }

    /// Number of entries (streams with a worker).
    pub fn len(&self) -> usize {
        self.cells.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A worker's handle on its entry. Clones share it; when the last clone is dropped the
/// entry leaves the board, unless a newer worker of the stream has replaced it.
#[derive(Debug, Clone)]
pub struct StatusEntry(Arc<EntryInner>);

#[derive(Debug)]
struct EntryInner {
    board: Weak<Cells>,
    key: StreamKey,
    cell: Arc<Mutex<WorkerStatus>>,
}

impl StatusEntry {
    /// Changes the status under its lock; keep `change` to a few assignments.
    pub fn update(&self, change: impl FnOnce(&mut WorkerStatus)) {
        change(&mut self.0.cell.lock());
    }

    pub fn get(&self) -> WorkerStatus {
        self.0.cell.lock().clone()
    }
}

impl Drop for EntryInner {
    fn drop(&mut self) {
        let Some(board) = self.board.upgrade() else {
            return;
        };
        let mut cells = board.lock();
        if cells
            .get(&self.key)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell))
        {
            cells.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_leaves_with_its_last_handle_but_never_removes_a_newer_one() {
        let board = StatusBoard::default();
        let key = StreamKey::parse("a").unwrap();
        let first = board.register(&key, "exec");
        first.update(|s| s.restarts = 2);
        assert_eq!(board.get(&key).unwrap().restarts, 2);
        let clone = first.clone();
        drop(first);
        assert!(board.get(&key).is_some());
        let second = board.register(&key, "exec");
        drop(clone);
        assert_eq!(board.get(&key).unwrap().restarts, 0);
        drop(second);
        assert!(board.is_empty());
    }
}
