//! Which H.264 NAL unit types one RTP payload carries (RFC 6184 §5.6–5.8, packetization-mode
//! 1): enough to tell a keyframe from a delta frame and to see parameter sets, per packet,
//! without reassembling anything.
//!
//! Not a depacketizer: nothing is copied or rebuilt, and the interleaved-mode payloads
//! (STAP-B, MTAP16/24, FU-B, RFC 6184 §5.7.2, §5.8) carry nothing we count, because a
//! packetization-mode=1 session never contains them (RFC 6184 §6.3).

/// NAL unit type of a coded slice of an IDR picture (ITU-T H.264 Table 7-1).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// RFC 6184 §5.7.1: single-time aggregation packet.
const STAP_A: u8 = 24;
/// RFC 6184 §5.8: fragmentation unit without DON.
const FU_A: u8 = 28;
/// FU header start bit (RFC 6184 §5.8).
const FU_START: u8 = 0x80;

/// A set of NAL unit types as a bit mask: bit `n` set ⇔ type `n` present. Types are 5 bits
/// (ITU-T H.264 §7.3.1), so 32 bits hold them all and merging a frame's packets is an OR.
pub fn nal_type_mask(payload: &[u8]) -> u32 {
    let Some(&first) = payload.first() else {
        return 0;
    };
    match first & 0x1F {
        // Single NAL unit packet (§5.6): the payload is the NAL unit.
        nal_type @ 1..=23 => 1 << nal_type,
        STAP_A => stap_a_mask(&payload[1..]),
        // The FU header names the fragmented NAL unit's type in every fragment, so a lost
        // start fragment still shows that the frame held, say, an IDR slice.
        FU_A => payload
            .get(1)
            .map_or(0, |fu_header| 1 << (fu_header & 0x1F)),
        _ => 0,
    }
}

/// Walks the aggregation units of a STAP-A payload (after its NAL header): 16-bit size,
/// then the NAL unit (RFC 6184 §5.7.1, Figure 7). A truncated unit ends the walk.
fn stap_a_mask(mut units: &[u8]) -> u32 {
    let mut mask = 0;
    while let [size_hi, size_lo, rest @ ..] = units {
        let size = usize::from(u16::from_be_bytes([*size_hi, *size_lo]));
        if size == 0 || size > rest.len() {
            break;
        }
        mask |= 1 << (rest[0] & 0x1F);
        units = &rest[size..];
    }
    mask
}

/// Whether the payload begins a NAL unit (everything but an FU-A continuation or end
/// fragment). Used to judge whether the first packet a viewer sees can begin a frame.
pub fn starts_nal_unit(payload: &[u8]) -> bool {
    match payload {
        [] => false,
        [first, rest @ ..] => match first & 0x1F {
            1..=23 | STAP_A => true,
            FU_A => rest
                .first()
                .is_some_and(|fu_header| fu_header & FU_START != 0),
            _ => false,
        },
    }
}

/// Whether a NAL type mask holds an IDR slice.
pub fn is_keyframe(mask: u32) -> bool {
    mask & (1 << NAL_IDR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// NAL header byte with nal_ref_idc 3 (as encoders mark IDR and parameter sets).
    fn nal(nal_type: u8) -> u8 {
        0x60 | nal_type
    }

    fn stap_a(units: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![nal(STAP_A)];
        for unit in units {
            out.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            out.extend_from_slice(unit);
        }
        out
    }

    fn fu_a(nal_type: u8, start: bool, end: bool) -> Vec<u8> {
        let header = (start as u8) << 7 | (end as u8) << 6 | nal_type;
        vec![nal(FU_A), header, 0xAA, 0xBB]
    }

    #[test]
    fn single_nal_unit_packets_name_their_type() {
        assert!(is_keyframe(nal_type_mask(&[nal(NAL_IDR), 0x88, 0x84])));
        assert!(!is_keyframe(nal_type_mask(&[0x41, 0x9a, 0x02])));
        assert_eq!(nal_type_mask(&[nal(NAL_SPS), 0x42]), 1 << NAL_SPS);
    }

    #[test]
    fn stap_a_with_parameter_sets_and_idr_is_a_keyframe() {
        let payload = stap_a(&[
            &[nal(NAL_SPS), 0x42, 0xe0, 0x1f],
            &[nal(NAL_PPS), 0xce, 0x3c],
            &[nal(NAL_IDR), 0x88],
        ]);
        let mask = nal_type_mask(&payload);
        assert_eq!(mask, 1 << NAL_SPS | 1 << NAL_PPS | 1 << NAL_IDR);
        assert!(is_keyframe(mask));
    }

    #[test]
    fn stap_a_with_only_parameter_sets_is_not_a_keyframe() {
        let payload = stap_a(&[&[nal(NAL_SPS), 0x42], &[nal(NAL_PPS), 0xce]]);
        assert!(!is_keyframe(nal_type_mask(&payload)));
    }

    #[test]
    fn truncated_stap_a_counts_only_whole_units() {
        let mut payload = stap_a(&[&[nal(NAL_SPS), 0x42]]);
        // A second unit claiming 9 bytes with only 2 present: its type is not trusted.
        payload.extend_from_slice(&[0, 9, nal(NAL_IDR), 0x88]);
        assert_eq!(nal_type_mask(&payload), 1 << NAL_SPS);
    }

    #[test]
    fn every_fu_a_fragment_of_an_idr_marks_a_keyframe() {
        for (start, end) in [(true, false), (false, false), (false, true)] {
            assert!(is_keyframe(nal_type_mask(&fu_a(NAL_IDR, start, end))));
        }
        assert!(!is_keyframe(nal_type_mask(&fu_a(1, true, false))));
    }

    #[test]
    fn only_a_start_fragment_begins_a_nal_unit() {
        assert!(starts_nal_unit(&fu_a(NAL_IDR, true, false)));
        assert!(!starts_nal_unit(&fu_a(NAL_IDR, false, false)));
        assert!(!starts_nal_unit(&fu_a(NAL_IDR, false, true)));
        assert!(starts_nal_unit(&stap_a(&[&[nal(NAL_SPS)]])));
        assert!(starts_nal_unit(&[0x41, 0x9a]));
        assert!(!starts_nal_unit(&[]));
    }

    #[test]
    fn interleaved_mode_and_reserved_types_carry_nothing() {
        for nal_type in [0u8, 25, 26, 27, 29, 30, 31] {
            assert_eq!(nal_type_mask(&[nal(nal_type), 0x65, 0x00, 0x01]), 0);
        }
        assert_eq!(nal_type_mask(&[]), 0);
    }

    proptest! {
        /// Packetizing any sequence of NAL units as one STAP-A shows exactly their types.
        #[test]
        fn stap_a_mask_is_the_union_of_its_units(
            units in proptest::collection::vec(
                (1u8..=23, proptest::collection::vec(any::<u8>(), 0..40)), 1..8)
        ) {
            let bodies: Vec<Vec<u8>> = units
                .iter()
                .map(|(t, body)| {
                    let mut unit = vec![nal(*t)];
                    unit.extend_from_slice(body);
                    unit
                })
                .collect();
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let expected = units.iter().fold(0u32, |m, (t, _)| m | 1 << t);
            prop_assert_eq!(nal_type_mask(&stap_a(&refs)), expected);
        }

        /// Arbitrary bytes never panic the inspection and never claim a type outside 0..32.
        #[test]
        fn arbitrary_payloads_are_safe(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = nal_type_mask(&payload);
            let _ = starts_nal_unit(&payload);
        }
    }
}
