// The WHIP and WHEP client steps the browser tests run inside their pages (RFC 9725 §4.2,
// draft-ietf-wish-whep §4.1): a complete offer, its POST, the answer, and for a player the
// <video> and the inbound RTP figures. Written out rather than taken from a library, because
// what the tests exercise is exactly the protocol.
//
// What `page.evaluate` runs is serialised into the page and cannot import, so these live on
// `window.wish`: call `page.addInitScript(installWish)` before the page's `goto`.

export function installWish() {
  window.wish = {
    /** Sets the local offer and waits for our host candidates: no trickle (the launch flags
     * disable mDNS, so they are IPs), and at most 2 s. */
    async offer(pc) {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.addEventListener('icegatheringstatechange', () => {
          if (pc.iceGatheringState === 'complete') resolve();
        });
        setTimeout(resolve, 2000);
      });
    },

    /** POSTs the offer to `endpoint` and applies a 201's answer. Returns when it was posted,
     * the response, and the ms until its answer was read; or `error`, named by `label`. */
    async post(pc, endpoint, label) {
      const postedAt = performance.now();
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
      const answer = await response.text();
      if (response.status !== 201) {
        return { error: `${label} answered ${response.status}: ${answer.trim()}` };
      }
      const answeredMs = performance.now() - postedAt;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      return { postedAt, response, answeredMs };
    },

    /** Adds recvonly video and audio to `pc` and returns a muted, autoplaying <video> showing
     * what arrives. */
    player(pc) {
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      document.body.appendChild(video);
      const media = new MediaStream();
      pc.ontrack = (e) => {
        media.addTrack(e.track);
        video.srcObject = media;
      };
      return video;
    },

    /** Ms from `postedAt` to the first frame `video` presents, rounded; null after `timeoutMs`. */
    firstFrameMs(video, postedAt, timeoutMs) {
      return new Promise((resolve) => {
        video.requestVideoFrameCallback(() => resolve(Math.round(performance.now() - postedAt)));
        setTimeout(() => resolve(null), timeoutMs);
      });
    },

    /** The inbound RTP stats by kind (`{ video, audio }`), read every 100 ms until `done`
     * says they are enough or `timeoutMs` passed. */
    async inboundUntil(pc, done, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const stats = {};
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp') stats[s.kind] = s;
        });
        if (done(stats) || performance.now() > deadline) return stats;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
