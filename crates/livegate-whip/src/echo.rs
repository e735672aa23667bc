//! WHIP echo: a publisher whose offer is `sendrecv` gets its stream's **output** back on the
//! same peer connection, as a WHEP viewer of its own stream would.
//!
//! What it is for: it makes livegate usable as the upstream realtime AI service of another
//! gateway's `whip:<url>` pipeline, which sends a publisher's media upstream and expects the
//! processed media back on the peer connection it published with. A gateway in
//! `passthrough` thus echoes the media, which is how that pipeline is tested; with a real
//! worker the echo is the processed stream.
//!
//! How: the answer is made with [`SessionRole::Both`], which answers `sendrecv` only the
//! sections the offer made `sendrecv` (RFC 3264 §6.1); a `sendonly` publisher is answered
//! `recvonly` as before and gets no echo. The frames come from the same place as WHEP's:
//! the stream's [`StreamOutputs`] entry (one reader per stream, GOP cache, frames packetized
//! once), shared with the WHEP endpoint so a stream has one output reader; a
//! [`ViewerClock`] gives them this session's RTP timestamps, continuous across worker
//! restarts.
//!
//! Not here: the publisher's keyframe requests for what we echo are not answered (the output
//! comes from a worker or the publisher itself; WHEP does the same).

use std::sync::Arc;

use livegate_media::registry::Stream;
use livegate_media::Codec;
use livegate_rtc::{SendError, SendSpec, SessionHandle, SessionRole, SessionState};
use livegate_whep::{StreamOutputs, ViewerClock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The role a publisher is answered with: [`SessionRole::Both`] sending back `tracks` (what
/// the publisher sends us, so what its offer can take) when the endpoint echoes, else
/// [`SessionRole::Receive`].
pub(crate) fn session_role(echo: bool, stream: &Stream, tracks: &[Codec]) -> SessionRole {
    if !echo {
        return SessionRole::Receive;
    }
    SessionRole::Both(SendSpec {
        stream_id: stream.key().to_string(),
        tracks: tracks.to_vec(),
        // The stream's SPS is not known before its first publisher sends: the offer's
        // first usable H.264 format is sent back.
        h264_profile_level_id: None,
    })
}

/// One publisher's echo: what is needed to send the stream's output back to it.
pub(crate) struct Echo {
    pub(crate) outputs: StreamOutputs,
    pub(crate) stream: Arc<Stream>,
    pub(crate) handle: SessionHandle,
    /// The tracks the answer sends ([`livegate_rtc::Accepted::send_tracks`]), not empty.
    pub(crate) send_tracks: Vec<Codec>,
    /// The publish's own cancellation (DELETE, replacement, shutdown).
    pub(crate) cancel: CancellationToken,
}

/// Sends the stream's output to the publisher until the session closes, the publish is
/// stopped or the stream ends. Ends by itself; the session task does not wait for it.
pub(crate) async fn run(echo: Echo) {
    let Echo {
        outputs,
        stream,
        handle,
        send_tracks,
        cancel,
    } = echo;
    // The transport drops media written before ICE and DTLS are up, and the feed takes its
    // GOP snapshot at its first read: join the output only once connected.
    let connected = tokio::select! {
        connected = handle.connected() => connected.is_ok(),
        () = cancel.cancelled() => false,
    };
    if !connected {
        return;
    }
    let mut feed = outputs.get_or_start(&stream);
    let mut clock = ViewerClock::new(&send_tracks);
    let mut state = handle.state();
    let mut frames_sent = 0u64;
    let mut frames_dropped = 0u64;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            changed = state.changed() => {
                if changed.is_err() || matches!(*state.borrow(), SessionState::Closed(_)) {
                    break;
                }
            }
            frame = feed.recv() => {
                let Some(frame) = frame else { break };
                let Some((track, rtp)) = clock.map(&frame, Instant::now()) else {
                    continue;
                };
                match handle.send_frame(track, rtp) {
                    Ok(()) => frames_sent += 1,
                    Err(SendError::Saturated) => frames_dropped += 1,
                    Err(SendError::Closed) => break,
                }
            }
        }
    }
    tracing::debug!(
        frames_sent,
        frames_dropped,
        frames_lost = feed.stats().frames_lost,
        "WHIP echo ended"
    );
}
