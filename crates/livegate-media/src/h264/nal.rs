//! Annex B byte streams (ITU-T H.264 Annex B): the NAL units between start codes, their types
//! (Table 7-1), and the two questions the gateway asks of every access unit: can a decoder
//! start here (IDR), and does it carry its own parameter sets.
//!
//! This is a zero-copy iterator over one complete buffer (an access unit from the demuxer or a
//! depacketizer). It is not a push parser for a stream cut at arbitrary points (that is
//! `h264_reader::annexb::AnnexBReader`, which copies into its own buffers), and it leaves
//! emulation prevention bytes in place: the NAL units it yields are the bytes an RTP
//! packetizer sends (RFC 6184 §5.3).

use std::iter::FusedIterator;

/// A `nal_unit_type` (ITU-T H.264 §7.4.1, Table 7-1): the low five bits of a NAL unit's
/// header byte. The constants name the types the gateway acts on; every other value is
/// carried through untouched.
///
/// ```
/// use livegate_media::h264::{nal_type, NalType};
/// assert_eq!(nal_type(&[0x65, 0x88]), Some(NalType::IDR_SLICE));
/// assert!(NalType::IDR_SLICE.is_slice());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NalType(u8);

impl NalType {
    /// Coded slice of a non-IDR picture.
    pub const NON_IDR_SLICE: NalType = NalType(1);
    /// Coded slice of an IDR picture: decoding can start here (§3.69).
    pub const IDR_SLICE: NalType = NalType(5);
    /// Supplemental enhancement information.
    pub const SEI: NalType = NalType(6);
    /// Sequence parameter set.
    pub const SPS: NalType = NalType(7);
    /// Picture parameter set.
    pub const PPS: NalType = NalType(8);
    /// Access unit delimiter; when present it is the first NAL unit of its access unit
    /// (§7.4.1.2.3).
    pub const ACCESS_UNIT_DELIMITER: NalType = NalType(9);

    /// The type announced by a NAL unit header byte.
    pub const fn from_header(header: u8) -> NalType {
        NalType(header & 0x1F)
    }

    /// The numeric `nal_unit_type`, 0–31.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// Whether NAL units of this type carry slice data of a primary coded picture (VCL NAL
    /// unit types 1–5). Every non-VCL NAL unit that belongs to an access unit precedes the
    /// first of them (§7.4.1.2.3).
    pub const fn is_slice(self) -> bool {
        matches!(self.0, 1..=5)
    }
}

/// The type of a NAL unit (without start code), or `None` for an empty slice.
pub fn nal_type(nal: &[u8]) -> Option<NalType> {
    nal.first().map(|&header| NalType::from_header(header))
}

/// The NAL units of an Annex B buffer, as slices of it, each without its start code and
/// without the zero bytes that pad the stream after it (`trailing_zero_8bits` and the
/// `zero_byte` of a four-byte start code, Annex B.1).
///
/// Bytes before the first start code are not a NAL unit (Annex B.2 allows only zeros there)
/// and are skipped; a buffer without any start code therefore yields nothing. Empty NAL units
/// (two start codes in a row) are skipped, so every item is non-empty.
///
/// ```
/// use livegate_media::h264::nal_units;
/// let au = [0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x65, 0x88, 0x84, 0];
/// let nals: Vec<&[u8]> = nal_units(&au).collect();
/// assert_eq!(nals, [&[0x09, 0xF0][..], &[0x65, 0x88, 0x84]]);
/// ```
pub fn nal_units(annexb: &[u8]) -> NalUnits<'_> {
    let rest = match find_start_code(annexb) {
        Some(code) => &annexb[code + 3..],
        None => &[],
    };
    let mut nals = NalUnits { rest };
    nals.skip_empty();
    nals
}

/// Iterator returned by [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    /// Invariant (kept by `skip_empty`): empty, or the first byte of a NAL unit that has a
    /// non-zero byte before the next start code, so that the next item is non-empty and its
    /// header can be read without scanning for its end.
    rest: &'a [u8],
}

impl<'a> NalUnits<'a> {
    /// The type of the next NAL unit, from its header byte alone: finding where the unit ends
    /// (scanning a whole slice) is left to [`Iterator::next`].
    pub(crate) fn peek_type(&self) -> Option<NalType> {
        nal_type(self.rest)
    }

    /// The buffer from the header byte of the next NAL unit to its end, start codes of later
    /// NAL units included.
    pub(crate) fn remainder(&self) -> &'a [u8] {
        self.rest
    }

    /// Moves past empty NAL units: zero runs that end in a start code or at the end of the
    /// buffer. Looks only at the zero run, never into the NAL unit that follows it.
    fn skip_empty(&mut self) {
        loop {
            let zeros = self
                .rest
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(self.rest.len());
            if zeros == self.rest.len() {
                self.rest = &[];
            } else if zeros >= 2 && self.rest[zeros] == 1 {
                self.rest = &self.rest[zeros + 1..];
                continue;
            }
            // Otherwise `rest[zeros]` is a non-zero byte before any start code (one would need
            // its 0x01 at or before `zeros`), so the unit is non-empty.
            return;
        }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (nal, next): (&'a [u8], &'a [u8]) = match find_start_code(self.rest) {
            Some(code) => (&self.rest[..code], &self.rest[code + 3..]),
            None => (self.rest, &[]),
        };
        self.rest = next;
        self.skip_empty();
        // A NAL unit never ends in 0x00 (its RBSP ends with a stop bit, §7.4.2.10), so
        // trailing zeros are stream padding or the next start code's zero_byte (Annex B.1).
        let end = nal.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        Some(&nal[..end])
    }
}

impl FusedIterator for NalUnits<'_> {}

/// Index of the first `00 00 01` in `buf`.
fn find_start_code(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 2 < buf.len() {
        if buf[i + 2] == 0 {
            i += 1;
        } else if buf[i + 2] == 1 && buf[i] == 0 && buf[i + 1] == 0 {
            return Some(i);
        } else {
            // A non-zero third byte rules out start codes beginning at i, i+1 and i+2:
            // each needs it to be 0x01 with zeros before it, or to be 0x00.
            i += 3;
        }
    }
    None
}

/// The NAL units of an access unit that precede its first slice: AUD, parameter sets, SEI.
pub(crate) fn nals_before_first_slice(au: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    let mut nals = nal_units(au);
    std::iter::from_fn(move || match nals.peek_type() {
        Some(t) if !t.is_slice() => nals.next(),
        _ => None,
    })
}

/// The type of the first slice of an access unit and the buffer from that slice's header
/// byte to the end, or `None` if the buffer holds no slice.
pub(crate) fn first_slice(au: &[u8]) -> Option<(NalType, &[u8])> {
    let mut nals = nal_units(au);
    loop {
        let t = nals.peek_type()?;
        if t.is_slice() {
            return Some((t, nals.remainder()));
        }
        nals.next();
    }
}

/// Whether the access unit is an IDR picture, where a decoder can start.
///
/// Only the first slice is looked at: all slices of an IDR picture are IDR slices
/// (§7.4.1.2.4), and stopping there spares scanning the slice data, which is nearly all of the
/// access unit's bytes.
pub fn is_idr_access_unit(annexb: &[u8]) -> bool {
    matches!(first_slice(annexb), Some((NalType::IDR_SLICE, _)))
}

/// Whether an SPS and a PPS precede the access unit's first slice, so that a decoder starting
/// at it needs nothing from earlier access units. Parameter sets after the first slice are not
/// looked for: they could only serve later pictures.
pub fn contains_parameter_sets(annexb: &[u8]) -> bool {
    let (mut sps, mut pps) = (false, false);
    for nal in nals_before_first_slice(annexb) {
        match nal_type(nal) {
            Some(NalType::SPS) => sps = true,
            Some(NalType::PPS) => pps = true,
            _ => {}
        }
    }
    sps && pps
}

#[cfg(test)]
mod tests {
    use h264_reader::annexb::AnnexBReader;
    use h264_reader::nal::{Nal, RefNal};
    use h264_reader::push::NalInterest;
    use proptest::prelude::*;

    use super::*;
    use crate::h264::fixtures::{video_access_units, FIXTURES};

    fn collect(buf: &[u8]) -> Vec<&[u8]> {
        nal_units(buf).collect()
    }

    #[test]
    fn three_and_four_byte_start_codes() {
        let buf = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4,
        ];
        assert_eq!(collect(&buf), [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    }

    #[test]
    fn trailing_zeros_and_empty_units_are_padding() {
        let buf = [
            0, 0, 1, 0x41, 7, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0x41, 8, 0, 0,
        ];
        assert_eq!(collect(&buf), [&[0x41, 7][..], &[0x41, 8]]);
        assert_eq!(collect(&[0, 0, 1, 0x41, 9, 0, 0, 1]), [&[0x41, 9][..]]);
        assert_eq!(collect(&[0, 0, 0, 1, 0, 0, 0]), Vec::<&[u8]>::new());
    }

    #[test]
    fn bytes_outside_start_codes_are_not_units() {
        assert_eq!(collect(&[0x65, 1, 2, 0, 0, 2]), Vec::<&[u8]>::new());
        assert_eq!(collect(&[]), Vec::<&[u8]>::new());
        assert_eq!(collect(&[0, 0]), Vec::<&[u8]>::new());
        assert_eq!(
            collect(&[0xAA, 0xBB, 0, 0, 1, 0x09, 0x10]),
            [&[0x09, 0x10][..]]
        );
        // 00 00 03 is emulation prevention inside a unit, not a boundary.
        assert_eq!(
            collect(&[0, 0, 1, 0x06, 0, 0, 3, 1]),
            [&[0x06, 0, 0, 3, 1][..]]
        );
    }

    #[test]
    fn peeking_reads_the_header_only() {
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x65, 0xB8, 0, 0, 1, 0x65, 0x11,
        ];
        let (t, rest) = first_slice(&au).unwrap();
        assert_eq!(t, NalType::IDR_SLICE);
        assert_eq!(rest, &au[10..]);
        assert!(is_idr_access_unit(&au));
        assert!(!contains_parameter_sets(&au));
        // A slice ends the prefix, so parameter sets after it do not count.
        let late = [0, 0, 1, 0x41, 1, 0, 0, 1, 0x67, 2, 0, 0, 1, 0x68, 3];
        assert!(!is_idr_access_unit(&late));
        assert!(!contains_parameter_sets(&late));
        assert_eq!(first_slice(&[0, 0, 1, 0x67, 2]), None);
    }

    /// The NAL units h264-reader's push parser finds in the same bytes.
    fn reference_nal_units(annexb: &[u8]) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        let mut reader = AnnexBReader::accumulate(|nal: RefNal<'_>| {
            if nal.is_complete() {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut nal.reader(), &mut bytes).unwrap();
                found.push(bytes);
            }
            NalInterest::Buffer
        });
        reader.push(annexb);
        // The push parser completes a unit only when the next start code arrives.
        reader.push(&[0, 0, 1]);
        drop(reader);
        found
    }

    #[test]
    fn fixture_units_match_h264_reader_and_classify_as_ffmpeg_wrote_them() {
        for name in FIXTURES {
            let aus = video_access_units(name);
            let stream: Vec<u8> = aus.iter().flat_map(|au| au.data.iter().copied()).collect();
            let ours: Vec<&[u8]> = nal_units(&stream).collect();
            assert_eq!(ours, reference_nal_units(&stream), "{name}");

            // make-fixtures.sh: 30 fps with a keyframe every 30 frames, and libx264 repeats
            // SPS/PPS in front of every keyframe when muxing to MPEG-TS.
            let idr: Vec<usize> = (0..aus.len())
                .filter(|&i| is_idr_access_unit(&aus[i].data))
                .collect();
            let expected: Vec<usize> = (0..aus.len()).step_by(30).collect();
            assert_eq!(idr, expected, "{name}: IDR positions");
            for au in &aus {
                assert_eq!(
                    contains_parameter_sets(&au.data),
                    is_idr_access_unit(&au.data),
                    "{name}: parameter sets exactly on keyframes"
                );
            }
        }
    }

    /// NAL units as an encoder emits them: header with forbidden_zero_bit clear, emulation
    /// prevention applied (no `00 00 0x`, x ≤ 2, §7.4.1), last byte non-zero.
    fn nal_strategy() -> impl Strategy<Value = Vec<u8>> {
        (0u8..0x80, proptest::collection::vec(any::<u8>(), 0..48)).prop_map(|(header, body)| {
            let mut out = vec![header];
            for b in body {
                let n = out.len();
                if n >= 2 && out[n - 2] == 0 && out[n - 1] == 0 && b <= 3 {
                    out.push(3);
                }
                out.push(b);
            }
            if out.last() == Some(&0) {
                out.push(0x80);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn never_panics_and_yields_clean_subslices(
            bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), any::<u8>()], 0..512),
        ) {
            let range = bytes.as_ptr_range();
            for nal in nal_units(&bytes) {
                prop_assert!(!nal.is_empty());
                prop_assert_ne!(nal.last(), Some(&0));
                prop_assert!(find_start_code(nal).is_none());
                let inner = nal.as_ptr_range();
                prop_assert!(range.start <= inner.start && inner.end <= range.end);
            }
            let _ = is_idr_access_unit(&bytes);
            let _ = contains_parameter_sets(&bytes);
        }

        #[test]
        fn returns_exactly_the_units_joined(
            leading_zeros in 0usize..3,
            units in proptest::collection::vec(
                (nal_strategy(), any::<bool>(), 0usize..3),
                1..12,
            ),
        ) {
            let mut buf = vec![0; leading_zeros];
            for (nal, four_byte, trailing_zeros) in &units {
                if *four_byte {
                    buf.push(0);
                }
                buf.extend_from_slice(&[0, 0, 1]);
                buf.extend_from_slice(nal);
                buf.resize(buf.len() + trailing_zeros, 0);
            }
            let want: Vec<&[u8]> = units.iter().map(|(nal, _, _)| nal.as_slice()).collect();
            prop_assert_eq!(collect(&buf), want);
        }
    }
}
