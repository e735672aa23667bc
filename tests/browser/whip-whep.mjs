// One headless Chromium page publishes its fake camera and microphone to livegate over WHIP;
// a second page plays the same stream over WHEP through the passthrough pipeline. Checks
// that the player decodes video frames and receives audio, and reports the times. With
// --expect-gray the gateway runs a worker that removes colour (the ffmpeg example worker with
// `hue=s=0`): the played picture must be gray while the fake camera's is colourful.
//
//   node whip-whep.mjs --gateway http://127.0.0.1:8935 --stream cam [--min-frames 60]
//                      [--simulcast] [--expect-gray]
//
// Exits non-zero if the publish is refused or the player decodes too little.

import { launchChromium, requireLoopback } from './chromium.mjs';
import { installWish } from './wish-page.mjs';

function parseArgs(argv) {
  const args = { minFrames: 60, timeoutMs: 20000, simulcast: false, expectGray: false };
  for (let i = 2; i < argv.length; i++) {
    const next = () => argv[++i];
    switch (argv[i]) {
      case '--gateway': args.gateway = next(); break;
      case '--stream': args.stream = next(); break;
      case '--min-frames': args.minFrames = Number(next()); break;
      case '--screenshot': args.screenshot = next(); break;
      case '--simulcast': args.simulcast = true; break;
      case '--expect-gray': args.expectGray = true; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!args.gateway || !args.stream) throw new Error('--gateway and --stream are required');
  requireLoopback(args.gateway);
  return args;
}

// In the publishing page: WHIP with the fake devices, H.264 preferred.
async function publish({ stream, simulcast }) {
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 360, frameRate: 30 },
    audio: true,
  });
  const pc = new RTCPeerConnection();
  window.publisher = pc;
  for (const track of media.getTracks()) {
    // Simulcast as OBS and browsers offer it (rids 0, 1, 2): the gateway takes the first.
    const sendEncodings = simulcast && track.kind === 'video'
      ? [{ rid: '0' }, { rid: '1', scaleResolutionDownBy: 2 }, { rid: '2', scaleResolutionDownBy: 4 }]
      : undefined;
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', sendEncodings });
    if (track.kind === 'video') {
      const h264 = RTCRtpSender.getCapabilities('video').codecs.filter(
        (c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine ?? ''),
      );
      if (h264.length === 0) return { error: 'this Chromium cannot send H.264' };
      transceiver.setCodecPreferences(h264);
    }
  }
  await wish.offer(pc);
  const posted = await wish.post(pc, `/live/${stream}/whip`, 'WHIP POST');
  if (posted.error) return { error: posted.error };
  await new Promise((resolve) => {
    if (pc.connectionState === 'connected') return resolve();
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected') resolve();
    });
  });
  return {
    answeredMs: Math.round(performance.now() - posted.postedAt),
    location: posted.response.headers.get('Location'),
    playbackUrl: posted.response.headers.get('Livepeer-Playback-URL'),
  };
}

async function unpublish({ location }) {
  const response = await fetch(location, { method: 'DELETE' });
  window.publisher.close();
  return response.status;
}

// In the playing page: WHEP until enough frames were decoded.
async function play({ stream, minFrames, timeoutMs }) {
  const pc = new RTCPeerConnection();
  const video = wish.player(pc);
  await wish.offer(pc);
  const posted = await wish.post(pc, `/live/${stream}/whep`, 'WHEP POST');
  if (posted.error) return { error: posted.error };
  const firstFrameMs = await wish.firstFrameMs(video, posted.postedAt, timeoutMs);
  const stats = await wish.inboundUntil(
    pc,
    (s) => (s.video?.framesDecoded ?? 0) >= minFrames && (s.audio?.totalSamplesReceived ?? 0) > 0,
    timeoutMs,
  );
  // How far the picture is from gray: the mean of |r-g|+|g-b|+|b-r| over sampled pixels.
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  let colourfulness = null;
  if (canvas.width > 0) {
    const context = canvas.getContext('2d');
    context.drawImage(video, 0, 0);
    const px = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    let n = 0;
    for (let i = 0; i < px.length; i += 4 * 7) {
      sum += Math.abs(px[i] - px[i + 1]) + Math.abs(px[i + 1] - px[i + 2]) + Math.abs(px[i + 2] - px[i]);
      n++;
    }
    colourfulness = Math.round((sum / n) * 10) / 10;
  }
  await fetch(posted.response.headers.get('Location'), { method: 'DELETE' });
  pc.close();
  return {
    colourfulness,
    firstFrameMs,
    framesDecoded: stats.video?.framesDecoded ?? 0,
    width: stats.video?.frameWidth ?? 0,
    height: stats.video?.frameHeight ?? 0,
    audioSamples: stats.audio?.totalSamplesReceived ?? 0,
  };
}

async function main() {
  const args = parseArgs(process.argv);
  const browser = await launchChromium();
  let failed = true;
  try {
    const publisher = await browser.newPage();
    await publisher.addInitScript(installWish);
    await publisher.goto(`${args.gateway}/healthz`);
    const published = await publisher.evaluate(publish, args);
    console.log(JSON.stringify({ published }));
    if (published.error) return;
    const player = await browser.newPage();
    await player.addInitScript(installWish);
    await player.goto(`${args.gateway}/healthz`);
    const played = await player.evaluate(play, args);
    console.log(JSON.stringify({ played }));
    if (args.screenshot) await player.screenshot({ path: args.screenshot });
    const deleted = await publisher.evaluate(unpublish, published);
    console.log(JSON.stringify({ unpublished: deleted }));
    failed = Boolean(played.error) || played.framesDecoded < args.minFrames ||
      played.audioSamples === 0 || deleted !== 200 ||
      !published.playbackUrl?.endsWith(`/live/${args.stream}/whep`) ||
      (args.expectGray && !(played.colourfulness !== null && played.colourfulness < 6));
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
