//! One stream as the HTTP API shows it, the same object in `GET /live/{stream}/status` and in
//! each entry of `GET /streams`, so the two cannot drift. It reads what the parts already
//! keep (the registry, the WHIP table, the pipeline's status board, the WHEP seat count); it
//! measures nothing itself.

use livegate_media::StreamKey;
use livegate_pipeline::supervise::status::WorkerStatus;
use serde::Serialize;

use crate::http::AppState;

/// A stream's state. `openapi.yaml` (`StreamView`) documents every field.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamView {
    /// The stream key.
    pub stream: String,
    /// Registered and not closed: viewers may play it.
    pub live: bool,
    /// `live`, `grace` (the publisher left less than `LIVE_AI_REPUBLISH_GRACE` ago), or
    /// `null` when WHIP does not hold the stream (a test stream, or a worker still ending).
    pub publisher: Option<&'static str>,
    /// Output buffers installed so far (a worker restart is a new one); `null` once closed.
    pub output_generation: Option<u64>,
    /// WHEP viewers, waiting requests included; `null` when WHEP is off.
    pub viewers: Option<usize>,
    /// The stream's pipeline (`passthrough`, `exec`, `trickle`, `whip`), from its worker.
    pub pipeline: Option<&'static str>,
    /// The worker's state, input and output bitrates and latency; `null` without a worker.
    pub worker: Option<WorkerStatus>,
}

impl StreamView {
    /// `key` as the API shows it, or `None` when no part knows it.
    pub fn of(state: &AppState, key: &StreamKey) -> Option<StreamView> {
        let stream = state.registry.get(key).filter(|s| !s.is_closed());
        let worker = state.workers.status.get(key);
        let publisher = state.whip.as_ref().and_then(|w| w.publisher_state(key));
        if stream.is_none() && worker.is_none() && publisher.is_none() {
            return None;
        }
        Some(StreamView {
            stream: key.as_str().to_owned(),
            live: stream.is_some(),
            publisher: publisher.map(|p| p.as_str()),
            output_generation: stream.map(|s| s.subscribe_output().borrow().generation),
            viewers: state.whep.as_ref().map(|whep| whep.viewers(key)),
            pipeline: worker.as_ref().map(|w| w.pipeline),
            worker,
        })
    }
}
