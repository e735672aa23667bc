// What every browser test shares: Debian's Chromium, headless, with fake camera and
// microphone, and the loopback check on the gateway URL.

import { chromium } from 'playwright-core';

/** Launches Chromium as the tests need it (playwright gives it a fresh temporary profile). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      // Without the background-networking flags Chromium tries to reach Google's hosts.
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Host candidates as IPs, not .local names the gateway would have to resolve.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
  });
}

/** Throws unless `gateway` is on this machine: tests never send traffic elsewhere. */
export function requireLoopback(gateway) {
  const host = new URL(gateway).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
    throw new Error(`refusing to test a non-loopback gateway (${host})`);
  }
}
