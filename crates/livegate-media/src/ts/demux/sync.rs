//! Finding 188-byte packet boundaries in a byte stream that may start, or be damaged,
//! anywhere (ISO/IEC 13818-1 §2.4.3.2: every packet starts with sync byte 0x47).

use crate::ts::TS_PACKET_SIZE;

const SYNC_BYTE: u8 = 0x47;

/// Cuts arbitrary chunks of bytes into runs of whole, sync-aligned TS packets.
///
/// A reader that joins a stream mid-packet, or a worker whose output loses bytes, produces
/// misaligned data; the aligner skips to the next position where a sync byte is followed by
/// another one 188 bytes later, and counts what it skipped. Aligned input passes through
/// without copying; only a packet split across two chunks is copied.
#[derive(Debug, Default)]
pub(crate) struct PacketAligner {
    carry: Vec<u8>,
    synced: bool,
    /// Times sync was lost after having been found.
    pub(crate) resyncs: u64,
    /// Bytes dropped while looking for sync.
    pub(crate) skipped_bytes: u64,
}

impl PacketAligner {
    /// Calls `emit` with runs of whole packets (a multiple of 188 bytes, each starting with a
    /// sync byte), in stream order.
    pub(crate) fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        if !self.carry.is_empty() {
            // Common case: the carry is the head of an aligned packet that `data` completes.
            let need = TS_PACKET_SIZE - self.carry.len();
            if self.synced
                && self.carry[0] == SYNC_BYTE
                && self.carry.len() < TS_PACKET_SIZE
                && data.len() >= need
                && data.get(need).is_none_or(|&b| b == SYNC_BYTE)
            {
                self.carry.extend_from_slice(&data[..need]);
                let packet = std::mem::take(&mut self.carry);
                emit(&packet);
                self.carry = packet;
                self.carry.clear();
                data = &data[need..];
            } else {
                let mut carry = std::mem::take(&mut self.carry);
                carry.extend_from_slice(data);
                let consumed = self.align(&carry, &mut emit);
                carry.drain(..consumed);
                self.carry = carry;
                return;
            }
        }
        let consumed = self.align(data, &mut emit);
        self.carry.extend_from_slice(&data[consumed..]);
    }

    /// End of input. A final packet that no following sync byte could confirm is delivered
    /// if it starts with a sync byte (a false positive is caught by the continuity checks
    /// downstream); a partial packet is counted as skipped.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.carry.len() == TS_PACKET_SIZE && self.carry[0] == SYNC_BYTE {
            emit(&self.carry);
        } else {
            self.skipped_bytes += self.carry.len() as u64;
        }
        self.carry.clear();
    }

    /// Emits the aligned runs of `buf` and returns how many bytes were consumed; the rest is
    /// an incomplete packet (or an unconfirmed sync candidate) to keep for later.
    fn align(&mut self, buf: &[u8], emit: &mut impl FnMut(&[u8])) -> usize {
        let mut i = 0;
        let mut run_start = 0;
        while buf.len() - i >= TS_PACKET_SIZE {
            // A packet is accepted when the next one starts where it should; at the end of the
            // buffer that cannot be checked, so only an already-synced stream is trusted there.
            let confirmed = buf[i] == SYNC_BYTE
                && match buf.get(i + TS_PACKET_SIZE) {
                    Some(&next) => next == SYNC_BYTE,
                    None => self.synced,
                };
            if confirmed {
                if !self.synced {
                    self.synced = true;
                    run_start = i;
                }
                i += TS_PACKET_SIZE;
                continue;
            }
            if buf[i] == SYNC_BYTE && buf.len() - i == TS_PACKET_SIZE {
                // Unsynced candidate at the very end: wait for the next chunk to confirm it.
                break;
            }
            if self.synced {
                emit(&buf[run_start..i]);
                self.synced = false;
                self.resyncs += 1;
            }
            let skip = buf[i + 1..]
                .iter()
                .position(|&b| b == SYNC_BYTE)
                .map_or(buf.len() - i, |p| p + 1);
            self.skipped_bytes += skip as u64;
            i += skip;
            run_start = i;
        }
        if self.synced && i > run_start {
            emit(&buf[run_start..i]);
        }
        i.min(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = vec![i as u8; TS_PACKET_SIZE];
                p[0] = SYNC_BYTE;
                p
            })
            .collect()
    }

    fn collect(aligner: &mut PacketAligner, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            aligner.push(chunk, |run| {
                assert_eq!(run.len() % TS_PACKET_SIZE, 0);
                out.extend_from_slice(run)
            });
        }
        out
    }

    #[test]
    fn aligned_input_passes_through_whatever_the_chunking() {
        let data = packets(10);
        for split in [1, 100, 188, 200, 1_000] {
            let chunks: Vec<&[u8]> = data.chunks(split).collect();
            let mut aligner = PacketAligner::default();
            assert_eq!(collect(&mut aligner, &chunks), data, "split {split}");
            assert_eq!(aligner.skipped_bytes, 0);
        }
    }

    #[test]
    fn joins_mid_packet_and_recovers_from_lost_bytes() {
        let data = packets(10);
        let mut aligner = PacketAligner::default();
        // Start 50 bytes into packet 0, and lose the last 10 bytes of packet 5.
        let mut damaged = data[50..6 * TS_PACKET_SIZE - 10].to_vec();
        damaged.extend_from_slice(&data[6 * TS_PACKET_SIZE..]);
        let out = collect(&mut aligner, &[&damaged]);
        // Packets 1-4 survive, the shortened packet 5 is dropped, 6-9 survive.
        let mut want = data[TS_PACKET_SIZE..5 * TS_PACKET_SIZE].to_vec();
        want.extend_from_slice(&data[6 * TS_PACKET_SIZE..]);
        assert!(out == want, "got {} bytes, want {}", out.len(), want.len());
        assert_eq!(aligner.resyncs, 1);
        assert_eq!(
            aligner.skipped_bytes,
            (TS_PACKET_SIZE - 50 + TS_PACKET_SIZE - 10) as u64
        );
    }

    #[test]
    fn finish_delivers_an_unconfirmed_last_packet_and_counts_a_partial_one() {
        let data = packets(2);
        // Joined 7 bytes into packet 0: packet 1 is the only candidate and nothing after it can
        // confirm it, so it waits for more input, and end of input settles it.
        let mut aligner = PacketAligner::default();
        let mut out = collect(&mut aligner, &[&data[7..]]);
        assert!(out.is_empty());
        aligner.finish(|run| out.extend_from_slice(run));
        assert_eq!(out, data[TS_PACKET_SIZE..]);
        assert_eq!(aligner.skipped_bytes, (TS_PACKET_SIZE - 7) as u64);

        let mut aligner = PacketAligner::default();
        aligner.push(&data[..100], |_| panic!("no whole packet yet"));
        aligner.finish(|_| panic!("a partial packet is not delivered"));
        assert_eq!(aligner.skipped_bytes, 100);
    }
}
