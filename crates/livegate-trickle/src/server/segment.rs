//! One segment's bytes, fanned out to every reader while the publisher is still writing them.
//!
//! Concurrency contract: one writer (the POST that attached last) appends chunks and never
//! waits for readers; any number of [`SegmentReader`]s read from the first byte at their own
//! pace, since every chunk is kept until the segment leaves its channel's window (readers that
//! hold it keep it alive). A segment ends once ([`SegmentEnd`]); after that it never changes,
//! and readers drain what was written and then see the end.

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::Refusal;
use crate::SeqNo;

/// How a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// The publisher finished its POST body.
    Finished,
    /// Cut short: the POST failed or was too large, the publisher dropped the segment, or it
    /// left the channel's window while unfinished. Readers get what was written.
    Dropped,
    /// The channel was closed.
    ChannelClosed,
}

#[derive(Debug, Default)]
struct SegmentData {
    chunks: Vec<Bytes>,
    len_bytes: usize,
    end: Option<SegmentEnd>,
    /// Generation of the POST allowed to write; a newer POST for a still empty segment takes
    /// it over, as go-livepeer lets a publisher reconnect to the same seq.
    writer_generation: u64,
}

/// A segment of a channel. Shared as `Arc<Segment>` by its channel, its writer and readers.
#[derive(Debug)]
pub(crate) struct Segment {
    seq: SeqNo,
    data: watch::Sender<SegmentData>,
}

/// A writer's claim on a segment, from [`Segment::attach_writer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriterGeneration(u64);

impl Segment {
    pub(crate) fn new(seq: SeqNo) -> Self {
        Self {
            seq,
            data: watch::Sender::new(SegmentData::default()),
        }
    }

    pub(crate) fn seq(&self) -> SeqNo {
        self.seq
    }

    /// Claims the segment for a new writer. Refused once a byte was written or it ended: a
    /// second body for the same seq would give readers two different segments.
    pub(crate) fn attach_writer(&self) -> Result<WriterGeneration, Refusal> {
        let mut generation = None;
        self.data.send_if_modified(|data| {
            if data.end.is_none() && data.len_bytes == 0 {
                data.writer_generation += 1;
                generation = Some(WriterGeneration(data.writer_generation));
            }
            false
        });
        generation.ok_or(Refusal::SegmentAlreadyWritten { seq: self.seq })
    }

    /// Appends a chunk. Returns the segment's size afterwards. Exceeding `max_segment_bytes`
    /// ends the segment as [`SegmentEnd::Dropped`].
    pub(crate) fn write(
        &self,
        writer: WriterGeneration,
        chunk: Bytes,
        max_segment_bytes: usize,
    ) -> Result<usize, Refusal> {
        let mut result = Ok(0);
        self.data.send_if_modified(|data| {
            if data.writer_generation != writer.0 {
                result = Err(Refusal::SegmentTakenOver { seq: self.seq });
                return false;
            }
            if data.end.is_some() {
                result = Err(Refusal::SegmentAlreadyWritten { seq: self.seq });
                return false;
            }
            if data.len_bytes + chunk.len() > max_segment_bytes {
                data.end = Some(SegmentEnd::Dropped);
                result = Err(Refusal::SegmentTooLarge { max_segment_bytes });
                return true;
            }
            data.len_bytes += chunk.len();
            data.chunks.push(chunk);
            result = Ok(data.len_bytes);
            true
        });
        result
    }

    /// Ends the segment unless it has ended already; returns whether this call ended it.
    pub(crate) fn end(&self, end: SegmentEnd) -> bool {
        self.data.send_if_modified(|data| {
            if data.end.is_some() {
                return false;
            }
            data.end = Some(end);
            true
        })
    }

    /// Ends the segment for its current writer: a writer that was taken over, or that never
    /// wrote a byte, leaves it alone (go-livepeer leaves a segment whose POST failed open for
    /// a reconnecting publisher). Returns whether this call ended it.
    pub(crate) fn end_by(&self, writer: WriterGeneration, end: SegmentEnd) -> bool {
        self.data.send_if_modified(|data| {
            let never_wrote = data.len_bytes == 0 && end == SegmentEnd::Dropped;
            if data.end.is_some() || data.writer_generation != writer.0 || never_wrote {
                return false;
            }
            data.end = Some(end);
            true
        })
    }

    pub(crate) fn ended(&self) -> Option<SegmentEnd> {
        self.data.borrow().end
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.data.borrow().len_bytes
    }

    /// Whether nothing was written yet and it has not ended (a preconnected or precreated
    /// segment).
    pub(crate) fn is_fresh(&self) -> bool {
        let data = self.data.borrow();
        data.len_bytes == 0 && data.end.is_none()
    }

    /// Waits until the segment ends.
    pub(crate) async fn wait_end(&self) -> SegmentEnd {
        let mut rx = self.data.subscribe();
        let data = rx
            .wait_for(|data| data.end.is_some())
            .await
            .expect("the sender lives in self");
        data.end.expect("waited for it")
    }

    /// A reader from the segment's first byte.
    pub(crate) fn reader(&self) -> SegmentReader {
        SegmentReader {
            seq: self.seq,
            data: self.data.subscribe(),
            next_chunk: 0,
        }
    }
}

/// Reads one segment from its first byte, waiting for chunks while the publisher writes them.
/// Never blocks the writer; a slow reader only falls behind.
#[derive(Debug)]
pub struct SegmentReader {
    seq: SeqNo,
    data: watch::Receiver<SegmentData>,
    next_chunk: usize,
}

impl SegmentReader {
    /// The segment's seq.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// The next chunk, waiting for the publisher if needed; `None` once the segment ended and
    /// every chunk was read. Cancel-safe.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            {
                let data = self.data.borrow_and_update();
                if let Some(chunk) = data.chunks.get(self.next_chunk) {
                    self.next_chunk += 1;
                    return Some(chunk.clone());
                }
                if data.end.is_some() {
                    return None;
                }
            }
            if self.data.changed().await.is_err() {
                // The segment itself is gone: nothing more can come.
                return None;
            }
        }
    }

    /// How the segment ended, `None` while it is still being written.
    pub fn end(&self) -> Option<SegmentEnd> {
        self.data.borrow().end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_get_chunks_while_written_and_then_the_end() {
        let segment = Segment::new(3);
        let writer = segment.attach_writer().unwrap();
        let mut early = segment.reader();
        segment
            .write(writer, Bytes::from_static(b"ab"), 10)
            .unwrap();
        assert_eq!(early.next_chunk().await.unwrap(), "ab");
        let pending = tokio::spawn(async move { (early.next_chunk().await, early) });
        segment
            .write(writer, Bytes::from_static(b"cd"), 10)
            .unwrap();
        let (chunk, mut early) = pending.await.unwrap();
        assert_eq!(chunk.unwrap(), "cd");
        assert!(segment.end(SegmentEnd::Finished));
        assert_eq!(early.next_chunk().await, None);
        let mut late = segment.reader();
        assert_eq!(late.next_chunk().await.unwrap(), "ab");
        assert_eq!(late.next_chunk().await.unwrap(), "cd");
        assert_eq!(late.next_chunk().await, None);
        assert_eq!(late.end(), Some(SegmentEnd::Finished));
    }

    #[test]
    fn oversized_write_ends_the_segment() {
        let segment = Segment::new(0);
        let writer = segment.attach_writer().unwrap();
        segment
            .write(writer, Bytes::from_static(b"1234"), 6)
            .unwrap();
        assert_eq!(
            segment.write(writer, Bytes::from_static(b"567"), 6),
            Err(Refusal::SegmentTooLarge {
                max_segment_bytes: 6
            })
        );
        assert_eq!(segment.ended(), Some(SegmentEnd::Dropped));
        assert_eq!(segment.len_bytes(), 4);
    }

    #[test]
    fn only_the_current_writer_that_wrote_ends_the_segment() {
        let segment = Segment::new(2);
        let first = segment.attach_writer().unwrap();
        // Gone before its first byte: the segment waits for another POST.
        assert!(!segment.end_by(first, SegmentEnd::Dropped));
        assert!(segment.is_fresh());
        let second = segment.attach_writer().unwrap();
        segment.write(second, Bytes::from_static(b"z"), 10).unwrap();
        assert!(!segment.end_by(first, SegmentEnd::Finished));
        assert!(segment.end_by(second, SegmentEnd::Dropped));
        assert_eq!(segment.ended(), Some(SegmentEnd::Dropped));
    }

    #[test]
    fn a_newer_writer_takes_over_only_an_empty_segment() {
        let segment = Segment::new(1);
        let first = segment.attach_writer().unwrap();
        let second = segment.attach_writer().unwrap();
        assert_eq!(
            segment.write(first, Bytes::from_static(b"x"), 10),
            Err(Refusal::SegmentTakenOver { seq: 1 })
        );
        segment.write(second, Bytes::from_static(b"y"), 10).unwrap();
        assert_eq!(
            segment.attach_writer(),
            Err(Refusal::SegmentAlreadyWritten { seq: 1 })
        );
    }
}
