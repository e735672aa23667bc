//! Opus packet facts needed to carry Opus in MPEG-TS and RTP: packet durations from the TOC
//! byte (RFC 6716 §3.1) and the `opus_control_header` that frames each packet inside a PES
//! (the Opus-in-MPEG-TS encapsulation of the ETSI Opus-in-TS draft v0.1.3, as ffmpeg writes it).

use bytes::{BufMut, BytesMut};

/// Opus always runs its timestamps at 48 kHz (RFC 7587 §4.1), whatever the coded bandwidth.
pub const OPUS_CLOCK_HZ: u32 = 48_000;

/// Longest duration of one Opus packet: 120 ms (RFC 6716 §3.2.5).
pub const MAX_PACKET_DURATION_48K: u32 = 5_760;

/// Why bytes are not a usable Opus packet or control header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("empty Opus packet")]
    Empty,
    #[error("Opus code 3 packet without a frame count byte")]
    MissingFrameCount,
    #[error("Opus packet longer than 120 ms")]
    TooLong,
    #[error("opus_control_header prefix missing")]
    BadPrefix,
    #[error("opus_control_header truncated")]
    Truncated,
}

/// Duration of one Opus frame in 48 kHz samples for a TOC configuration number.
fn frame_duration_48k(config: u8) -> u32 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1_920, 2_880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// Duration of an Opus packet in 48 kHz samples, from its TOC byte and frame count
/// (RFC 6716 §3.1, §3.2).
///
/// ```
/// // TOC 0xFC: CELT fullband 20 ms, one frame (code 0).
/// assert_eq!(livegate_media::opus::packet_duration_48k(&[0xFC, 0, 0]), Ok(960));
/// ```
pub fn packet_duration_48k(packet: &[u8]) -> Result<u32, OpusError> {
    let toc = *packet.first().ok_or(OpusError::Empty)?;
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1).ok_or(OpusError::MissingFrameCount)? & 0x3F),
    };
    let duration = frames * frame_duration_48k(toc >> 3);
    if duration > MAX_PACKET_DURATION_48K {
        return Err(OpusError::TooLong);
    }
    Ok(duration)
}

/// Converts a duration in 48 kHz samples to 90 kHz ticks. Exact for every Opus frame size
/// (all are multiples of 120 samples = 225 ticks).
pub const fn samples_48k_to_90k(samples: u32) -> u64 {
    samples as u64 * 90_000 / OPUS_CLOCK_HZ as u64
}

/// Appends an `opus_control_header` announcing a packet of `packet_len` bytes with no trim
/// and no extension: `0x7FE0` (11-bit prefix 0x3FF and three clear flags) followed by the
/// size as a run of 0xFF bytes and a final byte below 0xFF.
pub fn write_control_header(packet_len: usize, out: &mut BytesMut) {
    out.put_u16(0x7FE0);
    let mut remaining = packet_len;
    while remaining >= 0xFF {
        out.put_u8(0xFF);
        remaining -= 0xFF;
    }
    out.put_u8(remaining as u8);
}

/// One Opus packet framed by an `opus_control_header` inside a PES payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFramedPacket {
    /// Byte range of the packet within the PES payload.
    pub start: usize,
    pub end: usize,
    /// Samples to discard at the start / end of the decoded packet, when signalled.
    pub start_trim_48k: u16,
    pub end_trim_48k: u16,
}

/// Parses the `opus_control_header` at `payload[offset..]` and returns the framed packet.
pub fn parse_control_header(
    payload: &[u8],
    offset: usize,
) -> Result<ControlFramedPacket, OpusError> {
    let mut pos = offset;
    let byte = |pos: &mut usize| -> Result<u8, OpusError> {
        let b = *payload.get(*pos).ok_or(OpusError::Truncated)?;
        *pos += 1;
        Ok(b)
    };
    let hi = byte(&mut pos)?;
    let lo = byte(&mut pos)?;
    if (u16::from(hi) << 8 | u16::from(lo)) >> 5 != 0x3FF {
        return Err(OpusError::BadPrefix);
    }
    let (start_trim, end_trim, extension) = (lo & 0x10 != 0, lo & 0x08 != 0, lo & 0x04 != 0);
    let mut size = 0usize;
    loop {
        let b = byte(&mut pos)?;
        size += usize::from(b);
        if b != 0xFF {
            break;
        }
    }
    let read_u16 = |pos: &mut usize| -> Result<u16, OpusError> {
        let hi = byte(pos)?;
        let lo = byte(pos)?;
        Ok(u16::from(hi) << 8 | u16::from(lo))
    };
    let start_trim_48k = if start_trim { read_u16(&mut pos)? } else { 0 };
    let end_trim_48k = if end_trim { read_u16(&mut pos)? } else { 0 };
    if extension {
        let len = usize::from(byte(&mut pos)?);
        pos += len;
    }
    let end = pos.checked_add(size).ok_or(OpusError::Truncated)?;
    if end > payload.len() {
        return Err(OpusError::Truncated);
    }
    Ok(ControlFramedPacket {
        start: pos,
        end,
        start_trim_48k,
        end_trim_48k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_rfc6716_table() {
        assert_eq!(packet_duration_48k(&[0x00]), Ok(480)); // SILK NB 10 ms
        assert_eq!(packet_duration_48k(&[0x0B << 3]), Ok(2_880)); // SILK WB 60 ms
        assert_eq!(packet_duration_48k(&[(0x0D << 3) | 1]), Ok(1_920)); // hybrid 20 ms x2
        assert_eq!(packet_duration_48k(&[0x10 << 3]), Ok(120)); // CELT 2.5 ms
        assert_eq!(packet_duration_48k(&[(0x1F << 3) | 3, 6]), Ok(5_760)); // 6 x 20 ms
        assert_eq!(
            packet_duration_48k(&[(0x1F << 3) | 3, 7]),
            Err(OpusError::TooLong)
        );
        assert_eq!(
            packet_duration_48k(&[0x03]),
            Err(OpusError::MissingFrameCount)
        );
        assert_eq!(packet_duration_48k(&[]), Err(OpusError::Empty));
        assert_eq!(samples_48k_to_90k(960), 1_800);
        assert_eq!(samples_48k_to_90k(120), 225);
    }

    #[test]
    fn control_header_round_trips_for_sizes_around_255() {
        for len in [0usize, 1, 254, 255, 256, 510, 1_275] {
            let mut buf = BytesMut::new();
            write_control_header(len, &mut buf);
            let header_len = buf.len();
            buf.extend(std::iter::repeat_n(0xAB, len));
            let framed = parse_control_header(&buf, 0).unwrap();
            assert_eq!((framed.start, framed.end), (header_len, header_len + len));
        }
    }

    #[test]
    fn control_header_with_trims_and_extension() {
        // flags: start trim, end trim, extension; size 2; trims 3 and 4; 1 extension byte.
        let bytes = [0x7F, 0xFC, 2, 0, 3, 0, 4, 1, 0xEE, 0xAA, 0xBB];
        let framed = parse_control_header(&bytes, 0).unwrap();
        assert_eq!((framed.start, framed.end), (9, 11));
        assert_eq!((framed.start_trim_48k, framed.end_trim_48k), (3, 4));
        assert_eq!(
            parse_control_header(&[0x12, 0x34, 0], 0),
            Err(OpusError::BadPrefix)
        );
        assert_eq!(
            parse_control_header(&[0x7F, 0xE0, 9, 1], 0),
            Err(OpusError::Truncated)
        );
    }
}
