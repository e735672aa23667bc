//! Remembering SPS/PPS so that any IDR can start a decoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::nal::{nal_type, nal_units, NalType};
use super::sps::SpsInfo;

/// The last SPS and PPS seen on a stream. Encoders often send parameter sets only with the
/// first IDR (or out of band); a viewer that joins at a later IDR needs them in front of it.
#[derive(Debug, Clone, Default)]
pub struct ParameterSetCache {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    sps_info: Option<SpsInfo>,
}

impl ParameterSetCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers any SPS/PPS in the access unit. Copies only when a parameter set changes.
    pub fn observe(&mut self, au: &[u8]) {
        for nal in nal_units(au) {
            match nal_type(nal) {
                Some(t) if t == NalType::Sps as u8 && self.sps.as_deref() != Some(nal) => {
                    self.sps_info = SpsInfo::parse(nal).ok();
                    self.sps = Some(Bytes::copy_from_slice(nal));
                }
                Some(t) if t == NalType::Pps as u8 && self.pps.as_deref() != Some(nal) => {
                    self.pps = Some(Bytes::copy_from_slice(nal));
                }
                _ => {}
            }
        }
    }

    pub fn sps(&self) -> Option<&Bytes> {
        self.sps.as_ref()
    }

    pub fn pps(&self) -> Option<&Bytes> {
        self.pps.as_ref()
    }

    pub fn sps_info(&self) -> Option<&SpsInfo> {
        self.sps_info.as_ref()
    }

    /// `au` unchanged (the same buffer) unless it is an IDR without an SPS or PPS and the
    /// cache has both; then a new access unit with SPS and PPS inserted before its first
    /// slice (after a leading AUD or SEI).
    pub fn with_parameter_sets(&self, au: Bytes) -> Bytes {
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return au;
        };
        let (mut has_sps, mut has_pps, mut idr) = (false, false, false);
        for nal in nal_units(&au) {
            match nal_type(nal) {
                Some(t) if t == NalType::Sps as u8 => has_sps = true,
                Some(t) if t == NalType::Pps as u8 => has_pps = true,
                Some(t) if t == NalType::IdrSlice as u8 => idr = true,
                _ => {}
            }
        }
        if !idr || (has_sps && has_pps) {
            return au;
        }
        let mut out = BytesMut::with_capacity(au.len() + sps.len() + pps.len() + 8);
        let mut inserted = false;
        for nal in nal_units(&au) {
            let t = nal_type(nal);
            let is_slice = matches!(t, Some(1..=5));
            if !inserted && is_slice {
                for ps in [sps, pps] {
                    out.put_slice(&[0, 0, 0, 1]);
                    out.put_slice(ps);
                }
                inserted = true;
            }
            // Drop stale parameter sets of the AU itself so the decoder sees one consistent
            // pair.
            if matches!(t, Some(7) | Some(8)) {
                continue;
            }
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annexb(nals: &[&[u8]]) -> Bytes {
        let mut out = BytesMut::new();
        for nal in nals {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
        out.freeze()
    }

    #[test]
    fn injects_before_a_bare_idr_and_leaves_everything_else_alone() {
        let mut cache = ParameterSetCache::new();
        let first = annexb(&[
            &[0x09, 0xF0],
            &[0x67, 0x42, 0xC0, 0x1E],
            &[0x68, 0xCE],
            &[0x65, 1],
        ]);
        cache.observe(&first);
        assert_eq!(cache.sps().unwrap().as_ref(), &[0x67, 0x42, 0xC0, 0x1E]);

        let bare_idr = annexb(&[&[0x09, 0xF0], &[0x65, 2]]);
        let fixed = cache.with_parameter_sets(bare_idr);
        assert_eq!(
            fixed,
            annexb(&[
                &[0x09, 0xF0],
                &[0x67, 0x42, 0xC0, 0x1E],
                &[0x68, 0xCE],
                &[0x65, 2]
            ])
        );

        let complete = first.clone();
        let same = cache.with_parameter_sets(complete.clone());
        assert_eq!(
            same.as_ptr(),
            complete.as_ptr(),
            "no copy for a complete IDR"
        );
        let p_frame = annexb(&[&[0x41, 3]]);
        let same = cache.with_parameter_sets(p_frame.clone());
        assert_eq!(same.as_ptr(), p_frame.as_ptr(), "no copy for a non-IDR");
    }

    #[test]
    fn without_cached_sets_nothing_changes() {
        let cache = ParameterSetCache::new();
        let idr = annexb(&[&[0x65, 2]]);
        assert_eq!(
            cache.with_parameter_sets(idr.clone()).as_ptr(),
            idr.as_ptr()
        );
    }
}
