//! Transport stream packets (ISO/IEC 13818-1 §2.4.3.2–5): headers, adaptation fields with
//! PCR, random_access_indicator and stuffing, and the split of one PES into whole packets.
//! What goes into the packets, and when, is decided by the [`Muxer`](super::Muxer).

use bytes::{BufMut, BytesMut};

use crate::ts::TS_PACKET_SIZE;
use crate::PTS_WRAP;

/// Bytes of a TS packet after its 4-byte header.
pub(super) const TS_PAYLOAD_CAPACITY: usize = TS_PACKET_SIZE - 4;
/// adaptation_field_control values (ISO/IEC 13818-1 Table 2-5).
pub(super) const AFC_PAYLOAD: u8 = 0b01;
const AFC_ADAPTATION_ONLY: u8 = 0b10;
const AFC_ADAPTATION_AND_PAYLOAD: u8 = 0b11;
/// Bytes of adaptation field that carry a PCR: length, flags and the 6-byte PCR.
const AF_WITH_PCR_LEN: usize = 8;
/// Bytes of adaptation field that carry flags only: length and flags.
const AF_FLAGS_ONLY_LEN: usize = 2;

/// Fourth byte of a TS header: not scrambled, adaptation_field_control, continuity_counter.
pub(super) fn header_byte3(afc: u8, cc: u8) -> u8 {
    afc << 4 | (cc & 0x0F)
}

fn put_ts_header(pid: u16, unit_start: bool, afc: u8, cc: u8, out: &mut BytesMut) {
    out.put_slice(&[
        0x47,
        u8::from(unit_start) << 6 | (pid >> 8) as u8,
        pid as u8,
        header_byte3(afc, cc),
    ]);
}

/// Appends a prebuilt PAT or PMT packet with the next continuity counter.
pub(super) fn put_psi(packet: &mut [u8; TS_PACKET_SIZE], cc: &mut u8, out: &mut BytesMut) {
    packet[3] = header_byte3(AFC_PAYLOAD, *cc);
    *cc = (*cc + 1) & 0x0F;
    out.put_slice(packet);
}

/// Appends a packet that only carries a PCR. `last_cc` is the continuity_counter of the PID's
/// last payload packet: packets without payload repeat it (§2.4.3.3).
pub(super) fn put_pcr_only_packet(pid: u16, last_cc: u8, pcr_90k: u64, out: &mut BytesMut) {
    put_ts_header(pid, false, AFC_ADAPTATION_ONLY, last_cc, out);
    put_adaptation_field(TS_PAYLOAD_CAPACITY, Some(pcr_90k), false, out);
}

/// Adaptation field contents of the first TS packet of a PES.
pub(super) struct FirstPacketFields {
    pub(super) pcr_90k: Option<u64>,
    pub(super) random_access: bool,
}

impl FirstPacketFields {
    /// Bytes of adaptation field these need, before any stuffing.
    fn len(&self) -> usize {
        match (self.pcr_90k, self.random_access) {
            (Some(_), _) => AF_WITH_PCR_LEN,
            (None, true) => AF_FLAGS_ONLY_LEN,
            (None, false) => 0,
        }
    }
}

/// Appends an adaptation field of exactly `len` bytes (≥ 1) including its length byte,
/// stuffed with 0xFF (§2.4.3.5).
fn put_adaptation_field(len: usize, pcr_90k: Option<u64>, random_access: bool, out: &mut BytesMut) {
    out.put_u8((len - 1) as u8);
    if len == 1 {
        // A lone adaptation_field_length of 0 is the one-byte stuffing case.
        return;
    }
    out.put_u8(u8::from(random_access) << 6 | u8::from(pcr_90k.is_some()) << 4);
    let mut used = AF_FLAGS_ONLY_LEN;
    if let Some(pcr) = pcr_90k {
        out.put_slice(&pcr_bytes(pcr));
        used = AF_WITH_PCR_LEN;
    }
    out.put_bytes(0xFF, len - used);
}

/// Splits one PES, given as consecutive `parts` (header and framing, then the access unit's
/// shared bytes, so neither is copied twice), into TS packets on `pid`, advancing `next_cc`.
/// The last packet is filled up with adaptation-field stuffing, since a PES may not be padded
/// after its end inside the packet (§2.4.3.5).
pub(super) fn put_pes_packets(
    pid: u16,
    next_cc: &mut u8,
    first: FirstPacketFields,
    parts: [&[u8]; 2],
    out: &mut BytesMut,
) {
    let total = parts[0].len() + parts[1].len();
    let mut written = 0;
    while written < total {
        let is_first = written == 0;
        let fields_len = if is_first { first.len() } else { 0 };
        let remaining = total - written;
        let (af_len, n) = if remaining >= TS_PAYLOAD_CAPACITY - fields_len {
            (fields_len, TS_PAYLOAD_CAPACITY - fields_len)
        } else {
            (TS_PAYLOAD_CAPACITY - remaining, remaining)
        };
        let afc = if af_len > 0 {
            AFC_ADAPTATION_AND_PAYLOAD
        } else {
            AFC_PAYLOAD
        };
        put_ts_header(pid, is_first, afc, *next_cc, out);
        *next_cc = (*next_cc + 1) & 0x0F;
        if af_len > 0 {
            let (pcr, rai) = if is_first {
                (first.pcr_90k, first.random_access)
            } else {
                (None, false)
            };
            put_adaptation_field(af_len, pcr, rai, out);
        }
        put_range(parts, written, n, out);
        written += n;
    }
}

/// Appends `n` bytes starting at `start` of the concatenation of `parts`.
fn put_range(parts: [&[u8]; 2], start: usize, n: usize, out: &mut BytesMut) {
    let [head, tail] = parts;
    let end = start + n;
    if start < head.len() {
        out.put_slice(&head[start..end.min(head.len())]);
    }
    if end > head.len() {
        out.put_slice(&tail[start.max(head.len()) - head.len()..end - head.len()]);
    }
}

/// The 6-byte program_clock_reference field for a PCR whose base is `base_90k` and whose
/// 27 MHz extension is 0 (§2.4.3.5).
fn pcr_bytes(base_90k: u64) -> [u8; 6] {
    let base = base_90k % PTS_WRAP;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7E,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_base_spreads_over_33_bits() {
        let bytes = pcr_bytes(PTS_WRAP + 0x1_2345_6789);
        let base = (u64::from(bytes[0]) << 25)
            | (u64::from(bytes[1]) << 17)
            | (u64::from(bytes[2]) << 9)
            | (u64::from(bytes[3]) << 1)
            | u64::from(bytes[4] >> 7);
        assert_eq!(base, 0x1_2345_6789);
        assert_eq!((bytes[4] & 0x7F, bytes[5]), (0x7E, 0));
    }

    /// Every split of a PES into packets, for every length around the packet boundaries and
    /// every combination of first-packet fields: whole packets, the bytes in order, stuffing
    /// only where the data runs out, and the counter advanced once per packet.
    #[test]
    fn pes_split_keeps_bytes_in_order_in_whole_packets() {
        let data: Vec<u8> = (0..1_000u32).map(|i| (i % 251) as u8).collect();
        for total in 1..=600 {
            for split in [0, 1, 19, total.min(184)] {
                let split = split.min(total);
                for (pcr_90k, random_access) in [
                    (None, false),
                    (None, true),
                    (Some(7), false),
                    (Some(7), true),
                ] {
                    let mut out = BytesMut::new();
                    let mut cc = 14;
                    let parts = [&data[..split], &data[split..total]];
                    let first = FirstPacketFields {
                        pcr_90k,
                        random_access,
                    };
                    put_pes_packets(0x100, &mut cc, first, parts, &mut out);
                    assert_eq!(out.len() % TS_PACKET_SIZE, 0);
                    let packets = out.len() / TS_PACKET_SIZE;
                    assert_eq!(usize::from(cc), (14 + packets) % 16);
                    let mut payload = Vec::new();
                    for (i, p) in out.chunks(TS_PACKET_SIZE).enumerate() {
                        assert_eq!(usize::from(p[3] & 0x0F), (14 + i) % 16);
                        let start = if p[3] & 0x20 != 0 {
                            5 + usize::from(p[4])
                        } else {
                            4
                        };
                        if i > 0 && i + 1 < packets {
                            assert_eq!(start, 4, "middle packets carry no adaptation field");
                        }
                        payload.extend_from_slice(&p[start..]);
                    }
                    assert_eq!(payload, &data[..total], "total {total}, split {split}");
                }
            }
        }
    }
}
