//! Where a trickle worker's segments go and come from: a remote trickle server over HTTP
//! (`trickle:<url>`), or channels this gateway hosts itself (`trickle`), which an external
//! worker reads and writes over HTTP while we use them in-process. One enum per direction,
//! so the worker's loops do not care which.

use bytes::Bytes;
use livegate_trickle::{
    LocalPublisher, LocalSegmentWriter, LocalSubscriber, SegmentReader, SegmentWriter,
    SubscribedSegment, TrickleError, TricklePublisher, TrickleSubscriber,
};

/// Publishes the input's segments.
#[derive(Debug)]
pub(crate) enum InputChannel {
    Remote(TricklePublisher),
    Hosted(LocalPublisher),
}

/// One input segment being written.
#[derive(Debug)]
pub(crate) enum InputSegment {
    Remote(SegmentWriter),
    Hosted(LocalSegmentWriter),
}

impl InputChannel {
    pub(crate) fn next_segment(&mut self) -> Result<InputSegment, TrickleError> {
        match self {
            InputChannel::Remote(publisher) => Ok(InputSegment::Remote(publisher.next_segment())),
            InputChannel::Hosted(publisher) => publisher.next_segment().map(InputSegment::Hosted),
        }
    }

    /// Closes the channel, so the worker sees the input's end.
    pub(crate) async fn close(self) -> Result<(), TrickleError> {
        match self {
            InputChannel::Remote(publisher) => publisher.close().await,
            InputChannel::Hosted(publisher) => publisher.close(),
        }
    }
}

impl InputSegment {
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        match self {
            InputSegment::Remote(writer) => writer.write(chunk).await,
            InputSegment::Hosted(writer) => writer.write(chunk),
        }
    }

    pub(crate) async fn finish(self) -> Result<(), TrickleError> {
        match self {
            InputSegment::Remote(writer) => writer.finish().await,
            InputSegment::Hosted(writer) => {
                writer.finish();
                Ok(())
            }
        }
    }
}

/// Reads the worker's output segments.
#[derive(Debug)]
pub(crate) enum OutputChannel {
    Remote(TrickleSubscriber),
    Hosted(LocalSubscriber),
}

/// One output segment being read.
#[derive(Debug)]
pub(crate) enum OutputSegment {
    Remote(SubscribedSegment),
    Hosted(SegmentReader),
}

impl OutputChannel {
    /// The next segment, `None` once the worker closed the channel.
    pub(crate) async fn next_segment(&mut self) -> Result<Option<OutputSegment>, TrickleError> {
        match self {
            OutputChannel::Remote(subscriber) => {
                Ok(subscriber.next_segment().await?.map(OutputSegment::Remote))
            }
            OutputChannel::Hosted(subscriber) => {
                Ok(subscriber.next_segment().map(OutputSegment::Hosted))
            }
        }
    }
}

impl OutputSegment {
    /// The next chunk, `None` at the segment's end.
    pub(crate) async fn next_chunk(&mut self) -> Option<Result<Bytes, TrickleError>> {
        match self {
            OutputSegment::Remote(segment) => segment.next_chunk().await,
            OutputSegment::Hosted(reader) => reader.next_chunk().await.map(Ok),
        }
    }
}
