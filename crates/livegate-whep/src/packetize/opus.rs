//! Opus RTP payloads (RFC 7587 §4.2): exactly one Opus packet per RTP payload, never split or
//! combined, so the payload is the packet itself, shared, not copied.

use std::sync::Arc;

use bytes::Bytes;

/// The RTP payloads of one Opus packet: the packet alone (RFC 7587 §4.2). The demuxer already
/// splits a PES into single packets and strips their `opus_control_header`.
///
/// ```
/// use bytes::Bytes;
/// let packet = Bytes::from_static(&[0xFC, 0xFF, 0xFE]);
/// let payloads = livegate_whep::packetize::opus_payloads(packet.clone());
/// assert_eq!(&payloads[..], &[packet]);
/// ```
pub fn opus_payloads(packet: Bytes) -> Arc<[Bytes]> {
    Arc::from([packet])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_packet_not_a_copy() {
        let packet = Bytes::from(vec![0x78; 160]);
        let payloads = opus_payloads(packet.clone());
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads[0].as_ptr(), packet.as_ptr());
        assert_eq!(payloads[0].len(), 160);
    }
}
