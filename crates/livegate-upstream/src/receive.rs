//! The receiving direction: the upstream's RTP into a fresh output ring through the same
//! sans-I/O [`Ingest`] a WHIP publisher's media goes through (reorder, depacketize, timing,
//! mux), so the processed stream is as clean for WHEP viewers as a published one.
//!
//! One [`MediaReceiver`] per connection, writing the ring that connection installed as the
//! stream's output generation. It follows `Ingest`'s contract (see `livegate_whip::ingest`)
//! and adds only what a peer connection knows: which SSRC is which codec (from the track
//! events), and whom to ask for a keyframe (the video receiver).

use std::sync::Arc;
use std::time::Instant;

use livegate_media::ring::RingBuffer;
use livegate_media::Codec;
use livegate_whip::{Ingest, IngestConfig, IngestError};
use rtc::rtp_transceiver::RTCRtpReceiverId;

/// The upstream's media on its way into one output generation.
pub(crate) struct MediaReceiver {
    /// `None` when the upstream sends nothing back (it answered `recvonly`): a sink, whose
    /// silence is no failure.
    ingest: Option<Ingest>,
    /// SSRC → codec, from each track's opening.
    ssrcs: Vec<(u32, Codec)>,
    /// The video receiver and the SSRC a PLI names (RFC 4585 §6.3.1).
    video: Option<(RTCRtpReceiverId, u32)>,
    pub(crate) first_packet_at: Option<Instant>,
    pub(crate) last_packet_at: Option<Instant>,
}

impl MediaReceiver {
    /// A receiver for the codecs the upstream said it sends, writing `output`.
    pub(crate) fn new(
        config: IngestConfig,
        codecs: &[Codec],
        output: Arc<RingBuffer>,
    ) -> Result<MediaReceiver, IngestError> {
        let ingest = match codecs {
            [] => None,
            codecs => Some(Ingest::new(config, codecs, output)?),
        };
        Ok(MediaReceiver {
            ingest,
            ssrcs: Vec::with_capacity(2),
            video: None,
            first_packet_at: None,
            last_packet_at: None,
        })
    }

    /// Whether media is expected back.
    pub(crate) fn expects_media(&self) -> bool {
        self.ingest.is_some()
    }

    /// A track opened (its first packet arrived).
    pub(crate) fn on_track(&mut self, ssrc: u32, codec: Codec, receiver: RTCRtpReceiverId) {
        self.ssrcs.retain(|&(s, c)| s != ssrc && c != codec);
        self.ssrcs.push((ssrc, codec));
        if codec == Codec::H264 {
            self.video = Some((receiver, ssrc));
        }
    }

    /// The codec of a known SSRC.
    pub(crate) fn codec_of(&self, ssrc: u32) -> Option<Codec> {
        self.ssrcs.iter().find(|(s, _)| *s == ssrc).map(|(_, c)| *c)
    }

    /// One RTP packet. An unknown SSRC (no track event yet) is dropped: rtc raises the
    /// track's event before delivering its first packet.
    pub(crate) fn on_rtp(
        &mut self,
        packet: &rtc::rtp::Packet,
        now: Instant,
    ) -> Result<(), IngestError> {
        let Some(codec) = self.codec_of(packet.header.ssrc) else {
            return Ok(());
        };
        let Some(ingest) = self.ingest.as_mut() else {
            return Ok(());
        };
        self.first_packet_at.get_or_insert(now);
        self.last_packet_at = Some(now);
        match ingest.push_rtp(codec, packet, now) {
            // A codec the answer did not announce: ignore it rather than end the session.
            Err(IngestError::UnknownTrack(_)) => Ok(()),
            other => other,
        }
    }

    /// An RTCP sender report from the upstream.
    pub(crate) fn on_sender_report(&mut self, ssrc: u32, ntp_time: u64, rtp_time: u32) {
        if let (Some(codec), Some(ingest)) = (self.codec_of(ssrc), self.ingest.as_mut()) {
            ingest.on_sender_report(codec, ntp_time, rtp_time);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.ingest.as_ref()?.poll_timeout()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), IngestError> {
        match self.ingest.as_mut() {
            Some(ingest) => ingest.handle_timeout(now),
            None => Ok(()),
        }
    }

    /// The receiver and SSRC to send a PLI for, when the ingest wants a keyframe now.
    pub(crate) fn want_keyframe(&mut self, now: Instant) -> Option<(RTCRtpReceiverId, u32)> {
        if self.ingest.as_mut()?.want_keyframe(now) {
            self.video
        } else {
            None
        }
    }

    /// The connection is over: what the reorder buffers hold goes out.
    pub(crate) fn finish(&mut self, now: Instant) {
        if let Some(ingest) = self.ingest.as_mut() {
            let _ = ingest.finish(now);
        }
    }
}
