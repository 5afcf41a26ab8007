// The playground page in a real browser: Debian's chromium (headless) driven
// by playwright-core, against real `moeserve serve` instances on the bundled
// model. Run by test_playground.sh (MOESERVE_BIN, CHROMIUM, UPDATE_SCREENSHOTS).
//
// Servers: `plain` (no key), `quant` (the same checkpoint quantized to q4_0
// at load time: a second, different model), `keyed` (--api-key). The compare
// view needs two models behind one origin; moeserve serves one model per
// process today, so a loopback proxy (lib/model_proxy.mjs) routes by "model"
// to `plain` and `quant`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

import { startServer, postJson, rawRequest, sleep, BIN } from './lib/server.mjs';
import { startModelProxy } from './lib/model_proxy.mjs';

const MODEL = 'tiny-mixtral-kjv';
const QMODEL = 'tiny-mixtral-kjv-q4_0';
const UPDATE = process.env.UPDATE_SCREENSHOTS === '1';
const IMAGES = new URL('../../docs/images/', import.meta.url).pathname;
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let plain, quant, keyed, proxy, context, profile;
const consoleErrors = [];

before(async () => {
  [plain, quant, keyed] = await Promise.all([
    startServer(['--max-batch', '8']),
    startServer(['--max-batch', '8', '--quant', 'q4_0', '--served-model-name', QMODEL]),
    startServer(['--max-batch', '8', '--api-key', 'sekrit']),
  ]);
  proxy = await startModelProxy([{ model: MODEL, port: plain.port }, { model: QMODEL, port: quant.port }]);
  profile = mkdtempSync(join(tmpdir(), 'moeserve-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1440, height: 900 },
  });
  context.on('page', watch);
  for (const p of context.pages()) watch(p);
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await proxy?.close();
  const results = await Promise.all([plain?.stop(), quant?.stop(), keyed?.stop()]);
  for (const r of results) if (r) assert.deepEqual(r, { code: 0, signal: null }, 'clean exit on SIGTERM');
});

function watch(page) {
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} [${m.location().url}]`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
}

// Console errors a test expects (a 401 it provokes) are taken out by the test.
// The page's usage probe (GET /v1/usage/me) answering 404 on a server without
// governance is expected: the browser logs it as a failed load.
function takeConsoleErrors() {
  return consoleErrors.splice(0).filter((e) => !/status of 404 .*\[http:\/\/127\.0\.0\.1:\d+\/v1\/usage\/me\]$/.test(e));
}

async function openPage(base, viewport = { width: 1440, height: 900 }) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  await page.goto(`${base}/`);
  // Each test starts with no saved conversation (the profile is shared).
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  return page;
}

async function waitModels(page, n = 1) {
  await page.waitForFunction((n) => document.querySelectorAll('#p-model option').length >= n, n, { timeout: 10_000 });
}

async function setParams(page, p) {
  for (const [k, v] of Object.entries(p)) await page.fill(`#p-${k}`, String(v));
}

// Sends a chat message with the keyboard and waits for the reply to finish.
async function sendAndWait(page, text, timeout = 60_000) {
  await page.focus('#prompt');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#messages li[data-role=assistant][data-done="1"]:last-child', { timeout });
  return page.evaluate(() => {
    const convs = JSON.parse(localStorage.getItem('moeserve.conversations'));
    const cur = convs.find((c) => c.id === localStorage.getItem('moeserve.current'));
    return cur.messages;
  });
}

async function apiGreedy(port, messages, max_tokens, model = MODEL, headers = {}) {
  const r = await postJson(port, '/v1/chat/completions', { model, messages, temperature: 0, max_tokens }, headers);
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body).choices[0].message.content;
}

async function metricValue(port, name) {
  const r = await rawRequest(port, { method: 'GET', path: '/metrics' });
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : NaN;
}

function hasPython() {
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function shot(page, name) {
  if (!UPDATE) return;
  mkdirSync(IMAGES, { recursive: true });
  await page.screenshot({ path: join(IMAGES, name) });
}

// The routing the page draws, checked against the model through the API and
// against the server's global expert counters.
async function expertCounters(port) {
  const r = await rawRequest(port, { method: 'GET', path: '/metrics' });
  const c = [];
  for (const m of r.body.matchAll(/^moeserve_expert_tokens_total\{layer="(\d+)",expert="(\d+)"\} (\d+)$/gm)) {
    (c[Number(m[1])] ??= [])[Number(m[2])] = Number(m[3]);
  }
  return c;
}

const sum = (t) => t.flat().reduce((a, b) => a + b, 0);

test('return_expert_load through the API adds up, streamed or not', async () => {
  const before = await expertCounters(plain.port);
  const r = await postJson(plain.port, '/v1/completions', {
    prompt: 'And the LORD spake unto Moses', max_tokens: 20, temperature: 0, ignore_eos: true, return_expert_load: true,
  });
  assert.equal(r.status, 200, r.body);
  const j = JSON.parse(r.body);
  const el = j.expert_load;
  assert.deepEqual([el.layers, el.experts, el.top_k], [4, 8, 2]);
  assert.equal(el.prompt_tokens, j.usage.prompt_tokens);
  assert.equal(el.completion_tokens, j.usage.completion_tokens - 1);
  assert.equal(sum(el.prompt), 4 * 2 * el.prompt_tokens);
  assert.equal(sum(el.completion), 4 * 2 * el.completion_tokens);
  assert.equal(el.completion_routes.length, el.completion_tokens);
  const fromRoutes = Array.from({ length: 4 }, () => Array(8).fill(0));
  for (const tok of el.completion_routes)
    tok.forEach((ks, l) => {
      assert.equal(new Set(ks).size, 2, 'two distinct experts');
      for (const e of ks) fromRoutes[l][e]++;
    });
  assert.deepEqual(fromRoutes, el.completion);
  // Alone on the server, the request's counts are exactly what the server-wide counters moved by.
  const after = await expertCounters(plain.port);
  const delta = after.map((row, l) => row.map((v, e) => v - (before[l]?.[e] ?? 0)));
  const both = el.prompt.map((row, l) => row.map((v, e) => v + el.completion[l][e]));
  assert.deepEqual(delta, both);

  // Streamed, without include_usage: a last chunk of its own carries it, the same.
  const s = await postJson(plain.port, '/v1/completions', {
    prompt: 'And the LORD spake unto Moses', max_tokens: 20, temperature: 0, ignore_eos: true, return_expert_load: true, stream: true,
  });
  const events = s.body.split('\n\n').filter((e) => e.startsWith('data: ') && e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)));
  const last = events[events.length - 1];
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.expert_load, el);
  // Not asked: nothing new in the response.
  const plainReply = await postJson(plain.port, '/v1/completions', { prompt: 'And', max_tokens: 2 });
  assert.equal(JSON.parse(plainReply.body).expert_load, undefined);
});

test('the page loads fast, light and clean, with strict headers', async () => {
  const page = await openPage(plain.base);
  await waitModels(page);
  assert.equal(await page.inputValue('#p-model'), MODEL);
  const nav = await page.evaluate(() => {
    const e = performance.getEntriesByType('navigation')[0];
    return { load: e.loadEventEnd - e.startTime, dcl: e.domContentLoadedEventEnd - e.startTime };
  });
  let raw = 0;
  let gz = 0;
  for (const path of ['/', '/playground/app.css', '/playground/app.js', '/playground/markdown.js', '/playground/snippets.js', '/playground/experts.js']) {
    const r = await rawRequest(plain.port, { method: 'GET', path });
    assert.equal(r.status, 200, path);
    raw += Buffer.byteLength(r.body);
    gz += gzipSync(Buffer.from(r.body)).length;
    assert.match(r.headers['content-security-policy'], /default-src 'self'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.ok(r.headers.etag);
  }
  console.log(`page weight: ${raw} bytes, ${gz} bytes gzip-compressed; load ${nav.load.toFixed(0)} ms ` +
    `(DOMContentLoaded ${nav.dcl.toFixed(0)} ms) on loopback`);
  assert.ok(await page.isHidden('#usage'), 'no /v1/usage/me on this server: no usage panel');
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('a greedy message streams the API reply; heat map adds up; curl snippet agrees', async () => {
  const page = await openPage(plain.base);
  await waitModels(page);
  await setParams(page, { temperature: 0, max_tokens: 40 });
  await page.fill('#p-system', '');
  // Shift+Enter is a newline, not a send.
  await page.focus('#prompt');
  await page.keyboard.type('In the beginning');
  await page.keyboard.press('Shift+Enter');
  assert.equal(await page.inputValue('#prompt'), 'In the beginning\n');
  assert.equal(await page.locator('#messages li').count(), 0);
  await page.fill('#prompt', '');
  const msgs = await sendAndWait(page, 'In the beginning God created');
  assert.equal(msgs.length, 2);
  const reply = msgs[1].content;
  const api = await apiGreedy(plain.port, [{ role: 'user', content: 'In the beginning God created' }], 40);
  assert.equal(reply, api, 'the page streamed the same text the API gives');
  assert.ok(reply.length > 0);
  const stats = await page.textContent('#messages li[data-role=assistant] .stat');
  assert.match(stats, /TTFT \d+ ms/);
  assert.match(stats, /tok\/s/);
  assert.match(stats, /prompt \d+ tokens · completion 40 tokens/);

  // Experts at work: L x E table; the total is layers x top_k x tokens.
  await page.waitForSelector('#experts:not([hidden])');
  for (const part of ['completion', 'prompt', 'both']) {
    await page.selectOption('#experts-part', part);
    const hm = await page.evaluate(() => {
      const h = document.getElementById('heatmap');
      const cells = [...h.querySelectorAll('.hcell')].map((c) => Number(c.dataset.count));
      return { total: Number(h.dataset.total), tokens: Number(h.dataset.tokens), cells };
    });
    assert.equal(hm.cells.length, 4 * 8, 'bundled model: 4 layers x 8 experts');
    assert.equal(hm.cells.reduce((a, b) => a + b, 0), hm.total);
    assert.equal(hm.total, 4 * 2 * hm.tokens, `${part}: total = layers x top_k x tokens`);
    if (part === 'completion') assert.equal(hm.tokens, 39, 'every generated token but the last ran through the model');
  }
  // Per token: hovering a token shows its experts in every layer.
  await page.selectOption('#experts-part', 'completion');
  assert.equal(await page.locator('#token-strip .tok').count(), 39);
  await page.hover('#token-strip .tok >> nth=3');
  assert.match(await page.textContent('#token-routes'), /L0: e\d e\d · L1: e\d e\d · L2: e\d e\d · L3: e\d e\d/);
  await shot(page, 'playground-experts.png');

  // The curl snippet, run as shown, returns the same text.
  await page.click('#show-code');
  const snippet = await page.textContent('#code-text');
  assert.match(snippet, /^curl /);
  const out = execFileSync('bash', ['-c', snippet], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MOESERVE_API_KEY: '' } });
  assert.equal(JSON.parse(out).choices[0].message.content, reply);
  // The Python and JavaScript snippets: the same request, and valid code.
  await page.click('#code-python');
  const py = await page.textContent('#code-text');
  assert.match(py, /from openai import OpenAI/);
  assert.match(py, /max_tokens=40,/);
  assert.match(py, /"content": "In the beginning God created"/);
  if (hasPython()) execFileSync('python3', ['-c', 'import ast, sys; ast.parse(sys.stdin.read())'], { input: py, timeout: 30_000 });
  else console.log('python3 not found: the Python snippet is not parsed');
  await page.click('#code-js');
  const js = await page.textContent('#code-text');
  assert.match(js, /import OpenAI from 'openai'/);
  const jsFile = join(profile, 'snippet.mjs');
  writeFileSync(jsFile, js);
  execFileSync(process.execPath, ['--check', jsFile], { timeout: 30_000 });
  await page.click('#code-close');

  // Regenerate (greedy: the same reply), edit-and-resend, reload keeps it, clear.
  await page.click('#regen');
  await page.waitForSelector('#messages li[data-role=assistant][data-done="1"]');
  let stored = await page.evaluate(() => JSON.parse(localStorage.getItem('moeserve.conversations'))[0].messages);
  assert.equal(stored.length, 2);
  assert.equal(stored[1].content, reply);
  await page.click('#messages li[data-role=user] button:has-text("Edit")');
  await page.fill('#messages li[data-role=user] textarea', 'And the earth was');
  await page.click('button:has-text("Save & send")');
  await page.waitForSelector('#messages li[data-role=assistant][data-done="1"]');
  stored = await page.evaluate(() => JSON.parse(localStorage.getItem('moeserve.conversations'))[0].messages);
  assert.equal(stored.length, 2);
  assert.equal(stored[0].content, 'And the earth was');
  assert.equal(stored[1].content, await apiGreedy(plain.port, [{ role: 'user', content: 'And the earth was' }], 40));
  await page.reload();
  await waitModels(page);
  assert.equal(await page.locator('#messages li').count(), 2, 'the conversation survives a reload');
  // A second turn with the experts view off (the panel goes away with it).
  await page.uncheck('#p-experts');
  const turn2 = await sendAndWait(page, 'And God saw the light');
  assert.equal(turn2.length, 4);
  assert.ok(await page.isHidden('#experts'));
  assert.equal(turn2[3].content, await apiGreedy(plain.port, turn2.slice(0, 3).map(({ role, content }) => ({ role, content })), 40));
  await shot(page, 'playground-chat.png');
  await page.check('#p-experts');
  await page.click('#clear-conv');
  assert.equal(await page.locator('#messages li').count(), 0);
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('Stop (Esc) halts the reply and the server frees the request', async () => {
  const page = await openPage(plain.base);
  await waitModels(page);
  await setParams(page, { temperature: 0, max_tokens: 30000 });
  await page.focus('#prompt');
  await page.keyboard.type('And God said');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const c = document.querySelector('#messages li[data-role=assistant] .content');
    return c && c.textContent.length > 20;
  }, null, { timeout: 30_000 });
  assert.equal(await metricValue(plain.port, 'moeserve_requests_running'), 1);
  const gen0 = await metricValue(plain.port, 'moeserve_generation_tokens_total');
  await page.keyboard.press('Escape');
  const t0 = Date.now();
  await page.waitForSelector('#messages li[data-role=assistant][data-done="1"]', { timeout: 5_000 });
  // The server: no running request, and generation stopped.
  let running = NaN;
  while (Date.now() - t0 < 5_000) {
    running = await metricValue(plain.port, 'moeserve_requests_running');
    if (running === 0) break;
    await sleep(20);
  }
  assert.equal(running, 0, 'metrics show no running request');
  const freedMs = Date.now() - t0;
  const genA = await metricValue(plain.port, 'moeserve_generation_tokens_total');
  await sleep(300);
  const genB = await metricValue(plain.port, 'moeserve_generation_tokens_total');
  assert.equal(genB, genA, 'no token is generated after the request is freed');
  assert.equal(await metricValue(plain.port, 'moeserve_kv_cache_blocks_used'), 0, 'its KV blocks are freed');
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('moeserve.conversations'))[0].messages);
  const shown = stored[stored.length - 1];
  assert.match(shown.stats, /stopped/);
  const text = await page.textContent('#messages li[data-role=assistant] .content');
  await sleep(200);
  assert.equal(await page.textContent('#messages li[data-role=assistant] .content'), text, 'the page shows no more text');
  assert.match(plain.log, /client disconnected/);
  console.log(`stop: request freed ${freedMs} ms after Esc; ${genA - gen0} tokens generated meanwhile (server-wide)`);
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('a reply containing <script> is shown as text', async () => {
  const page = await openPage(plain.base);
  await waitModels(page);
  const evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> **bold** [x](javascript:alert(1))';
  // A crafted stream stands in for a model that writes markup.
  await page.route('**/v1/chat/completions', (route) => {
    const chunk = (o) => `data: ${JSON.stringify(o)}\n\n`;
    const base = { id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: MODEL };
    const body = chunk({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }) +
      chunk({ ...base, choices: [{ index: 0, delta: { content: evil.slice(0, 20) }, finish_reason: null }] }) +
      chunk({ ...base, choices: [{ index: 0, delta: { content: evil.slice(20) }, finish_reason: null }] }) +
      chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) + 'data: [DONE]\n\n';
    route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
  });
  await sendAndWait(page, 'say something nasty');
  const r = await page.evaluate(() => {
    const c = document.querySelector('#messages li[data-role=assistant]:last-child .content');
    return {
      text: c.textContent,
      elements: c.querySelectorAll('script, img, iframe, [onerror]').length,
      links: [...c.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      bold: c.querySelectorAll('strong').length,
      pwned: window.__pwned,
    };
  });
  assert.ok(r.text.includes('<script>window.__pwned = 1</script>'), r.text);
  assert.ok(r.text.includes('<img src=x'), r.text);
  assert.equal(r.elements, 0);
  assert.deepEqual(r.links, [], 'no javascript: link');
  assert.equal(r.bold, 1, 'Markdown still renders');
  assert.equal(r.pwned, undefined);
  // The renderer itself, on crafted text.
  const html = await page.evaluate(() => window.moeservePlayground.renderMarkdown('```\n</code></pre><script>x()</script>\n```\n"q" & \'a\''));
  assert.ok(!/<script/i.test(html), html);
  assert.ok(html.includes('&lt;script&gt;'), html);
  await page.unroute('**/v1/chat/completions');
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('side by side: two models answer the same prompt', async () => {
  const page = await openPage(proxy.base);
  await waitModels(page, 2);
  await setParams(page, { max_tokens: 32 });
  await page.click('#tab-compare');
  await page.selectOption('#a-model', MODEL);
  await page.selectOption('#b-model', QMODEL);
  await page.fill('#a-temperature', '0');
  await page.fill('#b-temperature', '0');
  await page.focus('#cmp-prompt');
  await page.keyboard.type('And God said, Let there be');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#a-out[data-done="1"]', { timeout: 60_000 });
  await page.waitForSelector('#b-out[data-done="1"]', { timeout: 60_000 });
  const a = await page.getAttribute('#a-out', 'data-text');
  const b = await page.getAttribute('#b-out', 'data-text');
  const msgs = [{ role: 'user', content: 'And God said, Let there be' }];
  assert.equal(a, await apiGreedy(plain.port, msgs, 32, MODEL));
  assert.equal(b, await apiGreedy(quant.port, msgs, 32, QMODEL));
  assert.notEqual(a, b, 'two different models give two different replies');
  await shot(page, 'playground-compare.png');
  assert.match(await page.textContent('#a-stats'), new RegExp(`${MODEL} · TTFT`));
  assert.match(await page.textContent('#b-stats'), new RegExp(`${QMODEL} · TTFT`));
  console.log(`compare: A (${MODEL}) ${JSON.stringify(a.slice(0, 40))}... | B (${QMODEL}) ${JSON.stringify(b.slice(0, 40))}...`);
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('with a key required: a wrong key shows a clear error, the right one works', async () => {
  const page = await openPage(keyed.base);
  await page.waitForSelector('#alert:not([hidden])');
  assert.match(await page.textContent('#alert'), /API key was refused \(401\)/);
  await page.fill('#api-key', 'wrong');
  await page.press('#api-key', 'Enter');
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForFunction(() => /Incorrect API key/.test(document.getElementById('alert').textContent));
  await page.fill('#p-max_tokens', '8');
  await page.focus('#prompt');
  await page.keyboard.type('Hello');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#messages li.error');
  assert.match(await page.textContent('#messages li.error'), /API key was refused \(401\): Incorrect API key provided/);
  await page.fill('#api-key', 'sekrit');
  await page.dispatchEvent('#api-key', 'change');
  await waitModels(page);
  await page.waitForSelector('#alert[hidden]', { state: 'attached' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('moeserve.apiKey')), 'sekrit');
  assert.equal(await page.evaluate(() => localStorage.getItem('moeserve.apiKey')), null, 'the key is not kept beyond the session');
  await page.click('#regen');
  await page.waitForSelector('#messages li[data-role=assistant][data-done="1"]');
  assert.equal(await page.locator('#messages li.error').count(), 0);
  await page.close();
  // The 401s the test provoked are logged by the browser as failed loads.
  for (const e of takeConsoleErrors()) assert.match(e, /401/);
});

test('usage panel: shown from GET /v1/usage/me, hidden when it answers 404', async () => {
  // moeserve's governance (a separate component) answers /v1/usage/me; this
  // server has none, so its answer is given here in the documented shape.
  const page = await openPage(plain.base);
  await waitModels(page);
  assert.ok(await page.isHidden('#usage'), 'no key: no usage panel');
  let calls = 0;
  await page.route('**/v1/usage/me', (route) => {
    calls++;
    assert.equal(route.request().headers().authorization, 'Bearer k-1');
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        key_id: 'k-1',
        today: { prompt_tokens: 120, completion_tokens: 80, cost: 0.0123, requests: 3 },
        month: { prompt_tokens: 4000, completion_tokens: 2500, cost: 0.5, requests: 41 },
      }),
    });
  });
  await page.fill('#api-key', 'k-1');
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForSelector('#usage:not([hidden])');
  const text = await page.textContent('#usage-body');
  assert.match(text, /Today3 requests120 prompt \+ 80 completion tokenscost 0\.0123/);
  assert.match(text, /This month41 requests4000 prompt \+ 2500 completion tokenscost 0\.5000/);
  assert.equal(calls, 1);
  // The real server (no governance) answers 404: the panel goes away.
  await page.unroute('**/v1/usage/me');
  await page.fill('#api-key', 'k-2');
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForSelector('#usage', { state: 'hidden' });
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('with governance on (--state): a wrong key shows a clear error; the usage panel shows the key\'s real usage', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moeserve-pg-gov-'));
  const state = join(dir, 'state.db');
  const created = JSON.parse(execFileSync(BIN, ['keys', 'create', '--state', state, '--name', 'playground', '--models', '*'],
    { encoding: 'utf8', timeout: 60_000 }).trim());
  const gov = await startServer(['--max-batch', '8', '--state', state]);
  try {
    const page = await openPage(gov.base);
    await page.fill('#api-key', 'ms-not-a-key');
    await page.dispatchEvent('#api-key', 'change');
    await page.waitForFunction(() => /Incorrect API key|refused \(401\)/.test(document.getElementById('alert').textContent));
    assert.match(await page.textContent('#alert'), /API key was refused \(401\)/);
    await page.fill('#api-key', created.key);
    await page.dispatchEvent('#api-key', 'change');
    await waitModels(page);
    await page.waitForSelector('#alert[hidden]', { state: 'attached' });
    await page.fill('#p-max_tokens', '6');
    await setParams(page, { temperature: 0 });
    await sendAndWait(page, 'And God said');
    // The usage row is written within a second of the reply; the panel reloads on a key change.
    const deadline = Date.now() + 10_000;
    let text = '';
    while (Date.now() < deadline) {
      await page.dispatchEvent('#api-key', 'change');
      await sleep(300);
      text = (await page.isHidden('#usage')) ? '' : await page.textContent('#usage-body');
      if (/Today1 requests?/.test(text)) break;
    }
    assert.match(text, /Today1 requests?/, `usage panel: ${text}`);
    assert.match(text, /This month1 requests?/);
    await page.close();
    for (const e of takeConsoleErrors()) assert.match(e, /401/);
  } finally {
    const r = await gov.stop();
    assert.deepEqual(r, { code: 0, signal: null });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('phone layout (390 px): no horizontal scrolling, settings behind a button', async () => {
  const page = await openPage(plain.base, { width: 390, height: 844 });
  await waitModels(page);
  assert.ok(await page.isHidden('#side'));
  await page.click('#toggle-side');
  assert.ok(await page.isVisible('#p-temperature'));
  await page.fill('#p-temperature', '0');
  await page.fill('#p-max_tokens', '24');
  await page.click('#toggle-side');
  await sendAndWait(page, 'Blessed are the meek');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px`);
  // Every control has a label.
  const unlabeled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !el.labels?.length && !el.getAttribute('aria-label'))
      .map((el) => el.id));
  assert.deepEqual(unlabeled, []);
  await shot(page, 'playground-phone.png');
  await page.close();
  assert.deepEqual(takeConsoleErrors(), []);
});

test('--no-playground turns the page off', async () => {
  const off = await startServer(['--no-playground']);
  try {
    assert.equal((await rawRequest(off.port, { method: 'GET', path: '/' })).status, 404);
    assert.equal((await rawRequest(off.port, { method: 'GET', path: '/v1/models' })).status, 200);
  } finally {
    assert.deepEqual(await off.stop(), { code: 0, signal: null });
  }
});
