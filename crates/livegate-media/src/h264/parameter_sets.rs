//! Remembering a stream's last SPS and PPS and putting them in front of an IDR picture that
//! arrives without them, so that a viewer joining at any keyframe can decode it. Encoders
//! that send parameter sets only once (at the start, or out of band in an SDP
//! `sprop-parameter-sets`) otherwise leave late joiners with a black screen.
//!
//! One SPS and one PPS per stream: that is what every encoder the gateway meets (x264,
//! browsers, OBS) produces. Streams that switch between several parameter set ids are
//! passed through, but only the last set of each kind is injected.

use bytes::{BufMut, Bytes, BytesMut};

use super::nal::{first_slice, nal_type, nals_before_first_slice, NalType};
use super::sps::SpsInfo;

/// Four-byte start code: Annex B.1 requires the `zero_byte` before parameter sets and before
/// the first NAL unit of an access unit.
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The last SPS and PPS seen on one stream.
///
/// Feed every access unit to [`observe`](Self::observe) in stream order, then pass the ones
/// sent to a decoder that may be starting through
/// [`with_parameter_sets`](Self::with_parameter_sets).
///
/// ```
/// use bytes::Bytes;
/// use livegate_media::h264::{contains_parameter_sets, ParameterSetCache};
///
/// let first = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88];
/// let later_idr = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0xB8]);
/// let mut cache = ParameterSetCache::new();
/// cache.observe(&first);
/// cache.observe(&later_idr);
/// assert!(contains_parameter_sets(&cache.with_parameter_sets(later_idr)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ParameterSetCache {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    sps_info: Option<SpsInfo>,
}

impl ParameterSetCache {
    /// An empty cache: nothing is injected until an SPS and a PPS have been observed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers the SPS and PPS that precede the access unit's first slice, if any.
    ///
    /// Parameter sets are copied out of the access unit (a few dozen bytes) rather than
    /// sliced from it, so the cache never keeps a whole keyframe alive; and only when they
    /// change, so an encoder that repeats them at every keyframe costs a comparison.
    pub fn observe(&mut self, au: &[u8]) {
        for nal in nals_before_first_slice(au) {
            match nal_type(nal) {
                Some(NalType::SPS) if self.sps.as_deref() != Some(nal) => {
                    self.sps_info = SpsInfo::parse(nal).ok();
                    if self.sps_info.is_none() {
                        tracing::debug!(len = nal.len(), "SPS not understood; keeping it");
                    }
                    self.sps = Some(Bytes::copy_from_slice(nal));
                }
                Some(NalType::PPS) if self.pps.as_deref() != Some(nal) => {
                    self.pps = Some(Bytes::copy_from_slice(nal));
                }
                _ => {}
            }
        }
    }

    /// The last SPS NAL unit seen (no start code).
    pub fn sps(&self) -> Option<&Bytes> {
        self.sps.as_ref()
    }

    /// The last PPS NAL unit seen (no start code).
    pub fn pps(&self) -> Option<&Bytes> {
        self.pps.as_ref()
    }

    /// Size, profile and level of the last SPS seen, if h264-reader could parse it.
    pub fn sps_info(&self) -> Option<&SpsInfo> {
        self.sps_info.as_ref()
    }

    /// The access unit, made decodable on its own if it is an IDR picture.
    ///
    /// Returns `au` itself (the same buffer, no copy) unless it is an IDR picture that lacks
    /// an SPS or a PPS before its first slice and the cache holds what is missing. Then it
    /// returns a new buffer laid out as in ITU-T H.264 Figure 7-1: the leading access unit
    /// delimiter if there is one, the SPS, the PPS, the access unit's other leading NAL units
    /// (SEI: a buffering period SEI refers to the SPS, so the SPS must come first), and the
    /// slices unchanged. A parameter set the access unit does carry is kept rather than
    /// replaced; it only moves up to join the other.
    pub fn with_parameter_sets(&self, au: Bytes) -> Bytes {
        let Some((NalType::IDR_SLICE, slices)) = first_slice(&au) else {
            return au;
        };
        let (mut has_sps, mut has_pps) = (false, false);
        for nal in nals_before_first_slice(&au) {
            match nal_type(nal) {
                Some(NalType::SPS) => has_sps = true,
                Some(NalType::PPS) => has_pps = true,
                _ => {}
            }
        }
        let injected_sps = if has_sps { None } else { self.sps.as_deref() };
        let injected_pps = if has_pps { None } else { self.pps.as_deref() };
        if (has_sps && has_pps)
            || (!has_sps && injected_sps.is_none())
            || (!has_pps && injected_pps.is_none())
        {
            return au;
        }

        let leading = || nals_before_first_slice(&au);
        let aud = leading()
            .next()
            .filter(|nal| nal_type(nal) == Some(NalType::ACCESS_UNIT_DELIMITER));
        let of_type = |t: NalType| leading().filter(move |nal| nal_type(nal) == Some(t));
        let others = leading()
            .skip(usize::from(aud.is_some()))
            .filter(|nal| !matches!(nal_type(nal), Some(NalType::SPS | NalType::PPS)));
        let units = aud
            .into_iter()
            .chain(injected_sps)
            .chain(of_type(NalType::SPS))
            .chain(injected_pps)
            .chain(of_type(NalType::PPS))
            .chain(others)
            .chain(std::iter::once(slices));

        let len = units.clone().map(|nal| START_CODE.len() + nal.len()).sum();
        let mut out = BytesMut::with_capacity(len);
        for nal in units {
            out.put_slice(&START_CODE);
            out.put_slice(nal);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::h264::fixtures::video_access_units;
    use crate::h264::nal::{contains_parameter_sets, is_idr_access_unit, nal_units};

    fn annexb(nals: &[&[u8]]) -> Bytes {
        let mut out = BytesMut::new();
        for nal in nals {
            out.put_slice(&START_CODE);
            out.put_slice(nal);
        }
        out.freeze()
    }

    fn without_parameter_sets(au: &[u8]) -> Bytes {
        let kept: Vec<&[u8]> = nal_units(au)
            .filter(|nal| !matches!(nal_type(nal), Some(NalType::SPS | NalType::PPS)))
            .collect();
        annexb(&kept)
    }

    fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
        a.as_ptr() == b.as_ptr() && a.len() == b.len()
    }

    #[test]
    fn restores_the_parameter_sets_x264_wrote() {
        // x264 writes AUD, SPS, PPS, SEI (its version string, first keyframe only), IDR.
        for name in ["h264-baseline-opus.ts", "h264-high-opus.ts"] {
            let aus = video_access_units(name);
            let mut cache = ParameterSetCache::new();
            for au in &aus {
                cache.observe(&au.data);
            }
            assert!(cache.sps_info().is_some());
            let keyframes: Vec<&Bytes> = aus
                .iter()
                .map(|au| &au.data)
                .filter(|au| is_idr_access_unit(au))
                .collect();
            assert!(keyframes.len() >= 2, "{name}");
            for original in keyframes {
                let stripped = without_parameter_sets(original);
                assert!(!contains_parameter_sets(&stripped));
                let restored = cache.with_parameter_sets(stripped);
                let got: Vec<&[u8]> = nal_units(&restored).collect();
                let want: Vec<&[u8]> = nal_units(original).collect();
                assert_eq!(got, want, "{name}");
            }
        }
    }

    #[test]
    fn leaves_complete_and_non_idr_access_units_alone() {
        let aus = video_access_units("h264-baseline-opus.ts");
        let mut cache = ParameterSetCache::new();
        for au in &aus {
            cache.observe(&au.data);
            let out = cache.with_parameter_sets(au.data.clone());
            assert!(same_buffer(&out, &au.data), "copied an access unit");
        }
    }

    #[test]
    fn nothing_to_inject_until_both_sets_were_seen() {
        let idr = annexb(&[&[0x09, 0x10], &[0x65, 0xB8]]);
        let mut cache = ParameterSetCache::new();
        assert!(same_buffer(&cache.with_parameter_sets(idr.clone()), &idr));
        cache.observe(&annexb(&[&[0x67, 0x42, 0xC0, 0x1E]]));
        assert!(same_buffer(&cache.with_parameter_sets(idr.clone()), &idr));
        cache.observe(&annexb(&[&[0x68, 0xCE, 0x38, 0x80]]));
        assert_eq!(
            cache.with_parameter_sets(idr),
            annexb(&[
                &[0x09, 0x10],
                &[0x67, 0x42, 0xC0, 0x1E],
                &[0x68, 0xCE, 0x38, 0x80],
                &[0x65, 0xB8],
            ])
        );
    }

    #[test]
    fn fills_in_only_the_missing_set_after_the_delimiter() {
        let mut cache = ParameterSetCache::new();
        cache.observe(&annexb(&[&[0x67, 0x42, 1], &[0x68, 0xCE, 1]]));
        // Own SPS (a new one) but no PPS: the cached PPS goes after it, the SEI moves behind
        // both, and the three-byte start code of the second slice is kept.
        let mut au = annexb(&[
            &[0x09, 0x10],
            &[0x06, 5, 0x80],
            &[0x67, 0x42, 2],
            &[0x65, 1],
        ])
        .to_vec();
        au.extend_from_slice(&[0, 0, 1, 0x65, 2]);
        let out = cache.with_parameter_sets(Bytes::from(au));
        let mut want = annexb(&[
            &[0x09, 0x10],
            &[0x67, 0x42, 2],
            &[0x68, 0xCE, 1],
            &[0x06, 5, 0x80],
            &[0x65, 1],
        ])
        .to_vec();
        want.extend_from_slice(&[0, 0, 1, 0x65, 2]);
        assert_eq!(out, want);
    }

    #[test]
    fn follows_a_parameter_set_change() {
        let mut cache = ParameterSetCache::new();
        for name in ["h264-baseline-opus.ts", "h264-high-opus.ts"] {
            let aus = video_access_units(name);
            cache.observe(&aus[0].data);
            let sps = nal_units(&aus[0].data)
                .find(|nal| nal_type(nal) == Some(NalType::SPS))
                .unwrap();
            assert_eq!(cache.sps().map(|b| b.as_ref()), Some(sps));
            assert_eq!(cache.sps_info(), SpsInfo::parse(sps).ok().as_ref());
        }
        assert_eq!(cache.sps_info().unwrap().profile_idc, 100);
    }

    fn leading_nal() -> impl Strategy<Value = Vec<u8>> {
        // Non-slice NAL units that may precede a slice: SEI, SPS, PPS, AUD, and others.
        (
            prop_oneof![Just(6u8), Just(7), Just(8), Just(9), 10u8..32],
            proptest::collection::vec(1u8..=255, 0..8),
        )
            .prop_map(|(t, body)| {
                let mut nal = vec![0x60 | t];
                nal.extend(body);
                nal
            })
    }

    proptest! {
        #[test]
        fn idr_output_is_complete_and_loses_nothing(
            leading in proptest::collection::vec(leading_nal(), 0..6),
            slices in proptest::collection::vec(proptest::collection::vec(1u8..=255, 1..16), 1..4),
        ) {
            let mut cache = ParameterSetCache::new();
            cache.observe(&annexb(&[&[0x67, 0xAA], &[0x68, 0xBB]]));
            let mut nals: Vec<Vec<u8>> = leading;
            for slice in slices {
                let mut nal = vec![0x65];
                nal.extend(slice);
                nals.push(nal);
            }
            let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            let au = annexb(&refs);
            let out = cache.with_parameter_sets(au.clone());
            prop_assert!(contains_parameter_sets(&out));
            prop_assert!(is_idr_access_unit(&out));
            // Every unit of the input is still there, and the slices are last and in order.
            let sorted = |buf: &[u8]| {
                let mut v: Vec<Vec<u8>> = nal_units(buf).map(<[u8]>::to_vec).collect();
                v.sort();
                v
            };
            let out_units = sorted(&out);
            for nal in sorted(&au) {
                prop_assert!(out_units.contains(&nal));
            }
            let tail = |buf: &[u8]| -> Vec<Vec<u8>> {
                nal_units(buf).skip_while(|n| !nal_type(n).unwrap().is_slice()).map(<[u8]>::to_vec).collect()
            };
            prop_assert_eq!(tail(&out), tail(&au));
            if contains_parameter_sets(&au) {
                prop_assert!(same_buffer(&out, &au));
            }
        }
    }
}
