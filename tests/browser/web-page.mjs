// The gateway's own page at /: one headless Chromium page publishes its fake camera with the
// Publish button; a second page finds the stream in its Streams list and plays it with the
// list's Play button. Passes when the player's video has a size and its currentTime
// advances; saves a screenshot.
//
//   node web-page.mjs --gateway http://127.0.0.1:8935 [--screenshot out.png]

import { launchChromium, requireLoopback } from './chromium.mjs';

const args = { stream: 'page' };
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--gateway') args.gateway = process.argv[++i];
  else if (process.argv[i] === '--screenshot') args.screenshot = process.argv[++i];
  else throw new Error(`unknown argument ${process.argv[i]}`);
}
if (!args.gateway) throw new Error('--gateway is required');
requireLoopback(args.gateway);

const browser = await launchChromium();
let ok = false;
try {
  const publisher = await browser.newPage();
  await publisher.goto(`${args.gateway}/?stream=${args.stream}`);
  await publisher.click('#pub-start');
  await publisher.waitForFunction(() => document.getElementById('pub-state').textContent === 'connected',
    null, { timeout: 20000 });

  // No ?stream= here: only the list's Play button can point the player at the stream.
  const player = await browser.newPage();
  await player.goto(`${args.gateway}/`);
  const row = player.locator(`#streams-list tr[data-stream="${args.stream}"]`);
  await row.locator('td', { hasText: /^live$/ }).waitFor({ timeout: 20000 });
  await row.getByRole('button', { name: 'Play' }).click();
  const key = await player.locator('#play-key').inputValue();
  if (key !== args.stream) throw new Error(`the Play button filled in ${key}`);
  await player.waitForFunction(() => {
    const v = document.getElementById('play-video');
    return v.videoWidth > 0 && v.currentTime > 1;
  }, null, { timeout: 20000 });
  const seen = await player.evaluate(async () => {
    const v = document.getElementById('play-video');
    const before = v.currentTime;
    await new Promise((r) => setTimeout(r, 1000));
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      advanced: v.currentTime - before,
      stats: document.getElementById('play-stats').textContent,
      state: document.getElementById('play-state').textContent,
    };
  });
  console.log(JSON.stringify(seen));
  if (args.screenshot) await player.screenshot({ path: args.screenshot });
  // The pipeline's latency comes from the gateway's server_metrics (passthrough: 0 ms).
  ok = seen.width > 0 && seen.advanced > 0.5 && seen.state === 'connected' &&
    /pipeline [0-9.]+ ms/.test(seen.stats);
  await player.click('#play-stop');
  await publisher.click('#pub-stop');
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
