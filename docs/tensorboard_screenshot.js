// How docs/tensorboard_graph.png was taken: TensorBoard's graph view of the tutorial's Net,
// from a real TensorBoard server, in headless Chromium driven by playwright-core.
//
//   python examples/tensorboard_graph.py /tmp/tb-net
//   tensorboard --logdir /tmp/tb-net --host 127.0.0.1 --port 6123 &
//   (cd /tmp/shot && npm install playwright-core)     # drives /usr/bin/chromium
//   NODE_PATH=/tmp/shot/node_modules node docs/tensorboard_screenshot.js docs/tensorboard_graph.png
//
// It searches for the matmul node (which opens the Net group and the node's card, with its
// closed form and local derivative), clears the search and shoots the graph area.
const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1.5 });
  const page = await context.newPage();
  await page.goto('http://127.0.0.1:6123/#graphs', { waitUntil: 'networkidle' });
  await page.waitForTimeout(4000);
  const search = page.locator('tf-graph-node-search input').first();
  await search.fill('MmBackward0');  // selecting a search result expands Net and opens the node's card
  await page.waitForTimeout(1500);
  await page.locator('text=Net/MmBackward0').first().click();
  await page.waitForTimeout(3000);
  await search.fill('');
  await page.waitForTimeout(1500);
  await page.screenshot({ path: process.argv[2], clip: { x: 350, y: 64, width: 930, height: 600 } });
  await browser.close();
})();
