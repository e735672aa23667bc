//! MPEG-TS muxer (ISO/IEC 13818-1) for one program of at most one H.264 and one Opus track:
//! access units in, transport stream packets out, in the order they are given.
//!
//! It writes what ffmpeg expects of such a stream: PAT and PMT first, again at least every
//! 100 ms and before every IDR; one PES per access unit, H.264 with an access unit delimiter,
//! Opus framed by `opus_control_header`s and announced by its registration and extension
//! descriptors; a PCR on the video PID (the audio PID without video) running a fixed
//! [`PCR_OFFSET_90K`] behind the decoding timestamps. It does not interleave, reorder, pace
//! to a mux rate, insert null packets or signal discontinuities: the caller decides the
//! order, and a stream that restarts its clock needs a new [`Muxer`].
//!
//! Why not a crate: both candidates are maintained (edition 2024 releases), neither fits.
//! `mpeg2ts` (sile) is a packet-level codec: it can write our PMT descriptors, but leaves PES
//! splitting, stuffing, PCR and PSI repetition to us and copies every 184-byte payload into
//! its own array behind `std::io::Write`, so we would write most of this module anyway.
//! `libmpegts` (cesbo) has a full multiplexer with raw PMT descriptors, but owns the schedule
//! (PSI every 500 ms, PCR only in extra packets, 700 ms behind by default, and a queue that
//! interleaves by DTS instead of "this AU, now"), writes PES_packet_length 0 for every
//! stream, which §2.4.3.7 allows for video only (ffmpeg tolerates it; stricter demuxers need
//! the length to end an audio PES without waiting for the next), and takes each frame as an
//! owned `Vec<u8>` (a copy per access unit, two for Opus). A few hundred lines that do
//! exactly the above were the smaller dependency.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use livegate_media::ts::mux::Muxer;
//! use livegate_media::{AccessUnit, Codec, Pts90k, Track};
//!
//! let tracks = [Track { pid: 0x101, codec: Codec::Opus, channels: Some(2) }];
//! let mut muxer = Muxer::new(&tracks)?;
//! let mut out = BytesMut::new();
//! let au = AccessUnit {
//!     pid: 0x101,
//!     codec: Codec::Opus,
//!     pts: Pts90k::new(0),
//!     dts: None,
//!     keyframe: true,
//!     data: Bytes::from_static(&[0xFC, 0xFF, 0xFE]),
//! };
//! muxer.write(&au, &mut out)?;
//! // PAT, PMT, then one packet of PES.
//! assert_eq!(out.len(), 3 * 188);
//! # Ok::<(), livegate_media::ts::mux::MuxError>(())
//! ```

mod packet;
mod pes;
mod psi;
#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};

use crate::ts::TS_PACKET_SIZE;
use crate::{opus, AccessUnit, Codec, Track, PTS_WRAP};
use packet::{
    put_pcr_only_packet, put_pes_packets, put_psi, FirstPacketFields, TS_PAYLOAD_CAPACITY,
};
use pes::{PesHeader, MAX_PES_HEADER_LEN, STREAM_ID_PRIVATE_1, STREAM_ID_VIDEO};

/// How far the PCR runs behind the decoding timestamp of the unit it is derived from, so that
/// PCR ≤ DTS (ISO/IEC 13818-1 §2.4.2: a unit is decoded when the STC reaches its DTS). 200 ms
/// also covers the audio/video skew of live input whose audio timestamps trail the video's.
pub const PCR_OFFSET_90K: u64 = 18_000;
/// PAT/PMT repetition period; ISO/IEC 13818-1 §2.4.4 leaves it open, ffmpeg and players
/// joining mid-stream are happy with 100 ms.
const PSI_INTERVAL_90K: u64 = 9_000;
/// Longest gap between PCRs (ISO/IEC 13818-1 §2.7.2: at most 100 ms).
const PCR_INTERVAL_90K: u64 = 9_000;
/// A step back in time larger than this is a new timeline, not reordering or A/V skew.
const DISCONTINUITY_90K: i64 = 90_000;
/// An access unit delimiter with primary_pic_type 7 ("any slice type"), the NAL that
/// H.264-in-TS requires first in every access unit (ISO/IEC 13818-1 §2.14.1). Not for
/// ffmpeg's sake: ffmpeg 5.1 decodes, probes and stream-copies a TS without delimiters
/// silently (its own TS muxer adds them); it is for hardware decoders and segmenters that
/// find access units by it.
const ACCESS_UNIT_DELIMITER: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x09, 0xF0];
/// Longest PES_packet_length (a 16-bit field).
const MAX_PES_PACKET_LENGTH: usize = 0xFFFF;

/// Why tracks cannot be muxed, or an access unit cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("no tracks to mux")]
    NoTracks,
    #[error("more than one {0:?} track")]
    DuplicateCodec(Codec),
    #[error("PID {0:#06x} used by two tracks")]
    DuplicatePid(u16),
    #[error("PID {0:#06x} is reserved or out of range for an elementary stream")]
    ReservedPid(u16),
    #[error("Opus track on PID {pid:#06x} needs 1 to 8 channels, has {channels:?}")]
    UnsupportedChannels { pid: u16, channels: Option<u8> },
    #[error("no {codec:?} track on PID {pid:#06x}")]
    UnknownTrack { pid: u16, codec: Codec },
    #[error("Opus access unit of {len} bytes does not fit one PES packet")]
    AccessUnitTooLarge { len: usize },
}

/// One elementary stream being written.
#[derive(Debug)]
struct Stream {
    pid: u16,
    stream_id: u8,
    /// continuity_counter of the next packet that carries payload (§2.4.3.3).
    next_cc: u8,
}

/// Muxes the access units of one program into MPEG-TS.
///
/// Sans-I/O: [`Muxer::write`] appends whole 188-byte packets to a caller's buffer, and the
/// output is a valid transport stream after every call.
#[derive(Debug)]
pub struct Muxer {
    video: Option<Stream>,
    audio: Option<Stream>,
    pcr_pid: u16,
    pat: [u8; TS_PACKET_SIZE],
    pmt: [u8; TS_PACKET_SIZE],
    pat_cc: u8,
    pmt_cc: u8,
    /// Decoding time of the unit before which PAT/PMT were last written.
    last_psi_90k: Option<u64>,
    last_pcr_90k: Option<u64>,
    /// PES header and codec framing of the unit being written, reused across units.
    prefix: BytesMut,
}

impl Muxer {
    /// One program; PIDs come from the tracks (so a demux→mux round trip keeps PIDs). At most
    /// one H.264 and one Opus track; error otherwise.
    pub fn new(tracks: &[Track]) -> Result<Self, MuxError> {
        let mut video: Option<&Track> = None;
        let mut audio: Option<(&Track, u8)> = None;
        for track in tracks {
            // 0x0000-0x000F are reserved and 0x1FFF is the null packet (Table 2-3).
            if !(0x0010..=0x1FFE).contains(&track.pid) {
                return Err(MuxError::ReservedPid(track.pid));
            }
            match track.codec {
                Codec::H264 if video.is_some() => {
                    return Err(MuxError::DuplicateCodec(Codec::H264))
                }
                Codec::H264 => video = Some(track),
                Codec::Opus if audio.is_some() => {
                    return Err(MuxError::DuplicateCodec(Codec::Opus))
                }
                Codec::Opus => {
                    // channel_config_code 1..=8 means that many channels in the Vorbis order;
                    // other codes need a mapping table the Track does not carry.
                    let channels = track.channels.filter(|c| (1..=8).contains(c)).ok_or(
                        MuxError::UnsupportedChannels {
                            pid: track.pid,
                            channels: track.channels,
                        },
                    )?;
                    audio = Some((track, channels));
                }
            }
        }
        if let (Some(v), Some((a, _))) = (video, audio) {
            if v.pid == a.pid {
                return Err(MuxError::DuplicatePid(v.pid));
            }
        }
        let ordered: Vec<(&Track, u8)> = video.map(|v| (v, 0)).into_iter().chain(audio).collect();
        let Some(&(pcr_track, _)) = ordered.first() else {
            return Err(MuxError::NoTracks);
        };
        let pmt_pid = (psi::PREFERRED_PMT_PID..)
            .find(|pid| ordered.iter().all(|(t, _)| t.pid != *pid))
            .expect("two tracks leave a free PID");
        let stream = |track: &Track, stream_id| Stream {
            pid: track.pid,
            stream_id,
            next_cc: 0,
        };
        Ok(Muxer {
            video: video.map(|t| stream(t, STREAM_ID_VIDEO)),
            audio: audio.map(|(t, _)| stream(t, STREAM_ID_PRIVATE_1)),
            pcr_pid: pcr_track.pid,
            pat: psi::pat_packet(pmt_pid),
            pmt: psi::pmt_packet(pmt_pid, pcr_track.pid, &ordered),
            pat_cc: 0,
            pmt_cc: 0,
            last_psi_90k: None,
            last_pcr_90k: None,
            prefix: BytesMut::with_capacity(MAX_PES_HEADER_LEN + ACCESS_UNIT_DELIMITER.len()),
        })
    }

    /// Appends the TS packets for one access unit to `out`.
    pub fn write(&mut self, au: &AccessUnit, out: &mut BytesMut) -> Result<(), MuxError> {
        let stream = match au.codec {
            Codec::H264 => self.video.as_mut(),
            Codec::Opus => self.audio.as_mut(),
        }
        .filter(|s| s.pid == au.pid)
        .ok_or(MuxError::UnknownTrack {
            pid: au.pid,
            codec: au.codec,
        })?;
        let time_90k = au.dts.unwrap_or(au.pts).ticks();
        let idr = au.codec == Codec::H264 && au.keyframe;

        // Prefix first: it is the only step that can fail, and a failed write leaves `out`
        // and the counters untouched.
        self.prefix.clear();
        let header = PesHeader {
            stream_id: stream.stream_id,
            pts: au.pts,
            dts: au.dts,
        };
        match au.codec {
            Codec::H264 => {
                let add_delimiter = !starts_with_access_unit_delimiter(&au.data);
                let delimiter_len = if add_delimiter {
                    ACCESS_UNIT_DELIMITER.len()
                } else {
                    0
                };
                let pes_len = header.counted_len() + delimiter_len + au.data.len();
                // The real length when it fits: a demuxer can then hand the picture on as
                // soon as its last byte arrives. With PES_packet_length 0 ("unbounded",
                // allowed for video only, §2.4.3.7, and what ffmpeg writes) it must wait for
                // the next PES to start, which added a whole frame interval (33 ms at
                // 30 fps) to every frame between WHIP and WHEP. Larger pictures keep 0.
                let declared = (pes_len <= MAX_PES_PACKET_LENGTH).then_some(pes_len as u16);
                header.write(declared, &mut self.prefix);
                if add_delimiter {
                    self.prefix.put_slice(&ACCESS_UNIT_DELIMITER);
                }
            }
            Codec::Opus => {
                let control_len = 2 + au.data.len() / 0xFF + 1;
                let pes_len = header.counted_len() + control_len + au.data.len();
                if pes_len > MAX_PES_PACKET_LENGTH {
                    return Err(MuxError::AccessUnitTooLarge { len: au.data.len() });
                }
                header.write(Some(pes_len as u16), &mut self.prefix);
                opus::write_control_header(au.data.len(), &mut self.prefix);
            }
        }

        let packets = 3 + (self.prefix.len() + au.data.len()).div_ceil(TS_PAYLOAD_CAPACITY - 8);
        out.reserve(packets * TS_PACKET_SIZE);

        if is_due(self.last_psi_90k, time_90k, PSI_INTERVAL_90K) || idr {
            put_psi(&mut self.pat, &mut self.pat_cc, out);
            put_psi(&mut self.pmt, &mut self.pmt_cc, out);
            self.last_psi_90k = Some(time_90k);
        }

        let pcr_90k = time_90k.wrapping_sub(PCR_OFFSET_90K) % PTS_WRAP;
        let mut pes_pcr = None;
        if stream.pid == self.pcr_pid {
            // Never step the PCR back within one timeline (§2.4.2.2); a unit decoded before
            // the last PCR just goes without one.
            let forward = self.last_pcr_90k.is_none_or(|last| {
                !(-DISCONTINUITY_90K..0).contains(&wrapped_delta_90k(last, pcr_90k))
            });
            if forward {
                pes_pcr = Some(pcr_90k);
                self.last_pcr_90k = Some(pcr_90k);
            }
        } else if is_due(self.last_pcr_90k, pcr_90k, PCR_INTERVAL_90K) {
            // The PCR PID has gone quiet (video stalled or not started): keep the clock
            // ticking with an adaptation-field-only packet, which does not advance the
            // continuity counter (§2.4.3.3).
            let pcr_stream = self.video.as_ref().expect("PCR PID is the video PID");
            let last_cc = pcr_stream.next_cc.wrapping_sub(1) & 0x0F;
            put_pcr_only_packet(self.pcr_pid, last_cc, pcr_90k, out);
            self.last_pcr_90k = Some(pcr_90k);
        }
        let stream = match au.codec {
            Codec::H264 => self.video.as_mut(),
            Codec::Opus => self.audio.as_mut(),
        }
        .expect("checked above");

        put_pes_packets(
            stream.pid,
            &mut stream.next_cc,
            FirstPacketFields {
                pcr_90k: pes_pcr,
                random_access: au.keyframe,
            },
            [&self.prefix, &au.data],
            out,
        );
        Ok(())
    }
}

/// Whether `now` is at least `interval` after `last`, or on a new timeline.
fn is_due(last_90k: Option<u64>, now_90k: u64, interval_90k: u64) -> bool {
    last_90k.is_none_or(|last| {
        let delta = wrapped_delta_90k(last, now_90k);
        delta >= interval_90k as i64 || delta < -DISCONTINUITY_90K
    })
}

/// Signed distance from `earlier` to `later` on the 33-bit clock, taking the shorter way
/// round so that a wrap reads as a small step forward.
fn wrapped_delta_90k(earlier: u64, later: u64) -> i64 {
    let forward = later.wrapping_sub(earlier) % PTS_WRAP;
    if forward >= PTS_WRAP / 2 {
        forward as i64 - PTS_WRAP as i64
    } else {
        forward as i64
    }
}

/// The first NAL unit of an access unit is its delimiter when present (ITU-T H.264
/// §7.4.1.2.3), behind a 3- or 4-byte start code.
fn starts_with_access_unit_delimiter(data: &[u8]) -> bool {
    let nal = match data {
        [0, 0, 0, 1, rest @ ..] | [0, 0, 1, rest @ ..] => rest,
        _ => return false,
    };
    nal.first().is_some_and(|header| header & 0x1F == 9)
}
