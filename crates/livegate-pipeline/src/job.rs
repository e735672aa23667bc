//! What a worker is given when it is attached to a stream: the stream, the input buffer it
//! reads, the stream's parameters and, for workers that relay them, the publisher's
//! data-channel messages.

use std::sync::Arc;

use bytes::Bytes;
use livegate_media::registry::Stream;
use livegate_media::ring::RingBuffer;
use tokio::sync::mpsc;

/// Messages queued each way between a publisher's data channel and its worker before the
/// slower side loses them. A publisher's control messages (prompts, parameters) are small and
/// rare; a full queue means the other side is stuck, not busy.
pub const DATA_CHANNEL_QUEUE: usize = 256;

/// One worker's assignment: turn `input` into new output generations of `stream`.
#[derive(Debug)]
pub struct WorkerJob {
    /// The stream whose output the worker installs ([`Stream::set_output`]).
    pub stream: Arc<Stream>,
    /// The buffer the stream's current publisher writes.
    pub input: Arc<RingBuffer>,
    /// Pipeline parameters as JSON text (e.g. the auth webhook's `params`).
    pub params_json: Option<String>,
    /// The publisher's data channel, for workers that relay it (the WebRTC upstream);
    /// others drop it, which the publisher's side sees as a closed queue.
    pub publisher_data: Option<WorkerDataChannel>,
}

impl WorkerJob {
    /// A job with no parameters and no data channel.
    pub fn new(stream: Arc<Stream>, input: Arc<RingBuffer>) -> WorkerJob {
        WorkerJob {
            stream,
            input,
            params_json: None,
            publisher_data: None,
        }
    }
}

/// The worker's end of the publisher's data channel.
#[derive(Debug)]
pub struct WorkerDataChannel {
    /// Messages the publisher sent, in order.
    pub from_publisher: mpsc::Receiver<Bytes>,
    /// Messages for the publisher. Dropping it tells the publisher's side the worker has
    /// nothing more to say.
    pub to_publisher: mpsc::Sender<Bytes>,
}

/// The publisher session's end of the same channel.
#[derive(Debug)]
pub struct PublisherDataChannel {
    /// Where the publisher's messages go. A send error means the worker went away.
    pub to_worker: mpsc::Sender<Bytes>,
    /// Messages for the publisher, in order.
    pub from_worker: mpsc::Receiver<Bytes>,
}

/// A connected pair of ends, each queue bounded by [`DATA_CHANNEL_QUEUE`].
pub fn data_channel_pair() -> (PublisherDataChannel, WorkerDataChannel) {
    let (to_worker, from_publisher) = mpsc::channel(DATA_CHANNEL_QUEUE);
    let (to_publisher, from_worker) = mpsc::channel(DATA_CHANNEL_QUEUE);
    (
        PublisherDataChannel {
            to_worker,
            from_worker,
        },
        WorkerDataChannel {
            from_publisher,
            to_publisher,
        },
    )
}
