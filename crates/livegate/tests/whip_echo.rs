//! The gateway's WHIP endpoint echoes when `LIVE_AI_WHIP_ECHO` is on: a publisher whose offer
//! is `sendrecv` is answered `sendrecv` with the stream's tracks (it will get the stream's
//! output back on the same peer connection, from the outputs the WHEP endpoint uses), a
//! `sendonly` one `recvonly` as before. With echo off (the default) every publisher is
//! answered `recvonly`. The media round trip itself is tested in livegate-whip (`tests/echo.rs`); this
//! checks the binary hands the WHIP server its stream outputs.

mod whip_common;

use whip_common::*;

/// An OBS-shaped offer (Opus and H.264, no candidates) with both sections `direction`.
fn offer(direction: &str) -> String {
    let common = "a=rtcp-mux\r\na=setup:actpass\r\na=ice-ufrag:abcd\r\n\
                  a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
                  a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n";
    format!(
        "v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=msid-semantic:WMS *\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na={direction}\r\n\
         a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n{common}\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na={direction}\r\n\
         a=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack pli\r\n\
         a=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1\r\n\
         {common}"
    )
}

async fn answer(base: &str, stream: &str, offer: String) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/live/{stream}/whip"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    response.text().await.unwrap()
}

/// The direction attributes of the answer's media sections, in order.
fn directions(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendrecv_publishers_are_answered_sendrecv_and_sendonly_ones_recvonly() {
    let (_gateway, base) = gateway(&["--whip-echo", "true"]).await;
    let echoed = answer(&base, "echo", offer("sendrecv")).await;
    assert_eq!(directions(&echoed), ["sendrecv", "sendrecv"], "{echoed}");
    assert!(echoed.contains("a=msid:echo "), "{echoed}");

    let plain = answer(&base, "plain", offer("sendonly")).await;
    assert_eq!(directions(&plain), ["recvonly", "recvonly"], "{plain}");
    assert!(!plain.contains("a=msid:"), "{plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_echo_a_sendrecv_publisher_is_answered_recvonly() {
    let (_gateway, base) = gateway(&[]).await;
    let answer = answer(&base, "no-echo", offer("sendrecv")).await;
    assert_eq!(directions(&answer), ["recvonly", "recvonly"], "{answer}");
}
