//! Opus RTP payloads (RFC 7587 §4.2): exactly one Opus packet per payload, so the payload is
//! the access unit, shared, not copied. All there is to do is refuse what is not an Opus
//! packet, so that a broken publisher cannot put garbage into the stream's input.

use bytes::Bytes;
use livegate_media::opus::packet_duration_48k;

/// The Opus packet a payload carries, or `None` if it is not one: empty, or a TOC byte that
/// announces more than 120 ms or a code 3 packet without its frame count (RFC 6716 §3.1,
/// §3.2.5).
pub(crate) fn opus_packet(payload: &Bytes) -> Option<Bytes> {
    packet_duration_48k(payload).ok().map(|_| payload.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_is_the_payload_not_a_copy() {
        let payload = Bytes::from_static(&[0xFC, 0xFF, 0xFE]);
        let packet = opus_packet(&payload).unwrap();
        assert_eq!(packet.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn what_is_not_opus_is_refused() {
        assert_eq!(opus_packet(&Bytes::new()), None);
        // Code 3 (0x03) without the frame count byte.
        assert_eq!(opus_packet(&Bytes::from_static(&[0x03])), None);
        // Code 3, 20 ms frames, 7 of them: 140 ms.
        assert_eq!(opus_packet(&Bytes::from_static(&[0xFB, 0x07])), None);
    }
}
