//! The publisher's data channel relayed to and from its pipeline worker: messages the
//! publisher sends go to the worker (a prompt, a parameter change for an upstream AI
//! service); messages the worker sends go back to the publisher.
//!
//! Contract (the session task enforces it; nobody here blocks):
//! - towards the worker, a message is queued without waiting ([`mpsc::Sender::try_send`]):
//!   the media path shares the task and must not stall behind a worker that stopped reading;
//! - towards the publisher, the worker's messages are read only once the publisher's channel
//!   is open. Until then they wait, in order, in the pair's own bounded queue
//!   ([`livegate_pipeline::DATA_CHANNEL_QUEUE`]); a worker that fills it sees a full queue;
//! - a failed send ends that direction only, logged with the session and the side that
//!   failed (`worker` or `publisher`). The other direction and the media go on.
//!
//! The queues carry bytes without a kind, so a worker's message goes to the publisher as
//! text when it is UTF-8 (the JSON control messages AI services exchange) and as binary
//! otherwise.

use bytes::Bytes;
use livegate_pipeline::PublisherDataChannel;
use livegate_rtc::SessionHandle;
use livegate_wish::ResourceId;
use tokio::sync::mpsc;

/// The session's end of its publisher's data channel, with what is left of each direction.
#[derive(Debug)]
pub(crate) struct DataChannelRelay {
    session: ResourceId,
    to_worker: Option<mpsc::Sender<Bytes>>,
    from_worker: Option<mpsc::Receiver<Bytes>>,
    /// Whether the publisher has opened a data channel we can write to.
    publisher_open: bool,
}

impl DataChannelRelay {
    pub(crate) fn new(session: ResourceId, channel: PublisherDataChannel) -> DataChannelRelay {
        DataChannelRelay {
            session,
            to_worker: Some(channel.to_worker),
            from_worker: Some(channel.from_worker),
            publisher_open: false,
        }
    }

    /// The publisher opened its channel: what the worker queued may now go out.
    pub(crate) fn publisher_opened(&mut self) {
        self.publisher_open = true;
    }

    /// A message from the publisher, for the worker.
    pub(crate) fn publisher_sent(&mut self, data: Bytes) {
        let Some(to_worker) = &self.to_worker else {
            return;
        };
        if let Err(e) = to_worker.try_send(data) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "the worker's queue is full",
                mpsc::error::TrySendError::Closed(_) => "the worker stopped reading",
            };
            tracing::warn!(
                session = %self.session,
                side = "worker",
                reason,
                "data channel to the worker closed"
            );
            self.to_worker = None;
        }
    }

    /// The worker's next message for the publisher: `Some(None)` when the worker is done.
    /// Pending for ever while the publisher's channel is not open or the direction has
    /// ended, so it can sit in a `select!` as is.
    pub(crate) async fn next_from_worker(&mut self) -> Option<Bytes> {
        match (&mut self.from_worker, self.publisher_open) {
            (Some(from_worker), true) => from_worker.recv().await,
            _ => std::future::pending().await,
        }
    }

    /// Delivers what [`Self::next_from_worker`] returned.
    pub(crate) fn deliver_to_publisher(&mut self, handle: &SessionHandle, message: Option<Bytes>) {
        let Some(data) = message else {
            tracing::debug!(session = %self.session, "the worker closed its data channel");
            self.from_worker = None;
            return;
        };
        let sent = match std::str::from_utf8(&data) {
            Ok(text) => handle.send_text(text.to_owned()),
            Err(_) => handle.send_binary(data),
        };
        if let Err(e) = sent {
            tracing::warn!(
                session = %self.session,
                side = "publisher",
                error = %e,
                "data channel to the publisher closed"
            );
            self.from_worker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use livegate_pipeline::data_channel_pair;

    use super::*;

    #[tokio::test]
    async fn a_worker_that_went_away_ends_only_the_direction_towards_it() {
        let (publisher, worker) = data_channel_pair();
        let mut relay = DataChannelRelay::new(ResourceId::random(), publisher);
        let livegate_pipeline::WorkerDataChannel {
            from_publisher,
            to_publisher,
        } = worker;
        drop(from_publisher);
        relay.publisher_sent(Bytes::from_static(b"prompt"));
        assert!(relay.to_worker.is_none());
        assert!(relay.from_worker.is_some());

        to_publisher.send(Bytes::from_static(b"hi")).await.unwrap();
        relay.publisher_opened();
        assert_eq!(
            relay.next_from_worker().await,
            Some(Bytes::from_static(b"hi"))
        );
    }

    #[tokio::test]
    async fn the_workers_messages_wait_for_the_publishers_channel() {
        let (publisher, worker) = data_channel_pair();
        let mut relay = DataChannelRelay::new(ResourceId::random(), publisher);
        worker
            .to_publisher
            .send(Bytes::from_static(b"early"))
            .await
            .unwrap();
        // Polled once with the message already queued: ready only if it reads too early.
        tokio::select! {
            biased;
            early = relay.next_from_worker() => panic!("read before the channel opened: {early:?}"),
            () = std::future::ready(()) => {}
        }
        relay.publisher_opened();
        assert_eq!(
            relay.next_from_worker().await,
            Some(Bytes::from_static(b"early"))
        );
        drop(worker);
        assert_eq!(relay.next_from_worker().await, None);
    }

    #[tokio::test]
    async fn a_full_worker_queue_ends_that_direction() {
        let (publisher, _worker) = data_channel_pair();
        let mut relay = DataChannelRelay::new(ResourceId::random(), publisher);
        for i in 0..=livegate_pipeline::DATA_CHANNEL_QUEUE {
            assert!(relay.to_worker.is_some(), "closed after {i}");
            relay.publisher_sent(Bytes::from(i.to_string()));
        }
        assert!(relay.to_worker.is_none());
    }
}
