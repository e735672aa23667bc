//! The reader task of one stream output: output buffers in, frames to the GOP cache and the
//! viewers out.
//!
//! One generation after another: it reads the stream's current output buffer until it
//! closes (the worker restarted or the stream ended), then takes the next one from
//! [`Stream::subscribe_output`](livegate_media::registry::Stream::subscribe_output), with a
//! fresh demuxer and parameter-set cache, since a new worker's stream owes nothing to the
//! old one's.

use std::mem;
use std::sync::Arc;

use bytes::Bytes;
use livegate_media::h264::{BFrameDetector, ParameterSetCache, SpsInfo};
use livegate_media::ring::{ReadOutcome, RingBuffer};
use livegate_media::ts::demux::{DemuxEvent, Demuxer};
use livegate_media::{AccessUnit, Codec, Track};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Activity, Counters, OutputTracks, Shared};
use crate::frame::{MediaFrame, SequencedFrame};
use crate::packetize::{opus_payloads, H264Packetizer};

/// Runs one reader until `cancel`, the stream's end, or a newer run taking over.
pub(super) async fn run(shared: Arc<Shared>, run_id: u64, cancel: CancellationToken) {
    let _alive = Alive(shared.clone());
    let sender = shared.state.lock().sender.clone();
    let Some(sender) = sender else {
        return;
    };
    let mut reader = Reader::new(shared, run_id, sender);
    tokio::select! {
        biased;
        _ = cancel.cancelled() => {}
        _ = reader.run() => {}
    }
}

/// Counts the task in the status until it ends, however it ends.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.status.send_modify(|s| s.reader_tasks -= 1);
    }
}

/// A newer run owns the output; this one must stop without publishing.
struct Superseded;

struct Reader {
    shared: Arc<Shared>,
    run_id: u64,
    /// The reader's own handle on the channel, so sending takes no lock of ours.
    sender: broadcast::Sender<SequencedFrame>,
    packetizer: H264Packetizer,
    events: Vec<DemuxEvent>,
    /// Per generation, replaced by [`Reader::start_generation`].
    generation: Generation,
    /// What the status says, to publish only changes.
    published_tracks: Option<OutputTracks>,
}

/// What belongs to one output buffer.
struct Generation {
    number: u64,
    demuxer: Demuxer,
    parameter_sets: ParameterSetCache,
    b_frames: BFrameDetector,
    tracks: Option<Vec<Track>>,
    /// No H.264 is sent until an IDR: at the start, and after a gap in the input.
    video_needs_keyframe: bool,
    /// A frame was published, so the output is active.
    active: bool,
}

impl Generation {
    fn new(number: u64) -> Generation {
        Generation {
            number,
            demuxer: Demuxer::new(),
            parameter_sets: ParameterSetCache::new(),
            b_frames: BFrameDetector::new(),
            tracks: None,
            video_needs_keyframe: true,
            active: false,
        }
    }
}

impl Reader {
    fn new(shared: Arc<Shared>, run_id: u64, sender: broadcast::Sender<SequencedFrame>) -> Self {
        let packetizer = H264Packetizer::new(shared.config.max_payload_bytes)
            .expect("the configuration was validated");
        let published_tracks = shared.status.borrow().tracks.clone();
        Reader {
            shared,
            run_id,
            sender,
            packetizer,
            events: Vec::new(),
            generation: Generation::new(0),
            published_tracks,
        }
    }

    async fn run(&mut self) {
        let mut slots = self.shared.stream.subscribe_output();
        // Until primed, what the buffer already holds only fills the cache: nobody has
        // subscribed yet, and sending seconds of old frames would only add latency.
        let mut catching_up = true;
        loop {
            let buffer = loop {
                let (closed, number, buffer) = {
                    let slot = slots.borrow_and_update();
                    (slot.closed, slot.generation, slot.buffer.clone())
                };
                let newer = buffer.filter(|_| number > self.generation.number);
                // A stream closed right after a worker restart still has the new buffer's
                // frames for the viewers already watching; a viewer arriving after the
                // close gets nothing.
                if closed && (newer.is_none() || catching_up) {
                    self.close_for_good();
                    return;
                }
                if let Some(buffer) = newer {
                    self.generation = Generation::new(number);
                    self.shared
                        .status
                        .send_if_modified(|s| mem::replace(&mut s.generation, number) != number);
                    break buffer;
                }
                if catching_up {
                    catching_up = false;
                    if self.set_primed().is_err() {
                        return;
                    }
                }
                if slots.changed().await.is_err() {
                    // The stream owns the sender and we own the stream: cannot happen.
                    return;
                }
            };
            if self.read_buffer(&buffer, &mut catching_up).await.is_err() {
                return;
            }
        }
    }

    /// Reads one output buffer until it closes.
    async fn read_buffer(
        &mut self,
        buffer: &Arc<RingBuffer>,
        catching_up: &mut bool,
    ) -> Result<(), Superseded> {
        let mut ring = buffer.reader_from_oldest();
        loop {
            let outcome = if *catching_up {
                match ring.try_read() {
                    Some(outcome) => outcome,
                    None => {
                        *catching_up = false;
                        self.set_primed()?;
                        continue;
                    }
                }
            } else {
                ring.read().await
            };
            let live = !*catching_up;
            match outcome {
                ReadOutcome::Chunk(chunk) => {
                    self.generation.demuxer.push(&chunk, &mut self.events);
                    self.handle_events(live)?;
                }
                ReadOutcome::Lagged { skipped_bytes } => self.input_gap(skipped_bytes),
                ReadOutcome::Closed => {
                    self.generation.demuxer.finish(&mut self.events);
                    self.handle_events(live)?;
                    if mem::take(&mut self.generation.active) {
                        self.shared.status.send_modify(|s| {
                            if s.activity == Activity::Active {
                                s.activity = Activity::Inactive;
                            }
                        });
                    }
                    return Ok(());
                }
            }
            if *catching_up {
                // Catching up never waits; let other tasks run between chunks.
                tokio::task::consume_budget().await;
            }
        }
    }

    fn handle_events(&mut self, live: bool) -> Result<(), Superseded> {
        let mut events = mem::take(&mut self.events);
        let mut result = Ok(());
        for event in events.drain(..) {
            match event {
                DemuxEvent::Tracks(tracks) => {
                    self.generation.tracks = Some(tracks);
                    self.publish_tracks();
                }
                DemuxEvent::AccessUnit(au) => {
                    if let Some(frame) = self.frame_of(au) {
                        if let Err(e) = self.publish(frame, live) {
                            result = Err(e);
                            break;
                        }
                    }
                }
            }
        }
        events.clear();
        self.events = events;
        result
    }

    /// Packetizes one access unit, or drops it.
    fn frame_of(&mut self, au: AccessUnit) -> Option<MediaFrame> {
        let data = match au.codec {
            Codec::H264 => self.prepare_video(&au)?,
            Codec::Opus => au.data.clone(),
        };
        let payloads = match au.codec {
            Codec::H264 => {
                let dropped = self.packetizer.dropped_nal_units();
                let payloads = self.packetizer.packetize(&data);
                let dropped = self.packetizer.dropped_nal_units() - dropped;
                Counters::add(&self.shared.counters.dropped_nal_units, dropped);
                payloads
            }
            Codec::Opus => opus_payloads(au.data),
        };
        if payloads.is_empty() {
            return None;
        }
        Some(MediaFrame {
            codec: au.codec,
            pts: au.pts,
            keyframe: au.keyframe,
            source_generation: self.generation.number,
            payloads,
            access_unit_bytes: data.len(),
        })
    }

    /// Learns from an H.264 access unit (B-frames, parameter sets) and returns what to send
    /// of it: the unit with the cached SPS/PPS in front if it is an IDR lacking them, or
    /// nothing if it depends on pictures not sent.
    fn prepare_video(&mut self, au: &AccessUnit) -> Option<Bytes> {
        let counters = &self.shared.counters;
        let generation = &mut self.generation;
        if generation.b_frames.observe(au.pts, au.dts) {
            Counters::add(&counters.b_frame_access_units, 1);
        }
        let sps_before = generation.parameter_sets.sps_info().copied();
        generation.parameter_sets.observe(&au.data);
        if generation.parameter_sets.sps_info().copied() != sps_before {
            self.publish_tracks();
        }
        let generation = &mut self.generation;
        if generation.video_needs_keyframe && !au.keyframe {
            Counters::add(&self.shared.counters.frames_before_keyframe, 1);
            return None;
        }
        generation.video_needs_keyframe = false;
        Some(if au.keyframe {
            generation
                .parameter_sets
                .with_parameter_sets(au.data.clone())
        } else {
            au.data.clone()
        })
    }

    /// Into the cache, then to the viewers if live; see the contract on
    /// [`super::StreamOutput`] for why in that order and the send outside the lock.
    fn publish(&mut self, frame: MediaFrame, live: bool) -> Result<(), Superseded> {
        let counters = &self.shared.counters;
        let (payload_bytes, au_bytes) = (frame.payload_bytes(), frame.access_unit_bytes);
        let item = {
            let mut state = self.shared.state.lock();
            if state.run.as_ref().map(|r| r.id) != Some(self.run_id) {
                return Err(Superseded);
            }
            let item = SequencedFrame {
                seq: state.next_seq,
                frame,
            };
            state.next_seq += 1;
            let overflows = state.gop.overflows();
            state.gop.push(&item);
            Counters::add(&counters.gop_overflows, state.gop.overflows() - overflows);
            item
        };
        Counters::add(&counters.frames, 1);
        Counters::add(&counters.payload_bytes, payload_bytes as u64);
        Counters::add(&counters.access_unit_bytes, au_bytes as u64);
        if !self.generation.active {
            self.generation.active = true;
            let number = self.generation.number;
            self.shared.status.send_modify(|s| {
                s.activity = Activity::Active;
                s.generation = number;
            });
        }
        if live {
            // No receiver is not an error: the viewers may all be between joins.
            let _ = self.sender.send(item);
        }
        Ok(())
    }

    fn publish_tracks(&mut self) {
        let Some(tracks) = &self.generation.tracks else {
            return;
        };
        let h264 = self.generation.parameter_sets.sps_info().copied();
        // An SPS the parser did not understand keeps the last good one for the SDP.
        let h264: Option<SpsInfo> =
            h264.or_else(|| self.published_tracks.as_ref().and_then(|t| t.h264));
        let tracks = OutputTracks {
            tracks: tracks.clone(),
            h264,
        };
        if self.published_tracks.as_ref() == Some(&tracks) {
            return;
        }
        self.published_tracks = Some(tracks.clone());
        self.shared.status.send_modify(|s| s.tracks = Some(tracks));
    }

    /// The reader fell behind its buffer: what follows does not continue what was sent.
    fn input_gap(&mut self, skipped_bytes: u64) {
        Counters::add(&self.shared.counters.input_gaps, 1);
        tracing::warn!(
            stream = %self.shared.stream.key(),
            skipped_bytes,
            "output reader fell behind its buffer; video resumes at the next keyframe"
        );
        self.generation.video_needs_keyframe = true;
        self.shared.state.lock().gop.clear();
    }

    fn set_primed(&self) -> Result<(), Superseded> {
        {
            let mut state = self.shared.state.lock();
            if state.run.as_ref().map(|r| r.id) != Some(self.run_id) {
                return Err(Superseded);
            }
            state.primed = true;
        }
        self.shared.primed.notify_waiters();
        Ok(())
    }

    fn close_for_good(&self) {
        {
            let mut state = self.shared.state.lock();
            state.closed = true;
            state.sender = None;
            if state.run.as_ref().map(|r| r.id) == Some(self.run_id) {
                state.run = None;
            }
        }
        self.shared
            .status
            .send_modify(|s| s.activity = Activity::Closed);
        self.shared.primed.notify_waiters();
    }
}
