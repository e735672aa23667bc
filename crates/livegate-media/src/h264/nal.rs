//! Annex B byte streams (ITU-T H.264 Annex B): NAL units separated by start codes.

/// The NAL unit types the gateway acts on (ITU-T H.264 Table 7-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NalType {
    NonIdrSlice = 1,
    IdrSlice = 5,
    Sei = 6,
    Sps = 7,
    Pps = 8,
    AccessUnitDelimiter = 9,
}

/// The `nal_unit_type` of a NAL unit (without start code), or `None` for an empty one.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| header & 0x1F)
}

/// The NAL units of an Annex B buffer, without start codes or trailing zero bytes, as slices
/// of `annexb`. Bytes before the first start code are ignored; a buffer without any start
/// code yields nothing.
pub fn nal_units(annexb: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(annexb) {
        Some((_, payload_start)) => &annexb[payload_start..],
        None => &annexb[annexb.len()..],
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (nal, next) = match find_start_code(rest) {
            Some((code_start, payload_start)) => (&rest[..code_start], &rest[payload_start..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        // trailing_zero_8bits belong to the byte stream, not the NAL unit (Annex B.1).
        let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if end > 0 {
            return Some(&nal[..end]);
        }
    })
}

/// Position of the first 00 00 01 start code: (index of its first byte, index after it).
/// A preceding zero byte (4-byte start code) is left to the trailing-zero trimming.
fn find_start_code(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 2 < buf.len() {
        if buf[i + 2] > 1 {
            i += 3;
        } else if buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

/// Whether the access unit holds an IDR slice: a decoder can start here.
pub fn is_idr(annexb: &[u8]) -> bool {
    nal_units(annexb).any(|nal| nal_type(nal) == Some(NalType::IdrSlice as u8))
}

/// Whether the access unit carries both an SPS and a PPS.
pub fn has_parameter_sets(annexb: &[u8]) -> bool {
    let (mut sps, mut pps) = (false, false);
    for nal in nal_units(annexb) {
        match nal_type(nal) {
            Some(t) if t == NalType::Sps as u8 => sps = true,
            Some(t) if t == NalType::Pps as u8 => pps = true,
            _ => {}
        }
    }
    sps && pps
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes_and_trims_trailing_zeros() {
        let buf = [
            0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 0, 0,
        ];
        let nals: Vec<&[u8]> = nal_units(&buf).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
        assert!(is_idr(&buf));
        assert!(has_parameter_sets(&buf));
        assert_eq!(nal_units(&[0x65, 1, 2]).count(), 0, "no start code");
        assert!(!is_idr(&[0, 0, 1, 0x41, 9]));
    }

    fn nal_strategy() -> impl Strategy<Value = Vec<u8>> {
        // Emulation prevention guarantees no 00 00 0x (x ≤ 3) inside a NAL unit; a NAL unit
        // never ends in 0x00 (rbsp_trailing_bits end in a 1 bit).
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|mut nal| {
            nal[0] |= 0x01;
            let mut out = Vec::with_capacity(nal.len());
            for b in nal {
                let n = out.len();
                if n >= 2 && out[n - 1] == 0 && out[n - 2] == 0 && b <= 3 {
                    out.push(3);
                }
                out.push(b);
            }
            if *out.last().unwrap() == 0 {
                out.push(0x80);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for nal in nal_units(&bytes) {
                prop_assert!(!nal.is_empty());
            }
        }

        #[test]
        fn returns_exactly_the_nals_joined(
            nals in proptest::collection::vec(nal_strategy(), 1..10),
            four_byte in proptest::collection::vec(any::<bool>(), 10),
        ) {
            let mut buf = Vec::new();
            for (i, nal) in nals.iter().enumerate() {
                if four_byte[i] {
                    buf.push(0);
                }
                buf.extend_from_slice(&[0, 0, 1]);
                buf.extend_from_slice(nal);
            }
            let got: Vec<&[u8]> = nal_units(&buf).collect();
            let want: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(got, want);
        }
    }
}
