//! In-process publishing and subscribing, without HTTP: what the gateway uses for the
//! channels it hosts itself. Same rules as over HTTP (the HTTP handlers use
//! [`LocalSegmentWriter`] and [`SegmentReader`] themselves).

use std::sync::Arc;

use bytes::Bytes;

use super::channel::{Channel, ReadLookup};
use super::segment::{Segment, SegmentEnd, SegmentReader, WriterGeneration};
use super::{ServerEvent, TrickleServer};
use crate::error::{Refusal, TrickleError};
use crate::{SeqNo, SEQ_NEXT};

/// Writes one segment. Dropping it without [`finish`](Self::finish) after writing ends the
/// segment as [`SegmentEnd::Dropped`], so readers never wait for a writer that is gone;
/// dropping it before the first byte leaves the segment waiting for another writer.
#[derive(Debug)]
pub struct LocalSegmentWriter {
    server: TrickleServer,
    channel: Arc<Channel>,
    segment: Arc<Segment>,
    writer: WriterGeneration,
}

impl LocalSegmentWriter {
    /// Opens segment `seq` (`-1`: the write head) of a channel for writing.
    pub(crate) fn open(server: &TrickleServer, channel: &str, seq: SeqNo) -> Result<Self, Refusal> {
        let channel = server.channel_for_publish(channel)?;
        let segment = channel.segment_for_write(seq)?;
        let writer = segment.attach_writer()?;
        server.emit(ServerEvent::PublisherConnected {
            channel: channel.name().clone(),
            seq: segment.seq(),
        });
        Ok(Self {
            server: server.clone(),
            channel,
            segment,
            writer,
        })
    }

    /// The seq being written.
    pub fn seq(&self) -> SeqNo {
        self.segment.seq()
    }

    /// Appends a chunk; readers get it at once.
    pub fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        if self.segment.ended() == Some(SegmentEnd::ChannelClosed) {
            return Err(TrickleError::ChannelClosed);
        }
        Ok(self.write_chunk(chunk).map(|_| ())?)
    }

    /// Ends the segment normally.
    pub fn finish(self) {
        self.end(SegmentEnd::Finished);
    }

    /// Appends a chunk, returning the segment's size so far.
    pub(crate) fn write_chunk(&mut self, chunk: Bytes) -> Result<usize, Refusal> {
        if chunk.is_empty() {
            return Ok(self.segment.len_bytes());
        }
        let first_byte = self.segment.is_fresh();
        let max_segment_bytes = self.server.inner.config.max_segment_bytes;
        let len_bytes = self.segment.write(self.writer, chunk, max_segment_bytes)?;
        if first_byte {
            self.channel.note_first_byte(self.seq());
            self.server.emit(ServerEvent::SegmentStarted {
                channel: self.channel.name().clone(),
                seq: self.seq(),
            });
        }
        Ok(len_bytes)
    }

    pub(crate) fn channel(&self) -> &Arc<Channel> {
        &self.channel
    }

    pub(crate) fn ended(&self) -> Option<SegmentEnd> {
        self.segment.ended()
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.segment.len_bytes()
    }

    /// Waits until something else ends the segment (channel closed, segment dropped).
    pub(crate) async fn wait_end(&self) -> SegmentEnd {
        self.segment.wait_end().await
    }

    fn end(&self, end: SegmentEnd) {
        if self.segment.end_by(self.writer, end) {
            self.server.emit(ServerEvent::SegmentEnded {
                channel: self.channel.name().clone(),
                seq: self.seq(),
                end,
                len_bytes: self.segment.len_bytes(),
            });
        }
    }
}

impl Drop for LocalSegmentWriter {
    fn drop(&mut self) {
        self.end(SegmentEnd::Dropped);
    }
}

/// Publishes segments 0, 1, 2, … to a channel of an in-process server.
#[derive(Debug)]
pub struct LocalPublisher {
    server: TrickleServer,
    channel: String,
    next_seq: SeqNo,
}

impl LocalPublisher {
    pub(crate) fn new(server: TrickleServer, channel: &str) -> Self {
        Self {
            server,
            channel: channel.to_string(),
            next_seq: 0,
        }
    }

    /// A writer for the next seq.
    pub fn next_segment(&mut self) -> Result<LocalSegmentWriter, TrickleError> {
        let writer = LocalSegmentWriter::open(&self.server, &self.channel, self.next_seq).map_err(
            |refusal| match refusal {
                Refusal::ChannelNotFound => TrickleError::ChannelNotFound,
                refusal => TrickleError::Refused(refusal),
            },
        )?;
        self.next_seq += 1;
        Ok(writer)
    }

    /// Closes the channel.
    pub fn close(self) -> Result<(), TrickleError> {
        self.server
            .close_channel(&self.channel)
            .map_err(|_| TrickleError::ChannelNotFound)
    }
}

/// Reads a channel of an in-process server segment by segment, from the next one to start
/// (`-1`), jumping to the write head when it falls out of the window.
#[derive(Debug)]
pub struct LocalSubscriber {
    server: TrickleServer,
    channel: String,
    next_seq: SeqNo,
}

impl LocalSubscriber {
    pub(crate) fn new(server: TrickleServer, channel: &str) -> Self {
        Self {
            server,
            channel: channel.to_string(),
            next_seq: SEQ_NEXT,
        }
    }

    /// The next segment's reader, `None` once the channel is closed or gone. Unlike over
    /// HTTP, the reader is returned at once, before the segment's first byte.
    pub fn next_segment(&mut self) -> Option<SegmentReader> {
        loop {
            let channel = self.server.channel(&self.channel)?;
            match channel.segment_for_read(self.next_seq) {
                // The segment the channel closed before it began: the end, as over HTTP.
                ReadLookup::Found(segment)
                    if segment.ended() == Some(SegmentEnd::ChannelClosed)
                        && segment.len_bytes() == 0 =>
                {
                    return None
                }
                ReadLookup::Found(segment) => {
                    self.next_seq = segment.seq() + 1;
                    return Some(segment.reader());
                }
                // Fallen out of the window: go on from the write head, as go-livepeer's
                // subscribers do on 470.
                ReadLookup::Unavailable { latest, .. } => self.next_seq = latest,
                ReadLookup::Closed { .. } => return None,
            }
        }
    }
}
