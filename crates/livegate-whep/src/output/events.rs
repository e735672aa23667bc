//! A stream output's status changes as discrete events, for the server-sent events extension
//! of WHEP (draft-murillo-whep, event types `active`, `inactive` and `viewercount`), and
//! for logs.

use tokio::sync::watch;

use super::{Activity, OutputStatus};

/// A change of a stream output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputEvent {
    /// Frames are flowing from output buffer `generation`; a new generation after
    /// `Active` is a worker restart that did not wait long enough to be seen as inactive.
    Active { generation: u64 },
    /// No frames for now: the worker restarted or the publisher left.
    Inactive,
    /// The number of viewers changed.
    ViewerCount(usize),
    /// The stream closed for good; the last event.
    Closed,
}

/// Events of one output, made by [`super::StreamOutput::events`].
///
/// Built on the status watch, so it reports states, not every transition: an output that
/// goes inactive and active again between two calls shows as `Active` with the new
/// generation. That is what a viewer's page needs (is there a picture, how many watch) and
/// it never blocks the output.
#[derive(Debug)]
pub struct OutputEvents {
    status: watch::Receiver<OutputStatus>,
    activity: Option<OutputEvent>,
    viewers: Option<usize>,
    ended: bool,
}

impl OutputEvents {
    pub(super) fn new(status: watch::Receiver<OutputStatus>) -> OutputEvents {
        OutputEvents {
            status,
            activity: None,
            viewers: None,
            ended: false,
        }
    }

    /// The next change; the first calls report the current activity and viewer count.
    /// `None` after [`OutputEvent::Closed`]. Cancel-safe.
    pub async fn next(&mut self) -> Option<OutputEvent> {
        if self.ended {
            return None;
        }
        loop {
            let (activity, viewers) = {
                let status = self.status.borrow_and_update();
                let activity = match status.activity {
                    Activity::Active => OutputEvent::Active {
                        generation: status.generation,
                    },
                    Activity::Inactive => OutputEvent::Inactive,
                    Activity::Closed => OutputEvent::Closed,
                };
                (activity, status.viewers)
            };
            if self.activity != Some(activity) {
                self.activity = Some(activity);
                self.ended = activity == OutputEvent::Closed;
                return Some(activity);
            }
            if self.viewers != Some(viewers) {
                self.viewers = Some(viewers);
                return Some(OutputEvent::ViewerCount(viewers));
            }
            if self.status.changed().await.is_err() {
                // The output is gone, and with it any change to come.
                self.ended = true;
                return None;
            }
        }
    }
}
