//! The program-specific information the muxer repeats: one PAT and one PMT, each built once as
//! a whole TS packet so that repeating them costs a copy and a continuity counter
//! (ISO/IEC 13818-1 §2.4.4).

use super::packet::{header_byte3, AFC_PAYLOAD};
use crate::ts::{STREAM_TYPE_H264, STREAM_TYPE_PRIVATE_PES, TS_PACKET_SIZE};
use crate::{Codec, Track};

/// PID of the PAT (ISO/IEC 13818-1 Table 2-3).
pub(crate) const PAT_PID: u16 = 0x0000;
/// The PMT PID we prefer; any free PID works, this is what ffmpeg uses.
pub(crate) const PREFERRED_PMT_PID: u16 = 0x1000;
/// The single program we announce.
pub(crate) const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;
const TABLE_ID_PAT: u8 = 0x00;
const TABLE_ID_PMT: u8 = 0x02;
/// registration_descriptor (ISO/IEC 13818-1 §2.6.8) with format_identifier `Opus`, which is
/// how ffmpeg recognises Opus in stream_type 0x06. The mapping comes from the ETSI draft
/// "Opus Interactive Audio Codec: Transport Multiplexing Standard" (v0.1.3, never published;
/// summarised on the Xiph wiki's OpusTS page), which ffmpeg implements.
const OPUS_REGISTRATION_DESCRIPTOR: [u8; 6] = [0x05, 0x04, b'O', b'p', b'u', b's'];
/// DVB extension_descriptor (ETSI EN 300 468 §6.2.16) tag and the user-defined extension tag
/// 0x80 under which the Opus mapping carries `channel_config_code`.
const DVB_EXTENSION_DESCRIPTOR_TAG: u8 = 0x7F;
const OPUS_EXTENSION_TAG: u8 = 0x80;

/// CRC-32/MPEG-2 (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7, initial value all ones,
/// no reflection and no final XOR, so that running it over a section including its CRC
/// yields zero.
pub(crate) fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Builds the TS packet that carries `section` (without its CRC) on `pid`, continuity
/// counter 0: pointer_field 0, the section, its CRC, then 0xFF fill (§2.4.4.2).
fn section_packet(pid: u16, section: &[u8]) -> [u8; TS_PACKET_SIZE] {
    let mut packet = [0xFF; TS_PACKET_SIZE];
    packet[0] = 0x47;
    // payload_unit_start_indicator: the packet starts a section.
    packet[1] = 0x40 | (pid >> 8) as u8;
    packet[2] = pid as u8;
    packet[3] = header_byte3(AFC_PAYLOAD, 0);
    packet[4] = 0; // pointer_field
    let end = 5 + section.len();
    packet[5..end].copy_from_slice(section);
    packet[end..end + 4].copy_from_slice(&crc32_mpeg2(section).to_be_bytes());
    packet
}

/// Starts a long-form section: table_id, section_syntax_indicator, section_length (counting
/// the CRC too, §2.4.4.3), a 16-bit id, version 0 / current_next 1, section 0 of 0.
fn section_start(table_id: u8, body_len: usize, id: u16) -> Vec<u8> {
    let section_length = 5 + body_len + 4;
    let mut section = Vec::with_capacity(3 + section_length);
    section.push(table_id);
    section.extend_from_slice(&(0xB000 | section_length as u16).to_be_bytes());
    section.extend_from_slice(&id.to_be_bytes());
    section.extend_from_slice(&[0xC1, 0x00, 0x00]);
    section
}

/// The PAT announcing program [`PROGRAM_NUMBER`] on `pmt_pid` (§2.4.4.3).
pub(crate) fn pat_packet(pmt_pid: u16) -> [u8; TS_PACKET_SIZE] {
    let mut section = section_start(TABLE_ID_PAT, 4, TRANSPORT_STREAM_ID);
    section.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    section.extend_from_slice(&(0xE000 | pmt_pid).to_be_bytes());
    section_packet(PAT_PID, &section)
}

/// The ES_info descriptors of one track: none for H.264, registration + channel count for
/// Opus.
fn es_info(track: &Track, channels: u8) -> Vec<u8> {
    match track.codec {
        Codec::H264 => Vec::new(),
        Codec::Opus => {
            let mut info = OPUS_REGISTRATION_DESCRIPTOR.to_vec();
            info.extend_from_slice(&[
                DVB_EXTENSION_DESCRIPTOR_TAG,
                2,
                OPUS_EXTENSION_TAG,
                channels,
            ]);
            info
        }
    }
}

/// The PMT of the program (§2.4.4.8): `tracks` are already validated, video first.
/// `channels` is the Opus channel_config_code.
pub(crate) fn pmt_packet(
    pmt_pid: u16,
    pcr_pid: u16,
    tracks: &[(&Track, u8)],
) -> [u8; TS_PACKET_SIZE] {
    let mut body = Vec::new();
    body.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xF000u16.to_be_bytes()); // program_info_length 0
    for &(track, channels) in tracks {
        let stream_type = match track.codec {
            Codec::H264 => STREAM_TYPE_H264,
            Codec::Opus => STREAM_TYPE_PRIVATE_PES,
        };
        let info = es_info(track, channels);
        body.push(stream_type);
        body.extend_from_slice(&(0xE000 | track.pid).to_be_bytes());
        body.extend_from_slice(&(0xF000 | info.len() as u16).to_be_bytes());
        body.extend_from_slice(&info);
    }
    let mut section = section_start(TABLE_ID_PMT, body.len(), PROGRAM_NUMBER);
    section.extend_from_slice(&body);
    section_packet(pmt_pid, &section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        // CRC-32/MPEG-2 check value for "123456789" from the CRC RevEng catalogue.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn sections_checksum_to_zero_including_their_crc() {
        let audio = Track {
            pid: 0x101,
            codec: Codec::Opus,
            channels: Some(2),
        };
        for packet in [
            pat_packet(0x1000),
            pmt_packet(0x1000, 0x101, &[(&audio, 2)]),
        ] {
            let section_length = usize::from(u16::from_be_bytes([packet[6], packet[7]]) & 0x0FFF);
            assert_eq!(crc32_mpeg2(&packet[5..8 + section_length]), 0);
            assert!(packet[8 + section_length..].iter().all(|&b| b == 0xFF));
        }
    }

    #[test]
    fn opus_es_info_carries_registration_and_channel_count() {
        let audio = Track {
            pid: 0x101,
            codec: Codec::Opus,
            channels: Some(6),
        };
        let info = es_info(&audio, 6);
        assert_eq!(info, [0x05, 4, b'O', b'p', b'u', b's', 0x7F, 2, 0x80, 6]);
    }
}
