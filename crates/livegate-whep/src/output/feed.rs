//! One viewer's feed of a stream output: the cached GOP first, then live frames.

use std::collections::VecDeque;
use std::sync::Arc;

use livegate_media::Codec;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Counters, StreamOutput};
use crate::frame::{MediaFrame, SequencedFrame};

/// What one feed went through, for logs and per-session stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Frames handed out.
    pub frames: u64,
    /// Of which from the GOP cache.
    pub cached_frames: u64,
    /// Times the viewer fell behind and lost frames.
    pub lags: u64,
    /// Frames lost that way.
    pub frames_lost: u64,
    /// Video frames skipped while waiting for a keyframe.
    pub keyframe_skips: u64,
}

/// One viewer's frames of a [`StreamOutput`]; made by [`StreamOutput::subscribe`] or
/// [`crate::StreamOutputs::get_or_start`].
///
/// While it exists it counts as a viewer and keeps the output's reader running; dropping it
/// is how a viewer leaves. It joins the frame flow lazily, at the first [`recv`]: the frames
/// then start at the last IDR held in the GOP cache, so a feed made when the WHEP request
/// arrives and first read when the peer connection is up starts from a fresh keyframe
/// instead of a queue of stale frames.
///
/// The feed belongs to the one task that sends the viewer's media. That task may read as
/// slowly as it likes without slowing anyone else: past
/// [`OutputConfig::viewer_queue_frames`](super::OutputConfig::viewer_queue_frames) it loses
/// frames and resumes at the next keyframe.
///
/// [`recv`]: ViewerFeed::recv
pub struct ViewerFeed {
    output: Arc<StreamOutput>,
    joined: bool,
    cached: VecDeque<SequencedFrame>,
    live: Option<broadcast::Receiver<SequencedFrame>>,
    /// Live frames numbered below this were in the cache snapshot, or left out of it on
    /// purpose (audio timed before the cached IDR).
    horizon: u64,
    /// Video is skipped until a keyframe: at the start (when the cache had no GOP) and after
    /// a lag. Audio goes on: it needs no reference.
    video_needs_keyframe: bool,
    stats: FeedStats,
}

impl std::fmt::Debug for ViewerFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerFeed")
            .field("stream", self.output.stream().key())
            .field("joined", &self.joined)
            .field("stats", &self.stats)
            .finish()
    }
}

impl ViewerFeed {
    pub(super) fn new(output: Arc<StreamOutput>) -> ViewerFeed {
        ViewerFeed {
            output,
            joined: false,
            cached: VecDeque::new(),
            live: None,
            horizon: 0,
            video_needs_keyframe: true,
            stats: FeedStats::default(),
        }
    }

    /// The output this feed reads: its tracks, status and events.
    pub fn output(&self) -> &Arc<StreamOutput> {
        &self.output
    }

    /// The next frame: first the GOP cache (the last IDR, the video after it and the audio
    /// from its PTS on), then live frames, across worker restarts (watch
    /// [`MediaFrame::source_generation`]). Video never starts or resumes on anything but a
    /// keyframe. `None` once the stream has closed and every frame before that was handed
    /// out.
    ///
    /// The first call waits until the output's reader has read what its buffer held when
    /// it started. Cancel-safe: a frame is only taken when the call returns it.
    pub async fn recv(&mut self) -> Option<MediaFrame> {
        if !self.joined {
            self.join().await;
        }
        loop {
            let item = match self.cached.pop_front() {
                Some(item) => {
                    self.stats.cached_frames += 1;
                    item
                }
                None => {
                    let live = self.live.as_mut()?;
                    match live.recv().await {
                        Ok(item) if item.seq < self.horizon => continue,
                        Ok(item) => item,
                        Err(RecvError::Lagged(lost)) => {
                            self.lagged(lost);
                            continue;
                        }
                        Err(RecvError::Closed) => {
                            self.live = None;
                            return None;
                        }
                    }
                }
            };
            let frame = item.frame;
            if frame.codec == Codec::H264 && self.video_needs_keyframe {
                if !frame.keyframe {
                    self.stats.keyframe_skips += 1;
                    Counters::add(&self.output.shared.counters.keyframe_skips, 1);
                    continue;
                }
                self.video_needs_keyframe = false;
            }
            self.stats.frames += 1;
            return Some(frame);
        }
    }

    /// Counters of this feed.
    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// Frames waiting to be read: how far this viewer is behind the stream's reader.
    pub fn queued_frames(&self) -> usize {
        self.cached.len() + self.live.as_ref().map_or(0, |live| live.len())
    }

    /// Subscribes and copies the cache under one lock, once the reader is primed.
    async fn join(&mut self) {
        let shared = &self.output.shared;
        loop {
            let primed = shared.primed.notified();
            tokio::pin!(primed);
            // Registered before looking, so a wake-up between the look and the wait counts.
            primed.as_mut().enable();
            {
                let state = shared.state.lock();
                if state.closed {
                    self.live = None;
                    break;
                }
                if state.primed {
                    self.live = state.sender.as_ref().map(broadcast::Sender::subscribe);
                    self.cached = state.gop.gop().cloned().collect();
                    self.horizon = state.next_seq;
                    break;
                }
            }
            primed.await;
        }
        self.joined = true;
    }

    fn lagged(&mut self, lost: u64) {
        self.stats.lags += 1;
        self.stats.frames_lost += lost;
        let counters = &self.output.shared.counters;
        Counters::add(&counters.viewer_lags, 1);
        Counters::add(&counters.frames_lost_to_lag, lost);
        self.video_needs_keyframe = true;
    }
}

impl Drop for ViewerFeed {
    fn drop(&mut self) {
        self.output.viewer_left();
    }
}
