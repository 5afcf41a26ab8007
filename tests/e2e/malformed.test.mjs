// Hostile and heavy clients against `moeserve serve`: malformed JSON and HTTP,
// wrong types, huge numbers, invalid UTF-8, oversized bodies, slow clients,
// clients that vanish mid-stream, a full queue, and 512 concurrent streams.
// Run by test_malformed.sh (MOESERVE_BIN = the binary). Loopback only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';

import { startServer, rawRequest, postJson, sleep } from './lib/server.mjs';

const MODEL = 'tiny-mixtral-kjv';
let server;

before(async () => {
  server = await startServer(['--header-timeout', '4', '--body-timeout', '4']);
});

after(async () => {
  if (server) assert.deepEqual(await server.stop(), { code: 0, signal: null }, 'clean exit on SIGTERM');
});

function assertOpenAIError(res, status, param) {
  assert.equal(res.status, status, `status for ${res.body}`);
  assert.match(res.headers['content-type'], /application\/json/);
  const j = JSON.parse(res.body);
  assert.equal(typeof j.error, 'object');
  assert.equal(typeof j.error.message, 'string');
  assert.ok(j.error.message.length > 0);
  assert.equal(typeof j.error.type, 'string');
  assert.ok('param' in j.error && 'code' in j.error);
  if (param !== undefined) assert.equal(j.error.param, param, `param for ${res.body}`);
  return j.error;
}

// Writes raw bytes on a fresh connection; resolves everything the server sends until it closes.
function rawExchange(port, bytes, { timeoutMs = 20_000, endAfterWrite = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no close from the server in time'));
    }, timeoutMs);
    sock.on('connect', () => {
      sock.write(bytes);
      if (endAfterWrite) sock.end();
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

function statusOf(raw) {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return m ? Number(m[1]) : null;
}

const chat = (extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, ...extra });

test('malformed and invalid JSON bodies get 400 with an OpenAI error body', async () => {
  const cases = [
    ['/v1/chat/completions', '{"model": "tiny-mixtral-kjv", "messages": [', undefined],
    ['/v1/chat/completions', '', undefined],
    ['/v1/chat/completions', 'not json at all', undefined],
    ['/v1/chat/completions', '[1, 2, 3]', undefined],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}', undefined],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999}', 'max_tokens'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: 'hello' })), 'messages'],
    ['/v1/chat/completions', JSON.stringify(chat({ max_tokens: '10' })), 'max_tokens'],
    ['/v1/chat/completions', JSON.stringify(chat({ max_tokens: -5 })), 'max_tokens'],
    ['/v1/chat/completions', JSON.stringify(chat({ max_tokens: 0 })), 'max_tokens'],
    ['/v1/chat/completions', JSON.stringify(chat({ temperature: 1e300 })), 'temperature'],
    ['/v1/chat/completions', JSON.stringify(chat({ temperature: 'hot' })), 'temperature'],
    ['/v1/chat/completions', JSON.stringify(chat({ n: 1e9 })), 'n'],
    ['/v1/chat/completions', JSON.stringify(chat({ top_p: -1 })), 'top_p'],
    ['/v1/chat/completions', JSON.stringify(chat({ seed: 'abc' })), 'seed'],
    ['/v1/chat/completions', JSON.stringify(chat({ stop: [1, 2] })), 'stop[0]'],
    ['/v1/chat/completions', JSON.stringify(chat({ logit_bias: { 99999999: 1 } })), 'logit_bias'],
    ['/v1/chat/completions', JSON.stringify(chat({ logprobs: 'yes' })), 'logprobs'],
    ['/v1/chat/completions', JSON.stringify(chat({ top_logprobs: 50, logprobs: true })), 'top_logprobs'],
    ['/v1/chat/completions', JSON.stringify(chat({ stream: 1 })), 'stream'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'wizard', content: 'x' }] })), 'messages[0].role'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'tool', content: 'x' }] })), 'messages[0].tool_call_id'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'robot', content: 'x' }] })), 'messages[0].role'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'assistant', content: 'x' }] })), 'messages'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'assistant', content: 'c' }, { role: 'user', content: 'd' }], max_tokens: 40000 })), 'max_tokens'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [] })), 'messages'],
    ['/v1/chat/completions', JSON.stringify(chat({ messages: [{ role: 'user' }] })), 'messages[0].content'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: [[]] }), 'prompt[0]'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: [-1, 5] }), 'prompt'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: [1, 32000] }), 'prompt'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: { text: 'x' } }), 'prompt'],
    ['/v1/completions', JSON.stringify({ model: MODEL }), 'prompt'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 32768 }), 'max_tokens'],
    ['/v1/completions', JSON.stringify({ model: MODEL, prompt: 'x', logprobs: true }), 'logprobs'],
    ['/tokenize', JSON.stringify({ prompt: 5 }), 'prompt'],
    ['/detokenize', JSON.stringify({ tokens: [1, 'a'] }), 'tokens[1]'],
    ['/detokenize', JSON.stringify({ tokens: [1, 1e12] }), 'tokens'],
    ['/v1/chat/completions', '{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}', undefined],
  ];
  for (const [path, body, param] of cases) {
    const res = await postJson(server.port, path, body);
    assertOpenAIError(res, 400, param);
  }
});

test('randomly mutated requests never get a 5xx and never take the server down', async () => {
  // Deterministic PRNG (mulberry32).
  let seed = 12345;
  const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const hostile = [null, -1, 0, 1.5, 1e308, -1e308, 2 ** 53, 'x', '', [], {}, true, false, [1, 'a'], { a: [] },
    'a'.repeat(5000), '\u0000', [[[]]], -0, 128];
  const chatBase = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0.5,
    top_p: 0.9, top_k: 5, min_p: 0.1, n: 1, stop: ['x'], seed: 3, presence_penalty: 0.1, frequency_penalty: 0.1,
    repetition_penalty: 1.1, logprobs: true, top_logprobs: 2, logit_bias: { 5: 1 }, stream: false, user: 'u' };
  const complBase = { model: MODEL, prompt: 'In the', max_tokens: 2, logprobs: 1, stop: 'x', n: 1, echo: false };
  const statuses = new Map();
  for (let i = 0; i < 300; i++) {
    let path, body;
    if (i % 3 === 0) {
      // Field-level: one or two fields of a chat request replaced by hostile values.
      const b = structuredClone(chatBase);
      for (let k = 0; k < 1 + (i % 2); k++) {
        const key = pick(Object.keys(b));
        b[key] = key === 'max_tokens' ? pick([-1, 0, 1e308, 'x', [], {}, true, 2 ** 53, 1.5]) : pick(hostile);
        if (key === 'n' && typeof b.n === 'number' && b.n > 4) b.n = 4;
      }
      if (rnd() < 0.3) b.messages = [{ role: pick(['user', 'system', 'assistant', 'tool', 5, null]), content: pick(hostile) }];
      if (b.stream === true && rnd() < 0.5) b.stream_options = pick([{ include_usage: true }, 'x', null]);
      path = '/v1/chat/completions';
      body = Buffer.from(JSON.stringify(b));
    } else {
      // Byte-level: a completions body with bytes flipped, inserted or cut (default max_tokens is 16).
      const buf = Buffer.from(JSON.stringify({ ...complBase, [pick(Object.keys(complBase))]: pick(hostile) }));
      const muts = 1 + Math.floor(rnd() * 4);
      let bytes = Array.from(buf);
      for (let m = 0; m < muts; m++) {
        const at = Math.floor(rnd() * bytes.length);
        const op = rnd();
        if (op < 0.4) bytes[at] = Math.floor(rnd() * 256);
        else if (op < 0.7) bytes.splice(at, 0, pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x2c, 0x3a, 0xff, 0xc3, 0x5c, 0x30]));
        else bytes = bytes.slice(0, at);
      }
      path = pick(['/v1/completions', '/tokenize', '/detokenize']);
      body = Buffer.from(bytes);
    }
    const res = await rawRequest(server.port, { method: 'POST', path, body, timeoutMs: 20_000,
      headers: { 'Content-Type': 'application/json' } }).catch((e) => ({ status: 'error:' + e.message }));
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    assert.ok(typeof res.status === 'number' && res.status < 500, `${path} ${body.toString('latin1').slice(0, 300)} -> ${res.status} ${res.body}`);
    if (res.status >= 400) assertOpenAIError(res, res.status);
  }
  console.log('mutated requests by status:', JSON.stringify([...statuses]));
  assert.equal((await rawRequest(server.port, { method: 'GET', path: '/health' })).status, 200);
  assert.ok(await engineIdle(30_000));
});

test('invalid UTF-8 in the body is a 400', async () => {
  const bodies = [
    Buffer.concat([Buffer.from('{"model":"tiny-mixtral-kjv","messages":[{"role":"user","content":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]),
    Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),      // overlong
    Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), // surrogate
    Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}')]),       // truncated
    Buffer.from('{"prompt":"\\ud800 lone surrogate escape"}'),
  ];
  for (const b of bodies) assertOpenAIError(await postJson(server.port, '/v1/completions', b), 400);
  for (const b of bodies.slice(0, 1)) assertOpenAIError(await postJson(server.port, '/v1/chat/completions', b), 400);
});

test('routes, methods and models: 404 and 405 with error bodies', async () => {
  assertOpenAIError(await rawRequest(server.port, { method: 'GET', path: '/nope' }), 404);
  assertOpenAIError(await rawRequest(server.port, { method: 'POST', path: '/v1/embeddings', body: '{}' }), 404);
  const r405 = await rawRequest(server.port, { method: 'GET', path: '/v1/chat/completions' });
  assertOpenAIError(r405, 405);
  assert.equal(r405.headers.allow, 'POST');
  assertOpenAIError(await rawRequest(server.port, { method: 'DELETE', path: '/v1/models' }), 405);
  assertOpenAIError(await rawRequest(server.port, { method: 'POST', path: '/health', body: '' }), 405);
  const e = assertOpenAIError(await postJson(server.port, '/v1/chat/completions', chat({ model: 'gpt-4' })), 404, 'model');
  assert.equal(e.code, 'model_not_found');
  assertOpenAIError(await rawRequest(server.port, { method: 'GET', path: '/v1/models/gpt-4' }), 404);
});

test('malformed HTTP is answered 400/431 and the connection closed', async () => {
  assert.equal(statusOf(await rawExchange(server.port, 'HELLO WORLD\r\n\r\n')), 400);
  assert.equal(statusOf(await rawExchange(server.port, 'POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n')), 400);
  const big = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(64 * 1024) + '\r\n\r\n';
  assert.equal(statusOf(await rawExchange(server.port, big)), 431);
  // A client that closes half-way through its headers or body is just dropped.
  await rawExchange(server.port, 'POST /v1/completions HTTP/1.1\r\nContent-Le', { endAfterWrite: true });
  await rawExchange(server.port, 'POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"pro', { endAfterWrite: true });
  assert.equal((await rawRequest(server.port, { method: 'GET', path: '/health' })).status, 200);
});

test('a 10 MB body gets 413 without being read in full', async () => {
  const tenMB = Buffer.alloc(10 * 1024 * 1024, 0x61);
  // Declared length: answered right after the headers, even though no body byte is sent.
  const raw = await rawExchange(server.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n', { timeoutMs: 10_000 });
  assert.equal(statusOf(raw), 413);
  assert.match(raw, /"error"/);
  // The whole body sent anyway: the client still reads the 413.
  assertOpenAIError(await rawRequest(server.port, { method: 'POST', path: '/v1/completions', body: tenMB,
    headers: { 'Content-Type': 'application/json', 'Content-Length': tenMB.length } }), 413);
  // Chunked, no declared length: cut off at the limit.
  const chunked = await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write(tenMB.subarray(i * 1048576, (i + 1) * 1048576));
    req.end();
  });
  assertOpenAIError(chunked, 413);
  // Expect: 100-continue: refused before the body is sent.
  const expect = await rawExchange(server.port, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n');
  assert.equal(statusOf(expect), 413);
  assert.equal((await rawRequest(server.port, { method: 'GET', path: '/health' })).status, 200);
});

test('slow clients (one byte per second) are timed out; others are served meanwhile', async () => {
  const dribble = (prefix, text) => new Promise((resolve) => {
    const sock = net.connect(server.port, '127.0.0.1');
    const started = Date.now();
    let i = 0;
    let timer = null;
    let got = '';
    sock.on('connect', () => {
      if (prefix) sock.write(prefix);
      timer = setInterval(() => {
        if (i < text.length && !sock.destroyed) sock.write(text[i++]);
      }, 1000);
    });
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearInterval(timer);
      resolve({ seconds: (Date.now() - started) / 1000, sent: i, got });
    });
    setTimeout(() => sock.destroy(), 30_000);  // bound
  });
  const request = JSON.stringify(chat());
  const slowHeader = dribble('', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${request.length}\r\n\r\n${request}`);
  const slowBody = dribble(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${request.length}\r\n\r\n`, request);
  // Meanwhile other clients get served.
  await sleep(500);
  const others = [];
  for (let i = 0; i < 6; i++) others.push(postJson(server.port, '/v1/chat/completions', chat({ temperature: 0 })));
  for (const r of await Promise.all(others)) assert.equal(r.status, 200);
  const [h, b] = await Promise.all([slowHeader, slowBody]);
  // Cut by the server (--header-timeout 4 / --body-timeout 4), not by our 30 s bound.
  assert.ok(h.seconds < 15, `slow header client lasted ${h.seconds} s`);
  assert.ok(b.seconds < 15, `slow body client lasted ${b.seconds} s`);
  assert.ok(h.sent < 20 && b.sent < 20);
  assert.equal((await rawRequest(server.port, { method: 'GET', path: '/health' })).status, 200);
  const m = await rawRequest(server.port, { method: 'GET', path: '/metrics' });
  assert.ok(Number(/^moeserve_http_timeouts_total (\S+)$/m.exec(m.body)[1]) >= 2);
});

async function engineIdle(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = (await rawRequest(server.port, { method: 'GET', path: '/metrics' })).body;
    const running = Number(/^moeserve_requests_running (\S+)$/m.exec(m)[1]);
    const waiting = Number(/^moeserve_requests_waiting (\S+)$/m.exec(m)[1]);
    if (running === 0 && waiting === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

test('a client that disconnects mid-stream has its request cancelled', async () => {
  for (const stream of [true, false]) {
    await new Promise((resolve, reject) => {
      const body = JSON.stringify(chat({ max_tokens: 20000, ignore_eos: true, stream }));
      const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/chat/completions', agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        let events = 0;
        res.on('data', (d) => {
          events += (d.toString().match(/data: /g) || []).length;
          if (events >= 3) req.destroy();
        });
        res.on('error', () => {});
        res.on('close', resolve);
      });
      req.on('error', () => {});
      req.write(body);
      req.end();
      if (!stream) setTimeout(() => { req.destroy(); resolve(); }, 500);
    });
    assert.ok(await engineIdle(15_000), `engine still busy after the client left (stream=${stream})`);
  }
  assert.match(server.log, /status=499/);
});

test('512 concurrent streaming connections, bounded thread count', async () => {
  const N = 512;
  let open = 0;
  let peakOpen = 0;
  let peakThreads = server.threads();
  const sampler = setInterval(() => {
    try { peakThreads = Math.max(peakThreads, server.threads()); } catch { /* exiting */ }
  }, 100);
  const one = (i) => new Promise((resolve) => {
    const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `Verse ${i}` }], max_tokens: 8,
      temperature: 0.7, seed: i, stream: true });
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/v1/chat/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, timeout: 300_000 }, (res) => {
      open++;
      peakOpen = Math.max(peakOpen, open);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        open--;
        const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
        const done = events.at(-1) === '[DONE]';
        const finish = events.slice(0, -1).map((e) => JSON.parse(e)).some((c) => c.choices?.[0]?.finish_reason);
        resolve({ status: res.statusCode, ok: res.statusCode === 200 && done && finish });
      });
      res.on('error', () => { open--; resolve({ status: -1, ok: false }); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: -2, ok: false, error: String(e) }));
    req.write(body);
    req.end();
  });
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: N }, (_, i) => one(i)));
  clearInterval(sampler);
  const failed = results.filter((r) => !r.ok);
  console.log(`512 streams: ${((Date.now() - t0) / 1000).toFixed(1)} s, peak open ${peakOpen}, peak threads ${peakThreads}`);
  assert.equal(failed.length, 0, `failures: ${JSON.stringify(failed.slice(0, 5))}`);
  assert.ok(peakOpen > 64, `only ${peakOpen} streams were open at once`);
  assert.ok(peakThreads <= 32, `${peakThreads} threads for ${N} connections`);
  assert.equal((await rawRequest(server.port, { method: 'GET', path: '/health' })).status, 200);
});

test('a full queue gets 429 with Retry-After', async () => {
  const small = await startServer(['--max-batch', '1', '--max-queue', '1']);
  try {
    const jobs = [];
    for (let i = 0; i < 12; i++)
      jobs.push(postJson(small.port, '/v1/completions', { model: MODEL, prompt: 'In the beginning', max_tokens: 256, ignore_eos: true }));  // (24 tokens took ~5 ms: three of 12 might not overlap)
    const res = await Promise.all(jobs);
    const statuses = res.map((r) => r.status);
    assert.ok(statuses.every((s) => s === 200 || s === 429), JSON.stringify(statuses));
    assert.ok(statuses.includes(200));
    const busy = res.find((r) => r.status === 429);
    assert.ok(busy, JSON.stringify(statuses));
    assert.ok(Number(busy.headers['retry-after']) >= 1);
    assert.equal(assertOpenAIError(busy, 429).type, 'rate_limit_error');
  } finally {
    assert.deepEqual(await small.stop(), { code: 0, signal: null });
  }
});

test('API key: 401 without or with a wrong key, health and metrics stay open', async () => {
  const keyed = await startServer(['--api-key', 'k1']);
  try {
    assertOpenAIError(await postJson(keyed.port, '/v1/chat/completions', chat()), 401);
    assertOpenAIError(await postJson(keyed.port, '/v1/chat/completions', chat(), { Authorization: 'Bearer k2' }), 401);
    assertOpenAIError(await postJson(keyed.port, '/v1/chat/completions', chat(), { Authorization: 'k1' }), 401);
    assertOpenAIError(await rawRequest(keyed.port, { method: 'GET', path: '/v1/models' }), 401);
    assertOpenAIError(await postJson(keyed.port, '/tokenize', { prompt: 'x' }), 401);
    assert.equal((await postJson(keyed.port, '/v1/chat/completions', chat(), { Authorization: 'Bearer k1' })).status, 200);
    assert.equal((await rawRequest(keyed.port, { method: 'GET', path: '/health' })).status, 200);
    assert.equal((await rawRequest(keyed.port, { method: 'GET', path: '/metrics' })).status, 200);
  } finally {
    assert.deepEqual(await keyed.stop(), { code: 0, signal: null });
  }
});

test('SIGTERM during streams: streams end, the server exits 0', async () => {
  // Endless streams: the drain (1 s) runs out and cancels them.
  const s = await startServer(['--drain-timeout', '1']);
  const body = JSON.stringify(chat({ max_tokens: 20000, ignore_eos: true, stream: true }));
  const streams = Array.from({ length: 4 }, () => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/v1/chat/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
      res.on('error', () => resolve(text));
      res.on('close', () => resolve(text));
    });
    req.on('error', () => resolve(''));
    req.write(body);
    req.end();
  }));
  await sleep(1000);
  const t0 = Date.now();
  assert.deepEqual(await s.stop(15_000), { code: 0, signal: null });
  assert.ok(Date.now() - t0 < 15_000);
  for (const text of await Promise.all(streams)) {
    assert.match(text, /"error"/);
    assert.match(text, /data: \[DONE\]/);
  }
});
