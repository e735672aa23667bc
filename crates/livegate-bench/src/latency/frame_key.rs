//! A video frame's identity by content: a 64-bit FNV-1a hash of its first slice NAL unit
//! (ITU-T H.264 Table 7-1, types 1 and 5), computed from an Annex B access unit on the
//! sending side and from RTP payloads (RFC 6184 single NAL unit, STAP-A, FU-A) on the
//! receiving side, with the same result.
//!
//! Why the first slice and not the RTP timestamp: a gateway rewrites timestamps, sequence
//! numbers and SSRCs, may add SPS/PPS in front of an IDR and drop access unit delimiters,
//! but forwards slice NAL units byte for byte. Trailing zero bytes are left out of the hash:
//! a NAL unit never ends in 0x00 (H.264 §7.4.1), so any found there are start-code or
//! `trailing_zero_8bits` padding that one packetizer keeps and another drops.
//!
//! Not a depacketizer: nothing is copied or reassembled, the hash runs over the bytes as they
//! pass. Pure and synchronous.

use livegate_media::h264::nal_units;

/// FNV-1a 64-bit offset basis and prime (Fowler–Noll–Vo, IETF draft-eastlake-fnv §6.1.2).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// RFC 6184 §5.7.1 single-time aggregation packet.
const STAP_A: u8 = 24;
/// RFC 6184 §5.8 fragmentation unit without DON.
const FU_A: u8 = 28;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// Whether a NAL unit type is a coded slice (non-IDR or IDR; ITU-T H.264 Table 7-1). Data
/// partitions (2–4) are not in the profiles WebRTC negotiates.
fn is_slice(nal_type: u8) -> bool {
    matches!(nal_type, 1 | 5)
}

/// A streaming hash of one NAL unit's bytes whose result does not depend on how they were
/// split, trailing zero bytes excluded.
#[derive(Debug, Clone, Copy)]
pub struct NalHasher {
    state: u64,
    /// Zero bytes seen but not yet hashed: they count only if a non-zero byte follows.
    pending_zeros: usize,
}

impl Default for NalHasher {
    fn default() -> Self {
        NalHasher {
            state: FNV_OFFSET,
            pending_zeros: 0,
        }
    }
}

impl NalHasher {
    /// Hashes the next bytes of the NAL unit.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == 0 {
                self.pending_zeros += 1;
                continue;
            }
            for _ in 0..self.pending_zeros {
                // FNV-1a of a zero byte: the XOR changes nothing.
                self.state = self.state.wrapping_mul(FNV_PRIME);
            }
            self.pending_zeros = 0;
            self.state = (self.state ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash of everything written, trailing zeros left out.
    pub fn finish(&self) -> u64 {
        self.state
    }
}

/// The key of an Annex B access unit: the hash of its first slice NAL unit, `None` when it
/// has no slice.
pub fn access_unit_key(access_unit: &[u8]) -> Option<u64> {
    let slice = nal_units(access_unit).find(|nal| is_slice(nal[0] & 0x1F))?;
    let mut hasher = NalHasher::default();
    hasher.write(slice);
    Some(hasher.finish())
}

/// What one RTP packet meant for its frame's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEnd {
    /// The packet did not end a frame.
    Pending,
    /// It ended a frame (marker bit, RFC 6184 §5.1) whose first slice arrived whole.
    Keyed(u64),
    /// It ended a frame whose first slice was missing or damaged (a lost fragment).
    Unkeyed,
}

#[derive(Debug, Clone, Copy)]
enum FirstSlice {
    NotSeen,
    /// In FU-A fragments; the next fragment must carry this sequence number.
    Fragmented {
        hasher: NalHasher,
        next_seq: u16,
    },
    Done(u64),
    Broken,
}

/// Turns a video track's RTP packets into frame keys, one frame at a time. One per track;
/// holds no buffers, so a packet costs a header read and a hash over its payload at most.
#[derive(Debug)]
pub struct FrameKeyer {
    /// RTP timestamp of the frame in progress, if any.
    frame: Option<u32>,
    first_slice: FirstSlice,
}

impl Default for FrameKeyer {
    fn default() -> Self {
        FrameKeyer {
            frame: None,
            first_slice: FirstSlice::NotSeen,
        }
    }
}

impl FrameKeyer {
    /// Accounts one packet of the track, in arrival order. A frame whose marker packet was
    /// lost is dropped when the next timestamp begins (it has no last-packet time).
    pub fn on_packet(
        &mut self,
        sequence_number: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> FrameEnd {
        if self.frame != Some(timestamp) {
            self.frame = Some(timestamp);
            self.first_slice = FirstSlice::NotSeen;
        }
        self.first_slice = next_state(self.first_slice, sequence_number, payload);
        if !marker {
            return FrameEnd::Pending;
        }
        let end = match self.first_slice {
            FirstSlice::Done(key) => FrameEnd::Keyed(key),
            _ => FrameEnd::Unkeyed,
        };
        self.frame = None;
        self.first_slice = FirstSlice::NotSeen;
        end
    }
}

fn next_state(state: FirstSlice, seq: u16, payload: &[u8]) -> FirstSlice {
    let Some(&indicator) = payload.first() else {
        return state;
    };
    match state {
        FirstSlice::Done(_) | FirstSlice::Broken => state,
        FirstSlice::Fragmented {
            mut hasher,
            next_seq,
        } => {
            let continues = seq == next_seq
                && indicator & 0x1F == FU_A
                && payload.get(1).is_some_and(|h| h & FU_START == 0);
            if !continues {
                // A lost, reordered or foreign packet inside the slice: its bytes are gone.
                return FirstSlice::Broken;
            }
            hasher.write(&payload[2..]);
            if payload[1] & FU_END != 0 {
                FirstSlice::Done(hasher.finish())
            } else {
                FirstSlice::Fragmented {
                    hasher,
                    next_seq: seq.wrapping_add(1),
                }
            }
        }
        FirstSlice::NotSeen => match indicator & 0x1F {
            nal_type @ 1..=23 if is_slice(nal_type) => {
                let mut hasher = NalHasher::default();
                hasher.write(payload);
                FirstSlice::Done(hasher.finish())
            }
            STAP_A => first_slice_of_stap_a(&payload[1..]).map_or(state, |slice| {
                let mut hasher = NalHasher::default();
                hasher.write(slice);
                FirstSlice::Done(hasher.finish())
            }),
            FU_A => match payload.get(1) {
                Some(&header) if is_slice(header & 0x1F) => {
                    if header & FU_START == 0 {
                        // The slice's first fragment was lost.
                        return FirstSlice::Broken;
                    }
                    let mut hasher = NalHasher::default();
                    // The NAL header the fragments leave out: F and NRI from the indicator,
                    // the type from the FU header (RFC 6184 §5.8).
                    hasher.write(&[indicator & 0xE0 | header & 0x1F]);
                    hasher.write(&payload[2..]);
                    if header & FU_END != 0 {
                        FirstSlice::Done(hasher.finish())
                    } else {
                        FirstSlice::Fragmented {
                            hasher,
                            next_seq: seq.wrapping_add(1),
                        }
                    }
                }
                _ => state,
            },
            _ => state,
        },
    }
}

/// The first slice NAL unit aggregated in a STAP-A payload (after its NAL header): 16-bit
/// size, then the unit (RFC 6184 §5.7.1, Figure 7). A truncated unit ends the walk.
fn first_slice_of_stap_a(mut units: &[u8]) -> Option<&[u8]> {
    while let [size_hi, size_lo, rest @ ..] = units {
        let size = usize::from(u16::from_be_bytes([*size_hi, *size_lo]));
        if size == 0 || size > rest.len() {
            return None;
        }
        if is_slice(rest[0] & 0x1F) {
            return Some(&rest[..size]);
        }
        units = &rest[size..];
    }
    None
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use livegate_whep::packetize::H264Packetizer;
    use proptest::prelude::*;

    use super::*;
    use crate::whip::ObsH264Payloads;

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

    /// A slice of `len` bytes without zeros (so no start code inside) marked by `tag`.
    fn slice(nal_header: u8, len: usize, tag: u8) -> Vec<u8> {
        let mut nal = vec![nal_header, tag | 1];
        nal.extend((0..len.saturating_sub(2)).map(|i| (i % 250) as u8 + 1));
        nal
    }

    /// Feeds payloads as one frame (consecutive sequence numbers, marker on the last).
    fn key_of(
        keyer: &mut FrameKeyer,
        first_seq: u16,
        timestamp: u32,
        payloads: &[Bytes],
    ) -> FrameEnd {
        let last = payloads.len() - 1;
        let mut end = FrameEnd::Pending;
        for (i, p) in payloads.iter().enumerate() {
            end = keyer.on_packet(first_seq.wrapping_add(i as u16), timestamp, i == last, p);
            if i < last {
                assert_eq!(end, FrameEnd::Pending);
            }
        }
        end
    }

    #[test]
    fn the_publisher_key_and_the_viewer_key_agree_whatever_the_packetizer() {
        let idr = slice(0x65, 5_000, 0x10);
        // Sent with an access unit delimiter and SEI, parameter sets in front.
        let sent = annex_b(&[&[0x09, 0xF0], &SPS, &PPS, &[0x06, 0x05, 0x01, 0x80], &idr]);
        let key = access_unit_key(&sent).unwrap();

        // As the publisher sends it: NAL units alone, the slice in FU-A fragments.
        let mut obs = Vec::new();
        ObsH264Payloads::default().payloads(&sent, &mut obs);
        assert!(obs.len() > 4);
        assert_eq!(
            key_of(&mut FrameKeyer::default(), 65_530, 9, &obs),
            FrameEnd::Keyed(key)
        );

        // As a gateway forwards it: no delimiter, parameter sets aggregated (STAP-A).
        let forwarded = annex_b(&[&SPS, &PPS, &idr]);
        let gateway: Vec<Bytes> = H264Packetizer::default().packetize(&forwarded).to_vec();
        assert_eq!(gateway[0][0] & 0x1F, STAP_A);
        assert_eq!(
            key_of(&mut FrameKeyer::default(), 3, 1234, &gateway),
            FrameEnd::Keyed(key)
        );
    }

    #[test]
    fn small_slices_in_single_and_aggregation_packets_key_alike() {
        let p_slice = slice(0x41, 40, 0x20);
        let key = access_unit_key(&annex_b(&[&p_slice])).unwrap();
        let single = [Bytes::from(p_slice.clone())];
        assert_eq!(
            key_of(&mut FrameKeyer::default(), 0, 0, &single),
            FrameEnd::Keyed(key)
        );
        let mut stap = vec![0x78];
        for nal in [&SPS[..], &PPS[..], &p_slice[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert_eq!(
            key_of(&mut FrameKeyer::default(), 0, 0, &[Bytes::from(stap)]),
            FrameEnd::Keyed(key)
        );
    }

    #[test]
    fn different_frames_have_different_keys_and_a_frame_without_slices_none() {
        let a = access_unit_key(&annex_b(&[&slice(0x41, 300, 0x20)]));
        let b = access_unit_key(&annex_b(&[&slice(0x41, 300, 0x40)]));
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
        assert_eq!(access_unit_key(&annex_b(&[&SPS, &PPS])), None);
    }

    #[test]
    fn only_the_first_slice_counts() {
        let first = slice(0x41, 300, 0x20);
        let alone = access_unit_key(&annex_b(&[&first]));
        let with_second = access_unit_key(&annex_b(&[&first, &slice(0x41, 300, 0x40)]));
        assert_eq!(alone, with_second);
    }

    #[test]
    fn trailing_zeros_do_not_change_the_key_but_inner_zeros_do() {
        let mut hashed = NalHasher::default();
        hashed.write(&[0x41, 0x9A, 0x00, 0x07]);
        let mut padded = NalHasher::default();
        padded.write(&[0x41, 0x9A, 0x00, 0x07, 0x00, 0x00]);
        assert_eq!(hashed.finish(), padded.finish());
        let mut without_inner = NalHasher::default();
        without_inner.write(&[0x41, 0x9A, 0x07]);
        assert_ne!(hashed.finish(), without_inner.finish());
    }

    #[test]
    fn a_lost_fragment_leaves_the_frame_unkeyed() {
        let sent = annex_b(&[&slice(0x65, 5_000, 0x10)]);
        let mut fragments = Vec::new();
        ObsH264Payloads::default().payloads(&sent, &mut fragments);
        let mut keyer = FrameKeyer::default();
        let last = fragments.len() - 1;
        let mut end = FrameEnd::Pending;
        for (i, p) in fragments.iter().enumerate() {
            if i == 1 {
                continue; // lost
            }
            end = keyer.on_packet(100 + i as u16, 7, i == last, p);
        }
        assert_eq!(end, FrameEnd::Unkeyed);
        // The next frame is keyed again.
        let next = annex_b(&[&slice(0x41, 50, 0x20)]);
        let payloads = [next.slice(4..)];
        assert_eq!(
            key_of(&mut keyer, 200, 8, &payloads),
            FrameEnd::Keyed(access_unit_key(&next).unwrap())
        );
    }

    #[test]
    fn a_frame_whose_marker_was_lost_is_dropped_at_the_next_timestamp() {
        let mut keyer = FrameKeyer::default();
        let first = slice(0x41, 50, 0x20);
        assert_eq!(keyer.on_packet(1, 100, false, &first), FrameEnd::Pending);
        let second = slice(0x41, 50, 0x40);
        assert_eq!(
            keyer.on_packet(3, 200, true, &second),
            FrameEnd::Keyed(access_unit_key(&annex_b(&[&second])).unwrap())
        );
    }

    proptest! {
        #[test]
        fn the_hash_does_not_depend_on_how_the_bytes_are_split(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut whole = NalHasher::default();
            whole.write(&bytes);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces = NalHasher::default();
            let mut from = 0;
            for to in at.into_iter().chain([bytes.len()]) {
                pieces.write(&bytes[from..to]);
                from = to;
            }
            prop_assert_eq!(whole.finish(), pieces.finish());
        }

        #[test]
        fn any_payloads_are_safe(
            packets in proptest::collection::vec(
                (any::<u16>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..20)
        ) {
            let mut keyer = FrameKeyer::default();
            for (seq, marker, payload) in packets {
                let _ = keyer.on_packet(seq, 0, marker, &payload);
            }
        }
    }
}
