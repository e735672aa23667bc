//! Sequence parameter set facts (ITU-T H.264 §7.3.2.1.1) for SDP and stats.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

use super::nal::{nal_type, NalType};
use super::H264Error;

/// What the gateway needs from an SPS: the picture size for stats and the
/// `profile-level-id` that must match the stream in the SDP answer (RFC 6184 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    pub profile_idc: u8,
    /// constraint_set0..5 flags, as the byte between profile_idc and level_idc.
    pub constraint_flags: u8,
    pub level_idc: u8,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (header byte included, no start code).
    pub fn parse(sps_nal: &[u8]) -> Result<SpsInfo, H264Error> {
        if nal_type(sps_nal) != Some(NalType::Sps as u8) {
            return Err(H264Error::NotSps);
        }
        let nal = RefNal::new(sps_nal, &[], true);
        let sps = SeqParameterSet::from_bits(nal.rbsp_bits())
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

    /// The SDP `profile-level-id`: profile_idc, constraint flags and level_idc as six hex
    /// digits (RFC 6184 §8.1), e.g. `42c01e`.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// The H.264 `a=fmtp` parameters for this stream, non-interleaved mode.
    pub fn fmtp(&self) -> String {
        format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
            self.profile_level_id()
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::h264::nal::nal_units;

    /// The H.264 elementary stream of a fixture, extracted by ffmpeg.
    pub(crate) fn fixture_annexb(name: &str) -> Vec<u8> {
        let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let output = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", &path, "-map", "0:v", "-c:v", "copy"])
            .args(["-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"])
            .output()
            .expect("ffmpeg is needed for this test (scripts/test.sh installs it)");
        assert!(output.status.success(), "ffmpeg failed on {path}");
        output.stdout
    }

    fn first_sps(annexb: &[u8]) -> SpsInfo {
        let sps = nal_units(annexb)
            .find(|nal| nal_type(nal) == Some(NalType::Sps as u8))
            .expect("an SPS");
        SpsInfo::parse(sps).unwrap()
    }

    #[test]
    fn baseline_and_high_fixtures() {
        let baseline = first_sps(&fixture_annexb("h264-baseline-opus.ts"));
        assert_eq!((baseline.width, baseline.height), (320, 240));
        assert!(
            baseline.profile_level_id().starts_with("42"),
            "{baseline:?}"
        );
        // Constrained baseline sets constraint_set1 (0x40).
        assert_eq!(baseline.constraint_flags & 0x40, 0x40);
        let high = first_sps(&fixture_annexb("h264-high-opus.ts"));
        assert!(high.profile_level_id().starts_with("64"), "{high:?}");
        assert_eq!(
            high.fmtp(),
            format!(
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64{:02x}{:02x}",
                high.constraint_flags, high.level_idc
            )
        );
        assert_eq!(SpsInfo::parse(&[0x68, 1]), Err(H264Error::NotSps));
        assert!(matches!(SpsInfo::parse(&[0x67]), Err(H264Error::BadSps(_))));
    }
}
