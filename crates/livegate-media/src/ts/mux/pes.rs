//! PES headers (ISO/IEC 13818-1 §2.4.3.6–7).

use bytes::{BufMut, BytesMut};

use crate::Pts90k;

/// stream_id of the first video stream (ISO/IEC 13818-1 Table 2-22).
pub(crate) const STREAM_ID_VIDEO: u8 = 0xE0;
/// stream_id private_stream_1, which carries Opus as ffmpeg writes it.
pub(crate) const STREAM_ID_PRIVATE_1: u8 = 0xBD;
/// Bytes of a PES header from packet_start_code_prefix up to and including
/// PES_header_data_length, before the optional fields.
const PES_FIXED_HEADER_LEN: usize = 9;
/// Bytes after the PES_packet_length field that PES_packet_length counts in the fixed part.
const PES_LENGTH_COUNTED_FIXED: usize = 3;

/// PES header fields of one access unit.
pub(crate) struct PesHeader {
    pub(crate) stream_id: u8,
    pub(crate) pts: Pts90k,
    /// Written only when it differs from `pts` (§2.4.3.7: PTS_DTS_flags '10' otherwise).
    pub(crate) dts: Option<Pts90k>,
}

impl PesHeader {
    fn dts_to_write(&self) -> Option<Pts90k> {
        self.dts.filter(|&dts| dts != self.pts)
    }

    /// Bytes of PES_packet_length that the header itself contributes.
    pub(crate) fn counted_len(&self) -> usize {
        PES_LENGTH_COUNTED_FIXED + self.optional_len()
    }

    fn optional_len(&self) -> usize {
        if self.dts_to_write().is_some() {
            10
        } else {
            5
        }
    }

    /// Appends the header. `payload_len` is the number of bytes following the header;
    /// `None` writes PES_packet_length 0, which §2.4.3.7 allows only for video.
    pub(crate) fn write(&self, payload_len: Option<u16>, out: &mut BytesMut) {
        out.put_slice(&[0x00, 0x00, 0x01, self.stream_id]);
        out.put_u16(payload_len.unwrap_or(0));
        // '10', not scrambled, priority 0, data_alignment_indicator 1 (every PES starts with
        // an access unit), no copyright, original.
        out.put_u8(0x84);
        let dts = self.dts_to_write();
        out.put_u8(if dts.is_some() { 0xC0 } else { 0x80 });
        out.put_u8(self.optional_len() as u8);
        match dts {
            Some(dts) => {
                put_timestamp(0b0011, self.pts, out);
                put_timestamp(0b0001, dts, out);
            }
            None => put_timestamp(0b0010, self.pts, out),
        }
    }
}

/// Longest PES header this module writes.
pub(crate) const MAX_PES_HEADER_LEN: usize = PES_FIXED_HEADER_LEN + 10;

/// A 33-bit PTS or DTS in its 5-byte form with marker bits (§2.4.3.7).
fn put_timestamp(prefix: u8, ts: Pts90k, out: &mut BytesMut) {
    let t = ts.ticks();
    out.put_slice(&[
        prefix << 4 | ((t >> 29) as u8 & 0x0E) | 1,
        (t >> 22) as u8,
        ((t >> 14) as u8 & 0xFE) | 1,
        (t >> 7) as u8,
        ((t << 1) as u8 & 0xFE) | 1,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PTS_WRAP;

    /// Decodes a 5-byte timestamp the way §2.4.3.7 lays it out.
    fn read_timestamp(b: &[u8]) -> u64 {
        (u64::from(b[0] & 0x0E) << 29)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] & 0xFE) << 14)
            | (u64::from(b[3]) << 7)
            | (u64::from(b[4]) >> 1)
    }

    #[test]
    fn header_carries_dts_only_when_it_differs() {
        let mut out = BytesMut::new();
        let pts = Pts90k::MAX;
        let same = PesHeader {
            stream_id: STREAM_ID_VIDEO,
            pts,
            dts: Some(pts),
        };
        same.write(None, &mut out);
        assert_eq!(out.len(), 14);
        assert_eq!(&out[6..9], &[0x84, 0x80, 5]);
        assert_eq!(out[9] >> 4, 0b0010);
        assert_eq!(read_timestamp(&out[9..]), PTS_WRAP - 1);

        out.clear();
        let dts = Pts90k::new(12_345);
        let both = PesHeader {
            stream_id: STREAM_ID_PRIVATE_1,
            pts,
            dts: Some(dts),
        };
        both.write(Some(300), &mut out);
        assert_eq!(out.len(), MAX_PES_HEADER_LEN);
        assert_eq!(&out[3..9], &[0xBD, 0x01, 0x2C, 0x84, 0xC0, 10]);
        assert_eq!(read_timestamp(&out[9..]), pts.ticks());
        assert_eq!(read_timestamp(&out[14..]), 12_345);
        assert_eq!(both.counted_len(), out.len() - 6);
    }
}
