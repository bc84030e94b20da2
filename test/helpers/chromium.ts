// Debian's Chromium (apt package `chromium`, installed by scripts/setup.sh), headless, driven by
// puppeteer-core: no browser download. A fresh profile per launch and no background traffic.
import puppeteer, { type Browser } from 'puppeteer-core';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(profile: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM, headless: false, // '--headless' is in the flags below
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--window-size=1280,900'],
  });
}
