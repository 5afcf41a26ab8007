// The official OpenAI SDK against `moeserve serve` on the bundled model.
// Run by test_openai_sdk.sh (MOESERVE_BIN = the binary).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI, { BadRequestError, AuthenticationError, NotFoundError } from 'openai';

import { startServer, postJson, generateJson } from './lib/server.mjs';

const MODEL = 'tiny-mixtral-kjv';
const FIXTURES = process.env.MOESERVE_FIXTURES || new URL('../fixtures', import.meta.url).pathname;
const reference = JSON.parse(readFileSync(`${FIXTURES}/reference/tiny-mixtral-kjv.json`, 'utf8'));

let server;      // no API key
let keyed;       // --api-key
let client;

before(async () => {
  server = await startServer(['--max-batch', '64']);
  keyed = await startServer(['--api-key', 'sekrit', '--served-model-name', 'kjv']);
  client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
});

after(async () => {
  const results = await Promise.all([server?.stop(), keyed?.stop()]);
  for (const r of results) if (r) assert.deepEqual(r, { code: 0, signal: null }, 'clean exit on SIGTERM');
});

const chatMessages = [
  { role: 'system', content: 'Answer in the words of the scripture.' },
  { role: 'user', content: 'Who made the heaven and the earth?' },
];

async function streamChat(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  const texts = [];
  const finish = [];
  let usage = null;
  let sawRole = false;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) {
        assert.equal(c.delta.role, 'assistant');
        assert.equal(texts[c.index] ?? '', '', 'the role comes first');
        sawRole = true;
      }
      texts[c.index] = (texts[c.index] ?? '') + (c.delta.content ?? '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  assert.ok(sawRole);
  return { texts, finish, usage };
}

test('models.list names the served model', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1);
  assert.equal(models[0].id, MODEL);
  assert.equal(models[0].object, 'model');
  const one = await client.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
});

test('chat: non-stream and stream give the same text and usage', async () => {
  const params = { model: MODEL, messages: chatMessages, max_tokens: 24, temperature: 0 };
  const r = await client.chat.completions.create(params);
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const text = r.choices[0].message.content;
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(text.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  // prompt_tokens counts the chat template: the same count /tokenize gives for the messages.
  const tok = JSON.parse((await postJson(server.port, '/tokenize', { messages: chatMessages })).body);
  assert.equal(r.usage.prompt_tokens, tok.count);
  assert.equal(tok.tokens[0], 1, 'BOS first');

  const s = await streamChat(params);
  assert.equal(s.texts[0], text);
  assert.equal(s.finish[0], r.choices[0].finish_reason);
  assert.deepEqual(
    { p: s.usage.prompt_tokens, c: s.usage.completion_tokens, t: s.usage.total_tokens },
    { p: r.usage.prompt_tokens, c: r.usage.completion_tokens, t: r.usage.total_tokens },
  );
});

test('chat: sampled n=2 with a seed, stream == non-stream', async () => {
  const params = { model: MODEL, messages: chatMessages, max_tokens: 16, temperature: 0.9, n: 2, seed: 7 };
  const r = await client.chat.completions.create(params);
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  const s = await streamChat(params);
  assert.deepEqual(s.texts, r.choices.map((c) => c.message.content));
  assert.equal(s.usage.completion_tokens, r.usage.completion_tokens);
});

test('completions: text prompt, usage counts BOS + prompt', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'In the beginning', max_tokens: 12, temperature: 0 });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0].text.length > 0);
  const tok = JSON.parse((await postJson(server.port, '/tokenize', { prompt: 'In the beginning' })).body);
  assert.equal(r.usage.prompt_tokens, tok.count);
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.choices[0].finish_reason, 'length');

  // The same prompt streamed.
  const stream = await client.completions.create({
    model: MODEL, prompt: 'In the beginning', max_tokens: 12, temperature: 0, stream: true,
  });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, 'length');
});

test('completions: several prompts and token-id prompts', async () => {
  const ids = reference.prompts[0].ids;
  const r = await client.completions.create({
    model: MODEL, prompt: [ids, ids], max_tokens: 6, temperature: 0, n: 2,
  });
  assert.equal(r.choices.length, 4);
  for (const c of r.choices) assert.equal(c.text, r.choices[0].text, 'greedy: all four equal');
  assert.equal(r.usage.prompt_tokens, 2 * ids.length);
});

test('tokenize and detokenize round trip', async () => {
  const text = 'And God said, Let there be light: and there was light.';
  const t = JSON.parse((await postJson(server.port, '/tokenize', { prompt: text })).body);
  assert.equal(t.tokens[0], 1);
  assert.equal(t.count, t.tokens.length);
  assert.equal(t.max_model_len, 32768);
  const noBos = JSON.parse((await postJson(server.port, '/tokenize', { prompt: text, add_special_tokens: false })).body);
  assert.deepEqual(noBos.tokens, t.tokens.slice(1));
  const ref = reference.tokenizer?.[0];
  if (ref) {
    const r = JSON.parse((await postJson(server.port, '/tokenize', { prompt: ref.text, add_special_tokens: false })).body);
    assert.deepEqual(r.tokens, ref.ids);
  }
  const d = JSON.parse((await postJson(server.port, '/detokenize', { tokens: noBos.tokens })).body);
  assert.equal(d.prompt, text);
});

test('greedy through the server equals `moeserve generate --json`', async () => {
  for (const p of reference.prompts.slice(0, 3)) {
    const gen = generateJson(['--ids', p.ids.join(','), '-n', '16', '--temperature', '0']);
    assert.deepEqual(gen.prompt_ids, p.ids);
    const r = await client.completions.create({
      model: MODEL, prompt: p.ids, max_tokens: 16, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true,
    });
    assert.equal(r.choices[0].text, gen.text, `text for ${JSON.stringify(p.prompt)}`);
    const serverIds = r.choices[0].logprobs.tokens.map((t) => Number(t.replace('token_id:', ''))).filter((t) => t !== 2);
    assert.deepEqual(serverIds, gen.ids);
  }
  // Seeded sampling too: choice 0 runs with the request's seed, as generate does.
  const p = reference.prompts[1];
  const gen = generateJson(['--ids', p.ids.join(','), '-n', '16', '--temperature', '0.8', '--seed', '1234']);
  const r = await client.completions.create({ model: MODEL, prompt: p.ids, max_tokens: 16, temperature: 0.8, seed: 1234 });
  assert.equal(r.choices[0].text, gen.text);
});

test('stop strings end the text before the stop string', async () => {
  const params = { model: MODEL, prompt: 'In the beginning', max_tokens: 24, temperature: 0 };
  const full = (await client.completions.create(params)).choices[0].text;
  // A word from the middle of the greedy continuation.
  const words = full.trim().split(/\s+/).filter((w) => /^[A-Za-z]{3,}$/.test(w));
  assert.ok(words.length >= 2, `not enough words in ${JSON.stringify(full)}`);
  const stopWord = words[1];
  const at = full.indexOf(stopWord);
  const r = await client.completions.create({ ...params, stop: [stopWord, 'zzzz'] });
  assert.equal(r.choices[0].text, full.slice(0, at));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const c = await client.chat.completions.create({ model: MODEL, messages: chatMessages, max_tokens: 24, temperature: 0 });
  const ctext = c.choices[0].message.content;
  const cword = ctext.trim().split(/\s+/).find((w) => /^[A-Za-z]{3,}$/.test(w));
  if (cword) {
    const cs = await client.chat.completions.create({
      model: MODEL, messages: chatMessages, max_tokens: 24, temperature: 0, stop: cword,
    });
    assert.equal(cs.choices[0].message.content, ctext.slice(0, ctext.indexOf(cword)));
    assert.equal(cs.choices[0].finish_reason, 'stop');
  }
});

test('seed: same seed same text, different seeds differ', async () => {
  const params = { model: MODEL, messages: chatMessages, max_tokens: 20, temperature: 1.0 };
  const a = await client.chat.completions.create({ ...params, seed: 42 });
  const b = await client.chat.completions.create({ ...params, seed: 42 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const texts = new Set();
  for (let s = 1; s <= 4; s++) texts.add((await client.chat.completions.create({ ...params, seed: s })).choices[0].message.content);
  assert.ok(texts.size >= 2, 'four seeds gave one text');
});

test('logprobs: chat and completions', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: chatMessages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  let joined = '';
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Array.isArray(t.bytes));
    // Greedy: the chosen token is the most likely one.
    const best = Math.max(...t.top_logprobs.map((x) => x.logprob));
    assert.ok(Math.abs(t.logprob - best) < 1e-4, `${t.logprob} vs ${best}`);
    for (let i = 1; i < t.top_logprobs.length; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob);
    joined += Buffer.from(t.bytes).toString('latin1');
  }
  assert.ok(joined.length > 0);

  const c = await client.completions.create({ model: MODEL, prompt: 'And God said', max_tokens: 5, temperature: 0, logprobs: 2 });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 5);
  assert.equal(lp.token_logprobs.length, 5);
  assert.equal(lp.top_logprobs.length, 5);
  for (const top of lp.top_logprobs) assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);
  assert.equal(lp.text_offset[0], 0);
});

test('errors arrive as the SDK error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: chatMessages, max_tokens: -1 }),
    (e) => e instanceof BadRequestError && e.status === 400 && e.param === 'max_tokens',
  );
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: chatMessages, temperature: 5 }),
    (e) => e instanceof BadRequestError && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'assistant', content: 'Hi' }] }),
    (e) => e instanceof BadRequestError && e.param === 'messages',
  );
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'system', content: 'Only a system prompt.' }], max_tokens: 4 }),
    (e) => e instanceof BadRequestError && e.param === 'messages',
  );
  await assert.rejects(
    client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 40000 }),
    (e) => e instanceof BadRequestError && e.code === 'context_length_exceeded',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'gpt-4o', messages: chatMessages }),
    (e) => e instanceof NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(client.models.retrieve('nope'), (e) => e instanceof NotFoundError);

  // A server started with --api-key.
  const wrong = new OpenAI({ baseURL: `${keyed.base}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(
    wrong.chat.completions.create({ model: 'kjv', messages: chatMessages, max_tokens: 2 }),
    (e) => e instanceof AuthenticationError && e.status === 401,
  );
  const right = new OpenAI({ baseURL: `${keyed.base}/v1`, apiKey: 'sekrit', maxRetries: 0 });
  const ok = await right.chat.completions.create({ model: 'kjv', messages: chatMessages, max_tokens: 2 });
  assert.equal(ok.model, 'kjv');
  await assert.rejects(
    right.chat.completions.create({ model: MODEL, messages: chatMessages, max_tokens: 2 }),
    (e) => e instanceof NotFoundError,
  );
});

test('64 concurrent greedy requests each return what they return alone', async () => {
  const prompts = [
    'In the beginning', 'And the LORD spake unto Moses, saying', 'Blessed are the', 'The LORD is my shepherd',
    'And it came to pass', 'Now the serpent was', 'For God so loved', 'Thou shalt not',
  ];
  const params = (prompt) => ({ model: MODEL, prompt, max_tokens: 16, temperature: 0 });
  const alone = {};
  for (const p of prompts) alone[p] = (await client.completions.create(params(p))).choices[0].text;
  const jobs = [];
  for (let i = 0; i < 64; i++) {
    const p = prompts[i % prompts.length];
    jobs.push(client.completions.create(params(p)).then((r) => ({ p, text: r.choices[0].text })));
  }
  const results = await Promise.all(jobs);
  for (const r of results) assert.equal(r.text, alone[r.p], `prompt ${JSON.stringify(r.p)}`);
  // The same through chat streams.
  const msgs = (p) => [{ role: 'user', content: p }];
  const aloneChat = {};
  for (const p of prompts.slice(0, 4))
    aloneChat[p] = (await client.chat.completions.create({ model: MODEL, messages: msgs(p), max_tokens: 12, temperature: 0 })).choices[0].message.content;
  const streams = [];
  for (let i = 0; i < 32; i++) {
    const p = prompts[i % 4];
    streams.push(streamChat({ model: MODEL, messages: msgs(p), max_tokens: 12, temperature: 0 }).then((s) => ({ p, text: s.texts[0] })));
  }
  for (const r of await Promise.all(streams)) assert.equal(r.text, aloneChat[r.p]);
});

test('metrics expose engine and latency series', async () => {
  const res = await fetch(`${server.base}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const name of [
    'moeserve_requests_running', 'moeserve_requests_waiting', 'moeserve_kv_cache_usage_ratio',
    'moeserve_prefix_cache_hit_rate', 'moeserve_preemptions_total', 'moeserve_prompt_tokens_total',
    'moeserve_generation_tokens_total', 'moeserve_time_to_first_token_seconds_bucket',
    'moeserve_inter_token_latency_seconds_bucket', 'moeserve_e2e_request_latency_seconds_count',
    'moeserve_expert_tokens_total{layer="0",expert="3"}',
  ]) assert.ok(text.includes(name), `missing ${name}`);
  const gen = Number(/^moeserve_generation_tokens_total (\S+)$/m.exec(text)[1]);
  assert.ok(gen > 100);
  // Every token is routed to 2 of 8 experts in each of 4 layers.
  let layer0 = 0;
  for (const m of text.matchAll(/^moeserve_expert_tokens_total\{layer="0",expert="\d+"\} (\d+)$/gm)) layer0 += Number(m[1]);
  assert.ok(layer0 > 0 && layer0 % 2 === 0, `layer 0 routed ${layer0}`);
});
