// Several models in one server (docs/SERVING.md, "Several models"): each
// served name answers with its own model's greedy output (equal to
// `moeserve generate` on it); unknown names are 404; /v1/models states;
// load / unload / autoload; LRU eviction under --models-memory-mb; RSS back
// after an unload; a 90/10 split over 1,000 requests; fallback; a model that
// fails to load at run time leaves the others serving; config errors exit 2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServer, rawRequest, postJson, generateJson, sleep } from './lib/server.mjs';

const SRC = process.env.MOESERVE_SOURCE_DIR;
const FIX = process.env.MOESERVE_FIXTURES ?? join(SRC, 'tests/fixtures');
const KJV = join(SRC, 'models/tiny-mixtral-kjv');
const Q8 = join(FIX, 'gguf/tiny-mixtral-kjv.Q8_0.gguf');
const RANDOM = join(FIX, 'models/tiny-random-mixtral');
const KEY = 'sk-models-test';
const AUTH = { Authorization: `Bearer ${KEY}` };
const tmp = mkdtempSync(join(tmpdir(), 'moeserve-models-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const PROMPT = [1, 450, 6483, 302];  // token ids: tiny-random-mixtral has no tokenizer
const N = 8;

function config(name, text) {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

async function complete(port, model, extra = {}) {
  const r = await postJson(port, '/v1/completions', {
    model, prompt: PROMPT, max_tokens: N, temperature: 0, ignore_eos: true, logprobs: 0,
    return_tokens_as_token_ids: true, ...extra,
  }, AUTH);
  const body = JSON.parse(r.body);
  if (r.status !== 200) return { status: r.status, body, headers: r.headers };
  const ids = body.choices[0].logprobs.tokens.map((t) => Number(t.replace('token_id:', '')));
  return { status: 200, body, ids, model: body.model };
}
async function admin(port, name, action, wait = 60) {
  const r = await rawRequest(port, { method: 'POST', path: `/admin/v1/models/${name}/${action}?wait=${wait}`, headers: AUTH });
  return { status: r.status, body: JSON.parse(r.body) };
}
async function states(port) {
  const r = await rawRequest(port, { method: 'GET', path: '/v1/models', headers: AUTH });
  assert.equal(r.status, 200);
  return Object.fromEntries(JSON.parse(r.body).data.map((m) => [m.id, m.state]));
}

// ---- one server, three models, two endpoints ----
const broken = join(tmp, 'broken.gguf');
copyFileSync(Q8, broken);
const main = config('main.toml', `
[server]
threads = 2
kv_cache_mb = 8

[[models]]
name = "kjv"
path = "${KJV}"

[[models]]
name = "kjv-q8"
path = "${Q8}"

[[models]]
name = "random"
path = "${RANDOM}"
preload = false
autoload = false

[[models]]
name = "broken"
path = "${broken}"
preload = false

[[endpoints]]
name = "split"
routes = [{ model = "kjv", weight = 90 }, { model = "kjv-q8", weight = 10 }]

[[endpoints]]
name = "fb"
routes = [{ model = "random", weight = 100 }]
fallback = ["kjv"]
`);
const srv = await startServer(['--config', main, '--api-key', KEY]);
after(() => srv.stop());
const want = {
  kjv: generateJson(['-m', KJV, '--ids', PROMPT.join(','), '-n', String(N), '--ignore-eos']).ids,
  'kjv-q8': generateJson(['-m', Q8, '--ids', PROMPT.join(','), '-n', String(N), '--ignore-eos']).ids,
  random: generateJson(['-m', RANDOM, '--ids', PROMPT.join(','), '-n', String(N), '--ignore-eos']).ids,
};

test('/v1/models lists every model and endpoint with its state', async () => {
  assert.deepEqual(await states(srv.port),
                   { kjv: 'loaded', 'kjv-q8': 'loaded', random: 'unloaded', broken: 'unloaded', split: 'loaded', fb: 'loaded' });  // fb: its fallback kjv is loaded
  const one = await rawRequest(srv.port, { method: 'GET', path: '/v1/models/kjv-q8', headers: AUTH });
  assert.equal(JSON.parse(one.body).state, 'loaded');
});

test('unknown model: 404 model_not_found', async () => {
  const r = await complete(srv.port, 'gpt-4');
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'model_not_found');
  const g = await rawRequest(srv.port, { method: 'GET', path: '/v1/models/gpt-4', headers: AUTH });
  assert.equal(g.status, 404);
});

test('load, serve, unload: each name its own greedy output; RSS back within 5%', async () => {
  // Not autoload: a request does not load it.
  const refused = await complete(srv.port, 'random');
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error.code, 'model_not_loaded');
  const check = async (name) => {
    const r = await complete(srv.port, name);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.model, name);
    assert.deepEqual(r.ids, want[name], name);
  };
  await check('kjv');
  await check('kjv-q8');
  const before = rss(srv.proc.pid);  // the loaded models warm (their first forward passes done)
  const l = await admin(srv.port, 'random', 'load');
  assert.equal(l.status, 200, JSON.stringify(l.body));
  assert.equal(l.body.state, 'loaded');
  await check('random');
  assert.ok(rss(srv.proc.pid) > before, 'loading a model raises RSS');
  assert.notDeepEqual(want.random, want.kjv);
  const u = await admin(srv.port, 'random', 'unload');
  assert.equal(u.status, 200);
  assert.equal((await states(srv.port)).random, 'unloaded');
  const afterRss = rss(srv.proc.pid);
  console.log(`RSS: ${before} before load, ${afterRss} after unload (${(100 * (afterRss - before) / before).toFixed(2)}%)`);
  assert.ok(Math.abs(afterRss - before) / before <= 0.05, `RSS ${before} before load, ${afterRss} after unload`);
});

test('two models busy at once (one compute thread set, engines stepped in turn): each answers its own output', async () => {
  const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => complete(srv.port, i % 2 ? 'kjv-q8' : 'kjv')));
  rs.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.ids, want[i % 2 ? 'kjv-q8' : 'kjv']);
  });
});

test('/metrics labels each model\'s engine series and latency histograms with model="NAME"', async () => {
  const r = await rawRequest(srv.port, { method: 'GET', path: '/metrics', headers: AUTH });
  assert.equal(r.status, 200);
  const v = (series) => {
    const line = r.body.split('\n').find((l) => l.startsWith(series + ' '));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  for (const m of ['kjv', 'kjv-q8']) {
    assert.ok(v(`moeserve_generation_tokens_total{model="${m}"}`) >= N, `${m}: tokens generated`);
    assert.equal(v(`moeserve_requests_running{model="${m}"}`), 0, m);
    assert.equal(v(`moeserve_requests_waiting{model="${m}"}`), 0, m);
    assert.ok(v(`moeserve_kv_cache_blocks_total{model="${m}"}`) > 0, m);
    assert.ok(v(`moeserve_time_to_first_token_seconds_count{model="${m}"}`) >= 1, `${m}: TTFT histogram`);
    assert.ok(v(`moeserve_class_generation_tokens_total{model="${m}",class="standard"}`) >= N, m);
  }
  // Not loaded: no engine series; and no unlabelled engine series beside the labelled ones.
  assert.equal(v('moeserve_requests_running{model="random"}'), undefined);
  assert.equal(v('moeserve_requests_running'), undefined);
  assert.equal(v('moeserve_generation_tokens_total'), undefined);
});

test('fallback: the chosen model unloaded and not autoload -> the fallback answers', async () => {
  const r = await complete(srv.port, 'fb');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.model, 'kjv');
  assert.deepEqual(r.ids, want.kjv);
});

test('autoload: a request for an unloaded model loads it (503 + Retry-After meanwhile)', async () => {
  assert.equal((await admin(srv.port, 'kjv-q8', 'unload')).status, 200);
  const first = await complete(srv.port, 'kjv-q8');
  assert.equal(first.status, 503);
  assert.equal(first.body.error.code, 'model_loading');
  assert.ok(Number(first.headers['retry-after']) >= 1);
  let r;
  for (let i = 0; i < 300; ++i) {
    r = await complete(srv.port, 'kjv-q8');
    if (r.status === 200) break;
    await sleep(50);
  }
  assert.equal(r.status, 200);
  assert.deepEqual(r.ids, want['kjv-q8']);
});

test('90/10 split over 1,000 requests lands within 3 points', async () => {
  const counts = {};
  let next = 0;
  const worker = async () => {
    while (next < 1000) {
      ++next;
      const r = await postJson(srv.port, '/v1/completions', { model: 'split', prompt: [1, 450], max_tokens: 1 }, AUTH);
      assert.equal(r.status, 200, r.body);
      const m = JSON.parse(r.body).model;
      counts[m] = (counts[m] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const share = (counts.kjv ?? 0) / 1000;
  assert.ok(Math.abs(share - 0.9) <= 0.03, JSON.stringify(counts));
  assert.equal((counts.kjv ?? 0) + (counts['kjv-q8'] ?? 0), 1000);
});

test('a model that fails to load at run time: clear error, the others keep serving', async () => {
  writeFileSync(broken, 'GGUF but not really');
  const l = await admin(srv.port, 'broken', 'load');
  assert.equal(l.status, 500);
  assert.equal(l.body.error.code, 'model_load_failed');
  assert.match(l.body.error.message, /broken/);
  const list = JSON.parse((await rawRequest(srv.port, { method: 'GET', path: '/v1/models', headers: AUTH })).body).data;
  const b = list.find((m) => m.id === 'broken');
  assert.equal(b.state, 'failed');
  assert.ok(b.error.length > 0);
  const r = await complete(srv.port, 'kjv');
  assert.equal(r.status, 200);
});

test('admin routes need the operator key', async () => {
  const r = await rawRequest(srv.port, { method: 'POST', path: '/admin/v1/models/kjv/unload' });
  assert.equal(r.status, 401);
  assert.equal((await states(srv.port)).kjv, 'loaded');
});

// ---- the memory budget ----
test('--models-memory-mb: a load evicts the least recently used unpinned model', async () => {
  // Estimates: weights (file size) + kv_cache_mb 8 each: kjv 30 MiB, kjv-q8 20.4, random 16.6.
  // 55 MiB hold any two of them, not all three.
  const cfg = config('budget.toml', `
[server]
threads = 1
kv_cache_mb = 8
models_memory_mb = 55
[[models]]
name = "a"
path = "${KJV}"
preload = false
[[models]]
name = "b"
path = "${Q8}"
preload = false
[[models]]
name = "c"
path = "${RANDOM}"
preload = false
`);
  const s = await startServer(['--config', cfg, '--api-key', KEY]);
  try {
    assert.deepEqual(await states(s.port), { a: 'unloaded', b: 'unloaded', c: 'unloaded' });
    assert.equal((await admin(s.port, 'a', 'load')).status, 200);
    assert.equal((await admin(s.port, 'b', 'load')).status, 200);
    assert.equal((await complete(s.port, 'a')).status, 200);  // a used after b: b is the LRU
    assert.equal((await admin(s.port, 'c', 'load')).status, 200);
    assert.deepEqual(await states(s.port), { a: 'loaded', b: 'unloaded', c: 'loaded' });
    const list = JSON.parse((await rawRequest(s.port, { method: 'GET', path: '/admin/v1/models', headers: AUTH })).body);
    assert.ok(list.used_bytes <= 55 * 2 ** 20, JSON.stringify(list));
  } finally {
    await s.stop();
  }
});

// ---- config errors: one line, exit 2 ----
function bad(args, pattern) {
  const r = spawnSync(BIN, ['serve', '--port', '0', ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, `expected exit 2, got ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0], pattern);
}
const model = (name, path = KJV) => `[[models]]\nname = "${name}"\npath = "${path}"\n`;

test('config errors: unknown keys, missing file, duplicates, weights, references', () => {
  bad(['--config', config('k1.toml', model('a') + 'colour = "red"\n')], /models\[0\]\.colour: unknown key/);
  bad(['--config', config('k2.toml', '[server]\nprot = 1\n' + model('a'))], /server\.prot: unknown key/);
  bad(['--config', config('k3.toml', 'modles = []\n')], /modles: unknown key/);
  bad(['--config', config('f.toml', model('a', join(tmp, 'nope.gguf')))], /model 'a'.*nope\.gguf/);
  bad(['--config', config('d.toml', model('a') + model('a', Q8))], /duplicate model name 'a'/);
  bad(['--config', config('w.toml', model('a') + model('b', Q8) +
      '[[endpoints]]\nname = "s"\nroutes = [{ model = "a", weight = 90 }, { model = "b", weight = 20 }]\n')],
      /weights sum to 110, not 100/);
  bad(['--config', config('r.toml', model('a') + '[[endpoints]]\nname = "s"\nroutes = [{ model = "x", weight = 100 }]\n')],
      /route to 'x', which is not a declared model/);
  bad(['--config', config('t.toml', model('a') + 'max_batch = "big"\n')], /models\[0\]\.max_batch: expected an integer/);
  bad(['--config', config('s.toml', '[[models]\n')], /s\.toml:1:/);
  bad(['--config', join(tmp, 'absent.toml')], /--config: .*absent\.toml/);
  bad(['-m', `a=${KJV}`, '-m', `a=${Q8}`], /duplicate model name 'a'/);
  bad(['-m', `a=${KJV}`, '-m', `b=${Q8}`, '--served-model-name', 'x'], /--served-model-name names a single -m PATH/);
  bad(['-m', `a=${KJV}`, '--models-memory-mb', '-1'], /--models-memory-mb/);
});

// ---- governance: the caller's grants, the operator role, usage under the served model ----
test('governance: /v1/models shows what the key may use; usage is recorded under the model that served', async () => {
  const state = join(tmp, 'gov.db');
  const mk = (...a) => JSON.parse(spawnSync(BIN, ['keys', 'create', '--state', state, ...a], { encoding: 'utf8' }).stdout);
  const user = mk('--name', 'user', '--models', 'kjv,split');
  const op = mk('--name', 'op', '--role', 'manage');
  // kjv-q8 takes one query a minute: the next request on the endpoint falls back to kjv (429 there).
  assert.equal(spawnSync(BIN, ['limits', 'set', '--state', state, '--model', 'kjv-q8', '--qpm', '1']).status, 0);
  const cfg = config('gov.toml', `
[server]
threads = 1
kv_cache_mb = 8
[governance]
state = "${state}"
[[models]]
name = "kjv"
path = "${KJV}"
[[models]]
name = "kjv-q8"
path = "${Q8}"
[[endpoints]]
name = "split"
routes = [{ model = "kjv", weight = 0 }, { model = "kjv-q8", weight = 100 }]
fallback = ["kjv"]
`);
  const s = await startServer(['--config', cfg]);
  const U = { Authorization: `Bearer ${user.key}` }, O = { Authorization: `Bearer ${op.key}` };
  try {
    const list = JSON.parse((await rawRequest(s.port, { method: 'GET', path: '/v1/models', headers: U })).body);
    assert.deepEqual(list.data.map((m) => m.id), ['kjv', 'split']);
    const r = await postJson(s.port, '/v1/completions', { model: 'split', prompt: PROMPT, max_tokens: 2 }, U);
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).model, 'kjv-q8');
    const r2 = await postJson(s.port, '/v1/completions', { model: 'split', prompt: PROMPT, max_tokens: 2 }, U);
    assert.equal(r2.status, 200, r2.body);
    assert.equal(JSON.parse(r2.body).model, 'kjv');
    const denied = await postJson(s.port, '/v1/completions', { model: 'kjv-q8', prompt: PROMPT, max_tokens: 2 }, U);
    assert.equal(denied.status, 403);
    const adminAsUser = await rawRequest(s.port, { method: 'POST', path: '/admin/v1/models/kjv/unload', headers: U });
    assert.equal(adminAsUser.status, 403);
    const unload = await rawRequest(s.port, { method: 'POST', path: '/admin/v1/models/kjv/unload', headers: O });
    assert.equal(unload.status, 200, unload.body);
  } finally {
    await s.stop();
  }
  const rows = spawnSync(BIN, ['usage', '--state', state, '--rows'], { encoding: 'utf8' }).stdout.trim().split('\n')
    .filter(Boolean).map((l) => JSON.parse(l));
  const ok = rows.filter((x) => x.status === 200).map((x) => x.model).sort();
  assert.deepEqual(ok, ['kjv', 'kjv-q8'], JSON.stringify(rows));
});
