//! MPEG-TS packet framing of a pulled byte stream.
//!
//! HTTP delivers the origin's output in pieces of any size, but a ring buffer's chunks must be
//! whole 188-byte packets (so a reader that resynchronises lands on a packet boundary), and
//! the origin's keep-alives (null packets, PID 0x1FFF, ISO/IEC 13818-1 Table 2-3) are no
//! media. The origin starts every response on a packet boundary (a ring chunk), so counting
//! bytes is enough to stay aligned.

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const PACKET_LEN: usize = 188;

/// One null packet: PID 0x1FFF, payload only, stuffing bytes.
pub(crate) fn null_packet() -> Bytes {
    let mut packet = BytesMut::with_capacity(PACKET_LEN);
    packet.put_slice(&[0x47, 0x1F, 0xFF, 0x10]);
    packet.resize(PACKET_LEN, 0xFF);
    packet.freeze()
}

fn is_null(packet: &[u8]) -> bool {
    packet[1] & 0x1F == 0x1F && packet[2] == 0xFF
}

/// Turns pieces of a TS byte stream into chunks of whole packets without null packets.
#[derive(Default)]
pub(crate) struct PacketFramer {
    partial: BytesMut,
}

impl PacketFramer {
    /// The whole packets completed by `piece`, nulls removed; `None` when there are none.
    /// Aligned pieces without nulls (the usual case) are passed on without a copy.
    pub(crate) fn push(&mut self, piece: Bytes) -> Option<Bytes> {
        let whole = if self.partial.is_empty() && piece.len().is_multiple_of(PACKET_LEN) {
            piece
        } else {
            self.partial.extend_from_slice(&piece);
            let len = self.partial.len() / PACKET_LEN * PACKET_LEN;
            self.partial.split_to(len).freeze()
        };
        if whole.chunks(PACKET_LEN).any(is_null) {
            let mut media = BytesMut::with_capacity(whole.len());
            for packet in whole.chunks(PACKET_LEN).filter(|p| !is_null(p)) {
                media.put_slice(packet);
            }
            return (!media.is_empty()).then(|| media.freeze());
        }
        (!whole.is_empty()).then_some(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(tag: u8) -> Vec<u8> {
        let mut p = vec![tag; PACKET_LEN];
        p[0] = 0x47;
        p[1] = 0x01; // PID 0x100
        p[2] = 0x00;
        p
    }

    #[test]
    fn pieces_of_any_size_become_whole_packets_in_order_without_nulls() {
        let mut stream = Vec::new();
        for tag in 1..=5u8 {
            stream.extend(packet(tag));
            stream.extend_from_slice(&null_packet());
        }
        let expected: Vec<u8> = (1..=5u8).flat_map(packet).collect();
        for piece_len in [1, 7, 100, 188, 189, 376, 1000, stream.len()] {
            let mut framer = PacketFramer::default();
            let mut out = Vec::new();
            for piece in stream.chunks(piece_len) {
                if let Some(chunk) = framer.push(Bytes::copy_from_slice(piece)) {
                    assert_eq!(chunk.len() % PACKET_LEN, 0, "piece {piece_len}");
                    out.extend_from_slice(&chunk);
                }
            }
            assert_eq!(out, expected, "piece {piece_len}");
        }
    }

    #[test]
    fn an_aligned_piece_is_passed_on_without_a_copy() {
        let piece = Bytes::from([packet(1), packet(2)].concat());
        let out = PacketFramer::default().push(piece.clone()).unwrap();
        assert_eq!(out.as_ptr(), piece.as_ptr());
        assert_eq!(PacketFramer::default().push(null_packet()), None);
    }
}
