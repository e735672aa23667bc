//! The built-in pipeline whose output is its input: viewers get the publisher's MPEG-TS
//! exactly as written.
//!
//! It installs the publisher's input [`RingBuffer`] itself as the stream's output, instead of
//! copying chunks from an input reader into a second ring. The registry's semantics make the
//! shared buffer behave as a copy would, without the task, the second ring or a hop of latency:
//!
//! - every viewer reads through its own [`RingReader`](livegate_media::ring::RingReader), so
//!   viewers are just more readers of the input: they lag and resynchronise on their own and
//!   never slow the publisher (the ring's writer never waits);
//! - the publisher leaving closes its input, which is the output: viewers drain it, see
//!   `Closed` and wait in [`Stream::next_output`] for the next generation or the stream's end,
//!   exactly as they would for a copying worker that stopped;
//! - [`Stream::close`] closes input and output, here one buffer, once (closing is idempotent);
//! - attaching a reconnected publisher's new input replaces the output, and
//!   [`Stream::set_output`] closes the previous one, which is the old input its publisher has
//!   already left.
//!
//! The cost of sharing: the output has the input's capacity, and the output slot belongs to
//! passthrough for the stream's life. Installing any other output closes the buffer being
//! replaced, here a publisher's input, so a stream must not switch pipeline while published.
//!
//! It does not look inside the stream: no demuxing, no timestamp rebasing. A viewer that moves
//! to a new generation rebases its own timeline.
//!
//! The publisher's data channel passes through too: what the publisher sends comes back to
//! it, in order ([`relay_data_channel`]), as an upstream AI service that echoes its control
//! messages would, so a gateway in passthrough can stand in for one in tests.

use std::sync::Arc;

use livegate_media::registry::Stream;
use livegate_media::ring::RingBuffer;

use crate::{WorkerDataChannel, WorkerJob};

/// Starts passthrough for `job`: its input becomes the output ([`attach_passthrough`]) and
/// its data channel, if any, is echoed back to the publisher ([`relay_data_channel`]).
pub fn attach_job(job: WorkerJob) {
    attach_passthrough(&job.stream, &job.input);
    if let Some(channel) = job.publisher_data {
        relay_data_channel(channel);
    }
}

/// Sends every message of `from_publisher` back on `to_publisher`, in order, from a task
/// that ends when either end closes. Needs a Tokio runtime; without one the channel is
/// dropped, which the publisher's side sees as a worker that relays nothing.
pub fn relay_data_channel(channel: WorkerDataChannel) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime to relay the publisher's data channel on; dropped");
        return;
    };
    let WorkerDataChannel {
        mut from_publisher,
        to_publisher,
    } = channel;
    runtime.spawn(async move {
        loop {
            let message = tokio::select! {
                message = from_publisher.recv() => message,
                () = to_publisher.closed() => None,
            };
            let Some(message) = message else { break };
            if to_publisher.send(message).await.is_err() {
                break;
            }
        }
    });
}

/// Makes `input` the output of `stream`: the first time with [`Stream::input`], then again
/// with each new input buffer of a publisher that reconnected, which starts a new output
/// generation (viewers on the previous one drain it and move on).
///
/// Idempotent: attaching the buffer that already is the output changes nothing. On a closed
/// stream it only closes `input`, as [`Stream::set_output`] does.
///
/// ```
/// use bytes::Bytes;
/// use livegate_media::{registry::StreamRegistry, ring::ReadOutcome, StreamKey};
/// use livegate_pipeline::passthrough::attach_passthrough;
///
/// let registry = StreamRegistry::new();
/// let stream = registry.create(StreamKey::parse("cam1")?)?;
/// attach_passthrough(&stream, stream.input());
/// let mut viewer = stream.output().unwrap().reader();
/// stream.input().write(Bytes::from_static(&[0x47; 188]))?;
/// assert!(matches!(viewer.try_read(), Some(ReadOutcome::Chunk(c)) if c.len() == 188));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attach_passthrough(stream: &Stream, input: &Arc<RingBuffer>) {
    stream.set_output(input.clone());
    tracing::debug!(
        stream = %stream.key(),
        generation = stream.subscribe_output().borrow().generation,
        "passthrough attached"
    );
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use livegate_media::registry::StreamRegistry;
    use livegate_media::ring::ReadOutcome;
    use livegate_media::StreamKey;

    use super::*;

    #[test]
    fn attaching_the_current_output_again_starts_no_new_generation() {
        let registry = StreamRegistry::new();
        let stream = registry.create(StreamKey::parse("a").unwrap()).unwrap();
        let slots = stream.subscribe_output();
        attach_passthrough(&stream, stream.input());
        attach_passthrough(&stream, stream.input());
        assert_eq!(slots.borrow().generation, 1);
        assert!(!stream.input().is_closed());
    }

    #[tokio::test]
    async fn a_jobs_data_channel_comes_back_in_order_until_the_publisher_goes() {
        let registry = StreamRegistry::new();
        let stream = registry.create(StreamKey::parse("a").unwrap()).unwrap();
        let (mut publisher, worker) = crate::data_channel_pair();
        attach_job(WorkerJob {
            publisher_data: Some(worker),
            ..WorkerJob::new(stream.clone(), stream.input().clone())
        });
        assert!(stream.output().is_some());
        for i in 0..10u8 {
            publisher
                .to_worker
                .send(Bytes::from(vec![i]))
                .await
                .unwrap();
        }
        for i in 0..10u8 {
            assert_eq!(
                publisher.from_worker.recv().await,
                Some(Bytes::from(vec![i]))
            );
        }
        // The publisher's side going away ends the relay, which drops its queue ends.
        drop(publisher.from_worker);
        publisher.to_worker.closed().await;
    }

    #[test]
    fn attaching_to_a_closed_stream_closes_the_new_input() {
        let registry = StreamRegistry::new();
        let stream = registry.create(StreamKey::parse("a").unwrap()).unwrap();
        stream.close();
        let late_input = RingBuffer::new(1_000);
        attach_passthrough(&stream, &late_input);
        assert!(late_input.is_closed());
        assert_eq!(
            late_input.write(Bytes::from_static(b"x")),
            Err(livegate_media::ring::RingClosed)
        );
        assert_eq!(late_input.reader().try_read(), Some(ReadOutcome::Closed));
    }
}
