'use strict';
// A browser's worker: `node browser_driver.js NAME EXECUTABLE PUPPETEER_CORE REQUEST.json`,
// NAME being the runtime's (chromium, firefox).
// Serves the request's folder and the JS worker's files from 127.0.0.1 with COOP/COEP headers
// (so the page is cross-origin isolated: fine timers, SharedArrayBuffer), starts the browser
// headless through puppeteer-core (Chromium over CDP, Firefox over WebDriver BiDi), and waits
// until the page's Web Worker (browser_host.js) has answered the request through
// js_protocol.js: every file it reads or writes goes through this server, and only within the
// request's folder. The harness kills this process group on a timeout.

const http = require('http');
const fs = require('fs');
const path = require('path');

const [BROWSER, EXECUTABLE, PUPPETEER, REQUEST] = process.argv.slice(2);
const WORKDIR = path.dirname(path.resolve(REQUEST));
const SCRIPTS = new Set(['browser_host.js', 'js_protocol.js', 'js_measure.js', 'js_plan.js',
  'js_hostfuncs.js', 'js_wasmbin.js']);
const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};
const PAGE = `<!doctype html><meta charset="utf-8"><title>membench worker</title><script>
const w = new Worker('/js/browser_host.js');
const done = (body) => fetch('/done', { method: 'POST', body: JSON.stringify(body) });
w.onmessage = (e) => done(e.data);
w.onerror = (e) => done({ error: String(e.message || e) });
w.postMessage(${'${START}'});
</script>`;

function inside(file) {
  const p = path.resolve(file);
  return p === WORKDIR || p.startsWith(WORKDIR + path.sep);
}

function body(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function writeAtomic(file, data) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

async function main() {
  const puppeteer = require(PUPPETEER);
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  let start = '{}';
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const send = (code, data, type = 'application/octet-stream') => {
      res.writeHead(code, { ...HEADERS, 'Content-Type': type });
      res.end(data);
    };
    try {
      if (url.pathname === '/') return send(200, PAGE.replace('${START}', start), 'text/html');
      if (url.pathname.startsWith('/js/')) {
        const name = url.pathname.slice(4);
        if (!SCRIPTS.has(name)) return send(404, 'no such script');
        return send(200, fs.readFileSync(path.join(__dirname, name)), 'text/javascript');
      }
      if (url.pathname === '/fs') {
        const file = url.searchParams.get('path');
        if (!file || !inside(file)) return send(403, `outside the request's folder: ${file}`);
        if (req.method === 'POST') {
          writeAtomic(file, await body(req));
          return send(200, 'ok');
        }
        return send(200, fs.readFileSync(file));
      }
      if (url.pathname === '/done' && req.method === 'POST') {
        finish(JSON.parse((await body(req)).toString('utf8')));
        return send(200, 'ok');
      }
      return send(404, 'not found');
    } catch (e) {
      return send(500, String(e && e.message));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const options = { executablePath: EXECUTABLE, headless: true };
  options.browser = BROWSER === 'firefox' ? 'firefox' : 'chrome';
  // Chromium as root needs --no-sandbox; Firefox runs over WebDriver BiDi, puppeteer's default
  if (options.browser === 'chrome') {
    options.args = ['--no-sandbox', '--disable-gpu', '--disable-background-timer-throttling'];
  }
  const browser = await puppeteer.launch(options);
  try {
    const version = await browser.version();
    start = JSON.stringify({ request: path.resolve(REQUEST), browser: BROWSER, version });
    const page = await browser.newPage();
    page.on('pageerror', (e) => finish({ error: `page error: ${e.message}` }));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    const outcome = await finished;
    if (outcome && outcome.error) {
      // the worker could not even answer: say so where the harness looks for an answer
      writeAtomic(path.join(WORKDIR, 'response.json'), JSON.stringify({ status: 'crashed',
        message: `${BROWSER}: ${outcome.error}`, protocol: 1 }));
    }
  } finally {
    await browser.close();
    server.close();
  }
}

main().then(() => { process.exitCode = 0; }, (e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 1;
});
