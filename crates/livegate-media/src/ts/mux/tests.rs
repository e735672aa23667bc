//! Checks of the muxer's packet structure against ISO/IEC 13818-1, read back with a parser
//! written here from the spec rather than from the muxer's own helpers.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::Pts90k;

const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

fn video_track() -> Track {
    Track {
        pid: VIDEO_PID,
        codec: Codec::H264,
        channels: None,
    }
}

fn audio_track(channels: Option<u8>) -> Track {
    Track {
        pid: AUDIO_PID,
        codec: Codec::Opus,
        channels,
    }
}

fn video_au(pts: u64, dts: Option<u64>, keyframe: bool, data: &[u8]) -> AccessUnit {
    AccessUnit {
        pid: VIDEO_PID,
        codec: Codec::H264,
        pts: Pts90k::new(pts),
        dts: dts.map(Pts90k::new),
        keyframe,
        data: Bytes::copy_from_slice(data),
    }
}

fn audio_au(pts: u64, len: usize) -> AccessUnit {
    AccessUnit {
        pid: AUDIO_PID,
        codec: Codec::Opus,
        pts: Pts90k::new(pts),
        dts: None,
        keyframe: true,
        data: Bytes::from(vec![0xFC; len]),
    }
}

/// An IDR-looking H.264 access unit without delimiter: SPS-ish and slice NALs.
fn picture(len: usize) -> Vec<u8> {
    let mut data = vec![0, 0, 0, 1, 0x65];
    data.resize(len.max(5), 0x5A);
    data
}

fn is_es(pid: u16) -> bool {
    pid == VIDEO_PID || pid == AUDIO_PID
}

/// One TS packet as §2.4.3.2 lays it out.
#[derive(Debug)]
struct Packet<'a> {
    pid: u16,
    unit_start: bool,
    cc: u8,
    has_payload: bool,
    random_access: bool,
    pcr_90k: Option<u64>,
    payload: &'a [u8],
}

fn parse(stream: &[u8]) -> Vec<Packet<'_>> {
    assert_eq!(stream.len() % 188, 0, "stream is whole packets");
    stream
        .chunks(188)
        .map(|p| {
            assert_eq!(p[0], 0x47, "sync byte");
            let afc = (p[3] >> 4) & 3;
            let mut packet = Packet {
                pid: u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]),
                unit_start: p[1] & 0x40 != 0,
                cc: p[3] & 0x0F,
                has_payload: afc & 1 != 0,
                random_access: false,
                pcr_90k: None,
                payload: &[],
            };
            let mut start = 4;
            if afc & 2 != 0 {
                let len = usize::from(p[4]);
                if len > 0 {
                    let flags = p[5];
                    packet.random_access = flags & 0x40 != 0;
                    if flags & 0x10 != 0 {
                        let b = &p[6..12];
                        packet.pcr_90k = Some(
                            (u64::from(b[0]) << 25)
                                | (u64::from(b[1]) << 17)
                                | (u64::from(b[2]) << 9)
                                | (u64::from(b[3]) << 1)
                                | u64::from(b[4] >> 7),
                        );
                    }
                    assert!(
                        p[6 + if flags & 0x10 != 0 { 6 } else { 0 }..5 + len]
                            .iter()
                            .all(|&b| b == 0xFF),
                        "adaptation field ends in 0xFF stuffing"
                    );
                }
                start = 5 + len;
            }
            if packet.has_payload {
                packet.payload = &p[start..];
            } else {
                assert_eq!(start, 188, "an adaptation-only field fills its packet");
            }
            packet
        })
        .collect()
}

/// PES packets (pid, bytes) reassembled from payload_unit_start to the next.
fn pes_packets(packets: &[Packet<'_>]) -> Vec<(u16, Vec<u8>)> {
    let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut open: Vec<(u16, usize)> = Vec::new();
    for p in packets.iter().filter(|p| p.pid != 0 && p.pid != 0x1000) {
        if !p.has_payload {
            continue;
        }
        if p.unit_start {
            out.push((p.pid, Vec::new()));
            open.retain(|(pid, _)| *pid != p.pid);
            open.push((p.pid, out.len() - 1));
        }
        let &(_, index) = open.iter().find(|(pid, _)| *pid == p.pid).unwrap();
        out[index].1.extend_from_slice(p.payload);
    }
    out
}

/// (PTS, DTS) of a PES packet's header.
fn pes_times(pes: &[u8]) -> (u64, Option<u64>) {
    let read = |b: &[u8]| {
        (u64::from(b[0] & 0x0E) << 29)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] & 0xFE) << 14)
            | (u64::from(b[3]) << 7)
            | (u64::from(b[4]) >> 1)
    };
    let pts = read(&pes[9..]);
    let dts = (pes[7] & 0x40 != 0).then(|| read(&pes[14..]));
    (pts, dts)
}

fn mux(tracks: &[Track], aus: &[AccessUnit]) -> BytesMut {
    let mut muxer = Muxer::new(tracks).unwrap();
    let mut out = BytesMut::new();
    for au in aus {
        muxer.write(au, &mut out).unwrap();
    }
    out
}

#[test]
fn first_output_is_pat_then_pmt_announcing_both_tracks() {
    let out = mux(&[audio_track(Some(2)), video_track()], &[audio_au(0, 10)]);
    let packets = parse(&out);
    assert_eq!((packets[0].pid, packets[1].pid), (0, 0x1000));
    let pat = &packets[0].payload[1..];
    assert_eq!(pat[0], 0x00);
    assert_eq!(
        &pat[8..12],
        &[0x00, 0x01, 0xF0, 0x00],
        "program 1 on PID 0x1000"
    );
    let pmt = &packets[1].payload[1..];
    let section_length = usize::from(u16::from_be_bytes([pmt[1], pmt[2]]) & 0x0FFF);
    assert_eq!(psi::crc32_mpeg2(&pmt[..3 + section_length]), 0);
    assert_eq!(
        u16::from_be_bytes([pmt[8], pmt[9]]) & 0x1FFF,
        VIDEO_PID,
        "PCR PID"
    );
    let es = &pmt[12..3 + section_length - 4];
    assert_eq!(&es[..5], &[0x1B, 0xE1, 0x00, 0xF0, 0x00]);
    assert_eq!(
        &es[5..],
        &[0x06, 0xE1, 0x01, 0xF0, 10, 0x05, 4, b'O', b'p', b'u', b's', 0x7F, 2, 0x80, 2]
    );
}

#[test]
fn pes_splits_exactly_at_every_size_with_stuffing_in_the_last_packet() {
    for len in (0..=400).chain([65_000, 70_000]) {
        // Video: PES length 0, AUD prepended. Audio: PES length counts everything.
        let video = video_au(1_000, None, false, &picture(len));
        let audio = audio_au(1_000, len);
        let cases = [(video_track(), &video), (audio_track(Some(1)), &audio)];
        // 70 000 bytes of Opus cannot fit one PES; bad_units_are_refused covers that.
        for (tracks, au) in cases.into_iter().filter(|(_, au)| au.data.len() < 70_000) {
            let out = mux(std::slice::from_ref(&tracks), std::slice::from_ref(au));
            let pes = pes_packets(&parse(&out));
            assert_eq!(pes.len(), 1);
            let pes = &pes[0].1;
            let header_len = 9 + usize::from(pes[8]);
            assert!(pes.ends_with(&au.data), "len {len}: data intact at the end");
            let framing = &pes[header_len..pes.len() - au.data.len()];
            match au.codec {
                Codec::H264 => assert_eq!(framing, &ACCESS_UNIT_DELIMITER),
                Codec::Opus => {
                    let pes_length = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
                    assert_eq!(pes_length, pes.len() - 6, "len {len}: PES_packet_length");
                    let body = &pes[header_len..];
                    let framed = opus::parse_control_header(body, 0)
                        .unwrap_or_else(|e| panic!("len {len}: {e}"));
                    assert_eq!(framed.start, framing.len());
                    assert_eq!(framed.end, body.len());
                    assert_eq!(framed.end - framed.start, len);
                }
            }
        }
    }
}

#[test]
fn video_pes_declares_its_length_when_it_fits() {
    // PES_packet_length counts every byte after itself (§2.4.3.7): a demuxer may hand the
    // picture on as soon as that many arrived, instead of waiting for the next PES.
    for (len, declared) in [(50, true), (60_000, true), (70_000, false)] {
        let out = mux(&[video_track()], &[video_au(0, None, true, &picture(len))]);
        let pes = &pes_packets(&parse(&out))[0].1;
        let field = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
        if declared {
            assert_eq!(field, pes.len() - 6, "{len}-byte picture");
        } else {
            assert_eq!(field, 0, "{len}-byte picture does not fit: unbounded");
        }
    }
}

#[test]
fn delimiter_is_added_only_when_missing() {
    let with_aud = [&ACCESS_UNIT_DELIMITER[..], &picture(50)].concat();
    let short_start_code = [&[0, 0, 1, 0x09, 0x10][..], &picture(50)].concat();
    for (data, expected_prefix) in [
        (picture(50), &ACCESS_UNIT_DELIMITER[..]),
        (with_aud.clone(), &[][..]),
        (short_start_code.clone(), &[][..]),
    ] {
        let out = mux(&[video_track()], &[video_au(0, None, true, &data)]);
        let pes = &pes_packets(&parse(&out))[0].1;
        let body = &pes[9 + usize::from(pes[8])..];
        assert_eq!(body, [expected_prefix, &data].concat());
    }
}

#[test]
fn continuity_counters_count_payload_packets_per_pid() {
    let mut aus = Vec::new();
    for i in 0..40u64 {
        aus.push(video_au(i * 3_000, None, i % 10 == 0, &picture(1_000)));
        aus.push(audio_au(i * 3_000, 150));
    }
    let out = mux(&[video_track(), audio_track(Some(2))], &aus);
    let mut last: std::collections::HashMap<u16, u8> = Default::default();
    for p in parse(&out).iter().filter(|p| p.has_payload) {
        if let Some(prev) = last.insert(p.pid, p.cc) {
            assert_eq!(p.cc, (prev + 1) & 0x0F, "PID {:#x}", p.pid);
        }
    }
    assert_eq!(last.len(), 4, "PAT, PMT, video, audio");
}

#[test]
fn psi_repeats_every_100_ms_and_right_before_each_idr() {
    let mut aus = Vec::new();
    // 5 fps video with an IDR every 7 pictures, 20 ms audio, across the 2^33 wrap.
    let start = PTS_WRAP - 45_000;
    for i in 0..100u64 {
        if i % 9 == 0 {
            let n = i / 9;
            aus.push(video_au(start + i * 1_800, None, n % 7 == 0, &picture(300)));
        }
        aus.push(audio_au(start + i * 1_800, 80));
    }
    let out = mux(&[video_track(), audio_track(Some(2))], &aus);
    let packets = parse(&out);
    let mut last_pat_90k: Option<u64> = None;
    let mut pending_pat = false;
    let mut idrs = 0;
    for (i, p) in packets.iter().enumerate() {
        if p.pid == 0 {
            assert_eq!(packets[i + 1].pid, 0x1000, "PMT follows PAT");
            pending_pat = true;
        }
        if p.unit_start && is_es(p.pid) {
            let (pts, _) = pes_times(p.payload);
            let prev_pid = packets[i - 1].pid;
            if pending_pat {
                last_pat_90k = Some(pts);
                pending_pat = false;
            }
            let since = (pts + PTS_WRAP - last_pat_90k.unwrap()) % PTS_WRAP;
            assert!(since <= PSI_INTERVAL_90K, "{since} ticks without PAT");
            if p.random_access && p.pid == VIDEO_PID {
                idrs += 1;
                assert_eq!(prev_pid, 0x1000, "PMT right before the IDR");
            }
        }
    }
    assert_eq!(idrs, 2);
}

#[test]
fn pcr_stays_behind_dts_and_ticks_while_video_is_sparse() {
    let mut aus = Vec::new();
    // B-frame style DTS < PTS, 4 fps video so that audio must carry the clock in between.
    let start = PTS_WRAP - 60_000;
    for i in 0..60u64 {
        if i % 12 == 0 {
            let dts = start + i * 1_800;
            aus.push(video_au(dts + 6_000, Some(dts), i == 0, &picture(2_000)));
        }
        aus.push(audio_au(start + i * 1_800, 60));
    }
    let out = mux(&[video_track(), audio_track(Some(2))], &aus);
    let packets = parse(&out);
    let mut last_pcr: Option<u64> = None;
    let mut pcr_count = 0;
    for p in &packets {
        if let Some(pcr) = p.pcr_90k {
            assert_eq!(p.pid, VIDEO_PID, "PCR only on the PCR PID");
            if let Some(last) = last_pcr {
                let step = (pcr + PTS_WRAP - last) % PTS_WRAP;
                assert!(step <= PCR_INTERVAL_90K, "PCR gap of {step} ticks");
            }
            last_pcr = Some(pcr);
            pcr_count += 1;
        }
        if p.unit_start && is_es(p.pid) {
            let (pts, dts) = pes_times(p.payload);
            let decode = dts.unwrap_or(pts);
            let ahead = (decode + PTS_WRAP - last_pcr.unwrap()) % PTS_WRAP;
            assert!(ahead < PTS_WRAP / 2, "PCR {last_pcr:?} passed DTS {decode}");
        }
    }
    assert!(pcr_count >= 10, "{pcr_count} PCRs over ~1 s");
}

#[test]
fn random_access_marks_idr_and_opus_but_not_other_pictures() {
    let out = mux(
        &[video_track(), audio_track(Some(2))],
        &[
            video_au(0, None, true, &picture(500)),
            video_au(3_000, None, false, &picture(500)),
            audio_au(0, 20),
        ],
    );
    let starts: Vec<(u16, bool)> = parse(&out)
        .iter()
        .filter(|p| p.unit_start && is_es(p.pid))
        .map(|p| (p.pid, p.random_access))
        .collect();
    assert_eq!(
        starts,
        [(VIDEO_PID, true), (VIDEO_PID, false), (AUDIO_PID, true)]
    );
}

#[test]
fn audio_only_puts_pcr_on_audio() {
    let out = mux(
        &[audio_track(Some(1))],
        &[audio_au(90_000, 10), audio_au(91_800, 10)],
    );
    let pcrs: Vec<(u16, u64)> = parse(&out)
        .iter()
        .filter_map(|p| Some((p.pid, p.pcr_90k?)))
        .collect();
    assert_eq!(
        pcrs,
        [
            (AUDIO_PID, 90_000 - PCR_OFFSET_90K),
            (AUDIO_PID, 91_800 - PCR_OFFSET_90K)
        ]
    );
}

#[test]
fn pmt_pid_moves_out_of_a_tracks_way() {
    let tracks = [Track {
        pid: 0x1000,
        ..video_track()
    }];
    let mut au = video_au(0, None, true, &picture(10));
    au.pid = 0x1000;
    let out = mux(&tracks, &[au]);
    let packets = parse(&out);
    assert_eq!(packets[1].pid, 0x1001);
    assert_eq!(packets[2].pid, 0x1000);
}

#[test]
fn invalid_track_sets_are_refused() {
    let cases = [
        (vec![], MuxError::NoTracks),
        (
            vec![video_track(), video_track()],
            MuxError::DuplicateCodec(Codec::H264),
        ),
        (
            vec![
                video_track(),
                Track {
                    pid: VIDEO_PID,
                    ..audio_track(Some(2))
                },
            ],
            MuxError::DuplicatePid(VIDEO_PID),
        ),
        (
            vec![Track {
                pid: 0x1FFF,
                ..video_track()
            }],
            MuxError::ReservedPid(0x1FFF),
        ),
        (
            vec![audio_track(None)],
            MuxError::UnsupportedChannels {
                pid: AUDIO_PID,
                channels: None,
            },
        ),
        (
            vec![audio_track(Some(9))],
            MuxError::UnsupportedChannels {
                pid: AUDIO_PID,
                channels: Some(9),
            },
        ),
    ];
    for (tracks, expected) in cases {
        assert_eq!(Muxer::new(&tracks).unwrap_err(), expected);
    }
}

#[test]
fn bad_units_are_refused_without_writing() {
    let mut muxer = Muxer::new(&[audio_track(Some(2))]).unwrap();
    let mut out = BytesMut::new();
    assert_eq!(
        muxer.write(&video_au(0, None, true, &picture(10)), &mut out),
        Err(MuxError::UnknownTrack {
            pid: VIDEO_PID,
            codec: Codec::H264
        })
    );
    assert_eq!(
        muxer.write(&audio_au(0, 65_500), &mut out),
        Err(MuxError::AccessUnitTooLarge { len: 65_500 })
    );
    assert!(out.is_empty());
    // The refusals did not consume PSI: the first real unit still starts with PAT.
    muxer.write(&audio_au(0, 10), &mut out).unwrap();
    assert_eq!(parse(&out)[0].pid, 0);
}
