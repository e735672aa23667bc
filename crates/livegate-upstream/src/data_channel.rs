//! Data-channel messages relayed both ways between the publisher and the upstream.
//!
//! [`DataRelay`] lives as long as the worker, across reconnections, and owns the publisher's
//! side ([`WorkerDataChannel`]) and the queue of the publisher's messages waiting for an
//! upstream channel. The connection's event loop owns the upstream channel and calls in:
//!
//! | event | relay |
//! |---|---|
//! | a publisher message, upstream channel open | the loop sends it at once |
//! | a publisher message, no upstream channel open | [`DataRelay::queue`]: kept in order, at most `max_pending`; while full, the publisher's queue is not read, so it fills and the publisher's side sees it (back-pressure, nothing silently dropped) |
//! | the upstream channel opens | [`DataRelay::take_pending`]: everything queued, in order, before any newer message |
//! | an upstream send fails | logged with the stream and `side = "upstream"`; the loop closes that channel and [`DataRelay::requeue`]s what it could not send, for the next connection |
//! | an upstream message | [`DataRelay::relay_to_publisher`]; a closed publisher side is logged with `side = "publisher"` and torn down (both directions), a full one loses that message, logged |
//!
//! Messages are bytes with no text/binary flag on the publisher's side (the seam carries
//! `Bytes`): valid UTF-8 goes to the upstream as a text message (what JSON control messages
//! are), anything else as binary.

use std::collections::VecDeque;

use bytes::Bytes;
use livegate_pipeline::WorkerDataChannel;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// The worker's relay between its publisher's data channel and the upstream's.
pub(crate) struct DataRelay {
    stream: String,
    from_publisher: Option<mpsc::Receiver<Bytes>>,
    to_publisher: Option<mpsc::Sender<Bytes>>,
    pending: VecDeque<Bytes>,
    max_pending: usize,
    /// Messages given to the upstream channel.
    pub(crate) sent_upstream: u64,
    /// Messages handed to the publisher's side.
    pub(crate) sent_to_publisher: u64,
    /// Upstream messages lost because the publisher's queue was full.
    pub(crate) dropped_to_publisher: u64,
}

impl DataRelay {
    pub(crate) fn new(
        stream: String,
        channel: Option<WorkerDataChannel>,
        max_pending: usize,
    ) -> DataRelay {
        let (from_publisher, to_publisher) = match channel {
            Some(c) => (Some(c.from_publisher), Some(c.to_publisher)),
            None => (None, None),
        };
        DataRelay {
            stream,
            from_publisher,
            to_publisher,
            pending: VecDeque::new(),
            max_pending,
            sent_upstream: 0,
            sent_to_publisher: 0,
            dropped_to_publisher: 0,
        }
    }

    /// Whether the loop should read the publisher's queue now: it is there, and the
    /// message read can go somewhere (the upstream channel is open, or the queue has room).
    pub(crate) fn wants_publisher_message(&self, upstream_open: bool) -> bool {
        self.from_publisher.is_some() && (upstream_open || self.pending.len() < self.max_pending)
    }

    /// The publisher's next message; `None` once its side closed (and from then on never
    /// ready). Cancel-safe.
    pub(crate) async fn next_publisher_message(&mut self) -> Option<Bytes> {
        let Some(receiver) = self.from_publisher.as_mut() else {
            return std::future::pending().await;
        };
        let message = receiver.recv().await;
        if message.is_none() {
            tracing::debug!(stream = %self.stream, "the publisher's data channel closed");
            self.from_publisher = None;
        }
        message
    }

    /// Keeps a publisher message until an upstream channel opens.
    pub(crate) fn queue(&mut self, message: Bytes) {
        self.pending.push_back(message);
    }

    /// Puts back, in front and in order, messages an upstream channel did not take.
    pub(crate) fn requeue(&mut self, undelivered: impl DoubleEndedIterator<Item = Bytes>) {
        for message in undelivered.rev() {
            self.pending.push_front(message);
        }
    }

    /// Everything queued, oldest first.
    pub(crate) fn take_pending(&mut self) -> VecDeque<Bytes> {
        std::mem::take(&mut self.pending)
    }

    /// Messages waiting for an upstream channel.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A message from the upstream for the publisher.
    pub(crate) fn relay_to_publisher(&mut self, message: Bytes) {
        let Some(sender) = &self.to_publisher else {
            return;
        };
        match sender.try_send(message) {
            Ok(()) => self.sent_to_publisher += 1,
            Err(TrySendError::Full(_)) => {
                self.dropped_to_publisher += 1;
                tracing::warn!(
                    stream = %self.stream,
                    side = "publisher",
                    dropped = self.dropped_to_publisher,
                    "the publisher's data-channel queue is full; an upstream message was lost"
                );
            }
            Err(TrySendError::Closed(_)) => {
                tracing::error!(
                    stream = %self.stream,
                    side = "publisher",
                    "cannot relay data-channel messages to the publisher: its side closed; \
                     relaying stops both ways"
                );
                self.to_publisher = None;
                self.from_publisher = None;
            }
        }
    }

    /// Logs a failed upstream send; the loop tears the upstream channel down.
    pub(crate) fn upstream_send_failed(&self, error: &dyn std::fmt::Display) {
        tracing::error!(
            stream = %self.stream,
            side = "upstream",
            error = %error,
            pending = self.pending.len(),
            "cannot relay a data-channel message to the upstream; closing its channel, \
             messages wait for the next connection"
        );
    }

    /// Whether the publisher's side is still relayed.
    #[cfg(test)]
    pub(crate) fn publisher_attached(&self) -> bool {
        self.to_publisher.is_some()
    }
}

#[cfg(test)]
mod tests {
    use livegate_pipeline::data_channel_pair;

    use super::*;

    #[tokio::test]
    async fn queued_messages_come_back_in_order_and_a_full_queue_stops_reading() {
        let (publisher, worker) = data_channel_pair();
        let mut relay = DataRelay::new("s".to_owned(), Some(worker), 2);
        for text in ["a", "b", "c"] {
            publisher.to_worker.send(Bytes::from(text)).await.unwrap();
        }
        assert!(relay.wants_publisher_message(false));
        let a = relay.next_publisher_message().await.unwrap();
        relay.queue(a);
        let b = relay.next_publisher_message().await.unwrap();
        relay.queue(b);
        assert!(!relay.wants_publisher_message(false), "full: not read");
        assert!(relay.wants_publisher_message(true), "open: read and sent");
        let mut pending = relay.take_pending();
        // The first goes out, the channel fails on the second: it waits, first in line.
        pending.pop_front();
        relay.requeue(pending.into_iter());
        let c = relay.next_publisher_message().await.unwrap();
        relay.queue(c);
        assert_eq!(relay.take_pending(), [Bytes::from("b"), Bytes::from("c")]);
    }

    #[tokio::test]
    async fn a_closed_publisher_side_is_torn_down_both_ways() {
        let (publisher, worker) = data_channel_pair();
        let mut relay = DataRelay::new("s".to_owned(), Some(worker), 8);
        relay.relay_to_publisher(Bytes::from("x"));
        assert_eq!(relay.sent_to_publisher, 1);
        drop(publisher);
        relay.relay_to_publisher(Bytes::from("y"));
        assert!(!relay.publisher_attached());
        assert!(!relay.wants_publisher_message(true));
    }
}
