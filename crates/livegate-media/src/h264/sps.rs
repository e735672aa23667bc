//! The facts the gateway needs from a sequence parameter set (ITU-T H.264 §7.3.2.1.1): the
//! picture size for stats and logs, and the profile and level that the SDP `fmtp` line must
//! announce (RFC 6184 §8.1). Parsing is h264-reader's; this module only picks the fields.
//! It is not a decoder configuration: VUI, frame rate and scaling lists are left alone.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use super::nal::{nal_type, NalType};
use super::H264Error;

/// Picture size, profile and level of an H.264 stream, from its SPS.
///
/// ```
/// use livegate_media::h264::SpsInfo;
/// // x264 constrained baseline, level 3.1, 1280x720.
/// let sps = [
///     0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03,
///     0x00, 0x10, 0x00, 0x00, 0x07, 0x80, 0xF1, 0x83, 0x24, 0x80,
/// ];
/// let info = SpsInfo::parse(&sps).unwrap();
/// assert_eq!((info.width, info.height), (1280, 720));
/// assert_eq!(info.profile_level_id(), "42c01f");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
    /// `profile_idc`: 66 Baseline, 77 Main, 100 High (Annex A).
    pub profile_idc: u8,
    /// The byte after `profile_idc`: `constraint_set0_flag`..`constraint_set5_flag` from the
    /// most significant bit down, then two reserved zero bits.
    pub constraint_flags: u8,
    /// `level_idc`: ten times the level number (31 is level 3.1).
    pub level_idc: u8,
}

impl SpsInfo {
    /// Parses an SPS NAL unit: header byte included, no start code, emulation prevention
    /// bytes still in place (as [`super::nal_units`] yields it).
    pub fn parse(sps_nal: &[u8]) -> Result<SpsInfo, H264Error> {
        if nal_type(sps_nal) != Some(NalType::SPS) {
            return Err(H264Error::NotSps);
        }
        let sps = SeqParameterSet::from_bits(RefNal::new(sps_nal, &[], true).rbsp_bits())
            .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        let (width, height) = sps
            .pixel_dimensions()
            .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        Ok(SpsInfo {
            width,
            height,
            profile_idc: sps.profile_idc.into(),
            constraint_flags: sps.constraint_flags.into(),
            level_idc: sps.level_idc,
        })
    }

    /// The SDP `profile-level-id`: `profile_idc`, the constraint flags byte and `level_idc`
    /// as six lower-case hex digits (RFC 6184 §8.1), e.g. `42c01f`. These are the three bytes
    /// after the SPS header, so level 1b keeps its constraint_set3 encoding as the RFC asks.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// The `a=fmtp` parameters for sending this stream: non-interleaved packetization
    /// (RFC 6184 §6.3, the mode browsers implement), and `level-asymmetry-allowed=1`
    /// (RFC 6184 §8.1) so a receiver that offered a different level still accepts it.
    pub fn fmtp(&self) -> String {
        format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
            self.profile_level_id()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::fixtures::{video_access_units, FIXTURES};
    use crate::h264::nal::nal_units;

    fn fixture_sps_bytes(name: &str) -> Vec<u8> {
        let aus = video_access_units(name);
        let sps = nal_units(&aus[0].data)
            .find(|nal| nal_type(nal) == Some(NalType::SPS))
            .expect("an SPS in the first access unit");
        sps.to_vec()
    }

    fn fixture_sps(name: &str) -> SpsInfo {
        SpsInfo::parse(&fixture_sps_bytes(name)).unwrap()
    }

    // Expected values are what `ffprobe -show_streams` reports for the fixtures:
    // 320x240, level=13, profile "Constrained Baseline" or "High".
    #[test]
    fn constrained_baseline_fixture() {
        let info = fixture_sps("h264-baseline-opus.ts");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.profile_idc, 66);
        // Constrained Baseline is Baseline with constraint_set1_flag (A.2.1.1).
        assert_eq!(info.constraint_flags & 0x40, 0x40);
        assert_eq!(info.level_idc, 13);
        assert!(info.profile_level_id().starts_with("42"));
        assert!(info.profile_level_id().ends_with("0d"));
    }

    #[test]
    fn high_fixtures() {
        for name in ["h264-high-opus.ts", "h264-bframes-opus.ts"] {
            let info = fixture_sps(name);
            assert_eq!((info.width, info.height), (320, 240), "{name}");
            assert_eq!(info.profile_level_id(), "64000d", "{name}");
            assert_eq!(
                info.fmtp(),
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64000d"
            );
        }
    }

    #[test]
    fn every_fixture_is_320x240() {
        for name in FIXTURES {
            let info = fixture_sps(name);
            assert_eq!((info.width, info.height), (320, 240), "{name}");
        }
    }

    #[test]
    fn cropped_1080p() {
        // x264 main profile 1920x1080: coded as 68 macroblock rows (1088) and cropped by 8,
        // with emulation prevention bytes in the VUI timing info.
        let sps = [
            0x67, 0x4D, 0x40, 0x28, 0xEC, 0xA0, 0x3C, 0x01, 0x13, 0xF2, 0xE0, 0x22, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x78, 0x1E, 0x30, 0x63, 0x2C,
        ];
        let info = SpsInfo::parse(&sps).unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.profile_level_id(), "4d4028");
    }

    #[test]
    fn rejects_what_is_not_a_whole_sps() {
        assert_eq!(SpsInfo::parse(&[]), Err(H264Error::NotSps));
        assert_eq!(SpsInfo::parse(&[0x68, 0xCE, 0x06]), Err(H264Error::NotSps));
        let sps = fixture_sps_bytes("h264-baseline-opus.ts");
        for len in 1..sps.len() {
            assert!(
                matches!(SpsInfo::parse(&sps[..len]), Err(H264Error::BadSps(_))),
                "truncated to {len} bytes"
            );
        }
    }
}
