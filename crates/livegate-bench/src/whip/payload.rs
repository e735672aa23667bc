//! H.264 RTP payloads as OBS sends them (libdatachannel's packetizer, RFC 6184
//! packetization-mode=1): every NAL unit on its own, a single NAL unit packet (§5.6) when it
//! fits and FU-A fragments (§5.8) when it does not, never STAP-A; SPS and PPS as their own
//! packets in front of each IDR picture, from the last ones seen when the access unit lacks
//! them. Fragments come from livegate-whep's [`H264Packetizer`], fed one NAL unit at a time so
//! it never aggregates.
//!
//! Opus needs nothing here: one Opus packet is one RTP payload (RFC 7587 §4.2).

use bytes::Bytes;
use livegate_media::h264::{nal_units, ParameterSetCache};
use livegate_whep::packetize::{H264Packetizer, DEFAULT_MAX_PAYLOAD_BYTES};

/// Length of the three-byte start code in front of every NAL unit `nal_units` yields.
const START_CODE_BYTES: usize = 3;

/// Whether a NAL unit of this type goes on the wire: not an access unit delimiter (9), not
/// filler (12), and not a type RTP reads as its own packet type (0, 24–31; RFC 6184 §5.2).
fn is_sent(nal_type: u8) -> bool {
    !matches!(nal_type, 0 | 9 | 12 | 24..=31)
}

/// Turns access units into OBS-shaped payloads. One per video track; not shared.
#[derive(Debug)]
pub(crate) struct ObsH264Payloads {
    packetizer: H264Packetizer,
    parameter_sets: ParameterSetCache,
}

impl Default for ObsH264Payloads {
    fn default() -> Self {
        ObsH264Payloads {
            packetizer: H264Packetizer::default(),
            parameter_sets: ParameterSetCache::new(),
        }
    }
}

impl ObsH264Payloads {
    /// Appends the payloads of `access_unit` (Annex B) to `out`, in decoding order. Single
    /// NAL unit payloads share the access unit's buffer.
    pub(crate) fn payloads(&mut self, access_unit: &Bytes, out: &mut Vec<Bytes>) {
        self.parameter_sets.observe(access_unit);
        // Copies only when an IDR lacks a parameter set the cache has.
        let au = self.parameter_sets.with_parameter_sets(access_unit.clone());
        for nal in nal_units(&au) {
            if !is_sent(nal[0] & 0x1F) {
                continue;
            }
            if nal.len() <= DEFAULT_MAX_PAYLOAD_BYTES {
                out.push(au.slice_ref(nal));
                continue;
            }
            // The start code in front of the NAL unit makes it an access unit of one.
            let start = nal.as_ptr() as usize - au.as_ptr() as usize - START_CODE_BYTES;
            let alone = au.slice(start..start + START_CODE_BYTES + nal.len());
            out.extend(self.packetizer.packetize(&alone).iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPS: [u8; 4] = [0x67, 0x42, 0xC0, 0x1E];
    const PPS: [u8; 3] = [0x68, 0xCE, 0x3C];

    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut au = Vec::new();
        for nal in nals {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(nal);
        }
        Bytes::from(au)
    }

    fn payloads(maker: &mut ObsH264Payloads, au: &Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        maker.payloads(au, &mut out);
        out
    }

    /// The NAL units an RFC 6184 receiver rebuilds from single NAL unit and FU-A payloads.
    fn depacketize(payloads: &[Bytes]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        let mut fragmented: Option<Vec<u8>> = None;
        for p in payloads {
            match p[0] & 0x1F {
                28 => {
                    let (indicator, header) = (p[0], p[1]);
                    if header & 0x80 != 0 {
                        fragmented = Some(vec![indicator & 0xE0 | header & 0x1F]);
                    }
                    let nal = fragmented.as_mut().expect("FU-A start first");
                    nal.extend_from_slice(&p[2..]);
                    if header & 0x40 != 0 {
                        nals.push(fragmented.take().unwrap());
                    }
                }
                24 => panic!("OBS never sends STAP-A"),
                _ => nals.push(p.to_vec()),
            }
        }
        assert!(fragmented.is_none(), "an FU-A without its end");
        nals
    }

    #[test]
    fn parameter_sets_go_alone_and_a_large_slice_in_fragments() {
        let mut idr = vec![0x65, 0x88];
        idr.extend((0..3_000u32).map(|i| (i % 251) as u8 + 1));
        let au = annex_b(&[&[0x09, 0xF0], &SPS, &PPS, &[0x06, 0x05, 0x01, 0x80], &idr]);
        let out = payloads(&mut ObsH264Payloads::default(), &au);
        let types: Vec<u8> = out.iter().map(|p| p[0] & 0x1F).collect();
        assert_eq!(&types[..3], [7, 8, 6], "SPS, PPS, SEI alone; no delimiter");
        assert!(types[3..].iter().all(|&t| t == 28));
        assert_eq!(types.len(), 3 + 3, "3000 bytes in 1198-byte fragments");
        assert!(out.iter().all(|p| p.len() <= DEFAULT_MAX_PAYLOAD_BYTES));
        assert_eq!(
            depacketize(&out),
            [
                SPS.to_vec(),
                PPS.to_vec(),
                vec![0x06, 0x05, 0x01, 0x80],
                idr
            ]
        );
        // Single NAL unit payloads are slices of the access unit, not copies.
        let au_range = au.as_ptr() as usize..au.as_ptr() as usize + au.len();
        assert!(au_range.contains(&(out[0].as_ptr() as usize)));
    }

    #[test]
    fn an_idr_without_parameter_sets_gets_the_last_ones_first() {
        let mut maker = ObsH264Payloads::default();
        payloads(&mut maker, &annex_b(&[&SPS, &PPS, &[0x65, 0x88, 0x01]]));
        let p_frame = payloads(&mut maker, &annex_b(&[&[0x41, 0x9A, 0x02]]));
        assert_eq!(depacketize(&p_frame), [vec![0x41, 0x9A, 0x02]]);
        let bare_idr = payloads(&mut maker, &annex_b(&[&[0x65, 0x88, 0x03]]));
        assert_eq!(
            depacketize(&bare_idr),
            [SPS.to_vec(), PPS.to_vec(), vec![0x65, 0x88, 0x03]]
        );
    }

    proptest! {
        #[test]
        fn every_sent_nal_unit_comes_back_whole(
            sizes in proptest::collection::vec(1usize..5_000, 1..8),
            fill in 1u8..=255,
        ) {
            let nals: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&size| {
                    // A non-IDR slice header, then bytes without zeros (no start code).
                    let mut nal = vec![0x41];
                    nal.resize(size, fill);
                    nal
                })
                .collect();
            let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            let out = payloads(&mut ObsH264Payloads::default(), &annex_b(&refs));
            prop_assert!(out.iter().all(|p| p.len() <= DEFAULT_MAX_PAYLOAD_BYTES));
            prop_assert_eq!(depacketize(&out), nals);
        }
    }
}
