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

use std::sync::Arc;

use livegate_media::registry::Stream;
use livegate_media::ring::RingBuffer;

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
