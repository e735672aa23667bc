// Plays a livegate stream over WHEP in Debian's headless Chromium and reports what the
// browser decoded, with the time from the WHEP POST to the first decoded frame.
//
//   node whep-play.mjs --gateway http://127.0.0.1:8935 --stream test [--runs 10]
//                      [--min-frames 30] [--audio] [--screenshot out.png]
//
// Prints one JSON object per run and a summary line with the median time to first frame;
// exits non-zero if any run decodes fewer than --min-frames video frames (or, with --audio,
// receives no audio samples), so the caller can use it as a test.
//
// The page is the gateway's own origin (`/healthz`), so no CORS is involved; the WHEP client
// is written out (wish-page.mjs: POST the offer, apply the answer; DELETE at the end here)
// rather than taken from a library, because what it exercises is exactly the protocol.

import { launchChromium, requireLoopback } from './chromium.mjs';
import { installWish } from './wish-page.mjs';

function parseArgs(argv) {
  const args = { runs: 1, minFrames: 30, audio: false, screenshot: null, timeoutMs: 20000 };
  for (let i = 2; i < argv.length; i++) {
    const next = () => argv[++i];
    switch (argv[i]) {
      case '--gateway': args.gateway = next(); break;
      case '--stream': args.stream = next(); break;
      case '--runs': args.runs = Number(next()); break;
      case '--min-frames': args.minFrames = Number(next()); break;
      case '--audio': args.audio = true; break;
      case '--screenshot': args.screenshot = next(); break;
      case '--timeout-ms': args.timeoutMs = Number(next()); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!args.gateway || !args.stream) throw new Error('--gateway and --stream are required');
  requireLoopback(args.gateway);
  return args;
}

// Runs inside the page: one WHEP session, until `minFrames` frames were decoded.
async function playOnce({ stream, minFrames, audio, timeoutMs }) {
  const pc = new RTCPeerConnection();
  const video = wish.player(pc);
  await wish.offer(pc);
  const posted = await wish.post(pc, `/live/${stream}/whep`, 'POST');
  if (posted.error) {
    pc.close();
    return { error: posted.error };
  }
  const location = posted.response.headers.get('Location');
  const firstFrameMs = await wish.firstFrameMs(video, posted.postedAt, timeoutMs);
  const stats = await wish.inboundUntil(
    pc,
    (s) => (s.video?.framesDecoded ?? 0) >= minFrames && (!audio || (s.audio?.totalSamplesReceived ?? 0) > 0),
    timeoutMs,
  );
  const deleted = await fetch(location, { method: 'DELETE' });
  pc.close();
  return {
    answeredMs: Math.round(posted.answeredMs),
    firstFrameMs,
    framesDecoded: stats.video?.framesDecoded ?? 0,
    width: stats.video?.frameWidth ?? 0,
    height: stats.video?.frameHeight ?? 0,
    audioSamples: stats.audio?.totalSamplesReceived ?? 0,
    // Mean time a frame waited in the jitter buffer: a start that replays an old GOP in real
    // time would show here as seconds of added latency.
    jitterBufferMs: stats.video?.jitterBufferEmittedCount
      ? Math.round((1000 * stats.video.jitterBufferDelay) / stats.video.jitterBufferEmittedCount)
      : null,
    framesDropped: stats.video?.framesDropped ?? 0,
    deleteStatus: deleted.status,
  };
}

async function main() {
  const args = parseArgs(process.argv);
  const browser = await launchChromium();
  let failed = false;
  const firstFrames = [];
  try {
    const page = await browser.newPage();
    await page.addInitScript(installWish);
    await page.goto(`${args.gateway}/healthz`);
    for (let run = 0; run < args.runs; run++) {
      const result = await page.evaluate(playOnce, args);
      console.log(JSON.stringify({ run, ...result }));
      const ok = !result.error && result.framesDecoded >= args.minFrames &&
        (!args.audio || result.audioSamples > 0) && result.deleteStatus === 200;
      if (!ok) failed = true;
      if (result.firstFrameMs !== null && result.firstFrameMs !== undefined) firstFrames.push(result.firstFrameMs);
    }
    if (args.screenshot) await page.screenshot({ path: args.screenshot });
  } finally {
    // playwright launched it with a fresh temporary profile, removed on close.
    await browser.close();
  }
  firstFrames.sort((a, b) => a - b);
  const median = firstFrames.length ? firstFrames[Math.floor((firstFrames.length - 1) / 2)] : null;
  console.log(JSON.stringify({ summary: true, runs: args.runs, firstFrameMs: firstFrames, medianFirstFrameMs: median, failed }));
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
