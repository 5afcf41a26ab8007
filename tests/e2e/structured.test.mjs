// Structured outputs and tool calling with the official OpenAI SDK against
// `moeserve serve` on the bundled model (which has never seen JSON): every
// constrained answer must parse and validate (ajv), stream == non-stream.
// Run by test_structured.sh (MOESERVE_BIN = the binary).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { BadRequestError } from 'openai';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

import { startServer } from './lib/server.mjs';

const MODEL = 'tiny-mixtral-kjv';
let server;
let client;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

before(async () => {
  server = await startServer(['--max-batch', '64']);
  client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
});

after(async () => {
  const r = await server?.stop();
  if (r) assert.deepEqual(r, { code: 0, signal: null }, 'clean exit on SIGTERM');
});

const str = (maxLength = 12) => ({ type: 'string', maxLength });
const SCHEMAS = [
  { type: 'object', properties: { name: str(), age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false },
  { type: 'array', items: { type: 'integer', minimum: -50, maximum: 50 }, minItems: 1, maxItems: 5 },
  { type: 'object', properties: { ok: { type: 'boolean' }, note: { type: 'null' } }, required: ['ok', 'note'], additionalProperties: false },
  { enum: ['red', 'green', 'blue', 42, null] },
  { type: 'object', properties: { kind: { const: 'point' }, x: { type: 'number', minimum: -10, maximum: 10 }, y: { type: 'number', minimum: 0, maximum: 1 } }, required: ['kind', 'x', 'y'], additionalProperties: false },
  { type: 'object', properties: { day: { type: 'string', format: 'date' }, at: { type: 'string', format: 'date-time' } }, required: ['day', 'at'], additionalProperties: false },
  { type: 'object', properties: { id: { type: 'string', format: 'uuid' }, email: { type: 'string', format: 'email' } }, required: ['id', 'email'], additionalProperties: false },
  { type: 'string', pattern: '^[A-Z]{2}-[0-9]{3,4}$' },
  { type: 'string', minLength: 3, maxLength: 8 },
  { anyOf: [{ type: 'integer', minimum: 1, maximum: 9 }, { type: 'string', maxLength: 5 }, { type: 'boolean' }] },
  { type: ['string', 'null'], maxLength: 6 },
  { type: 'object', properties: { a: str(5), b: { type: 'integer', minimum: 0, maximum: 9 }, c: { type: 'boolean' } }, required: ['b'], additionalProperties: false },
  { $defs: { item: { type: 'object', properties: { sku: { type: 'string', pattern: '^[a-z]{3}[0-9]$' }, qty: { type: 'integer', minimum: 1, maximum: 99 } }, required: ['sku', 'qty'], additionalProperties: false } },
    type: 'object', properties: { items: { type: 'array', items: { $ref: '#/$defs/item' }, minItems: 1, maxItems: 3 } }, required: ['items'], additionalProperties: false },
  { $defs: { node: { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['v', 'kids'], additionalProperties: false } },
    $ref: '#/$defs/node' },
  { type: 'array', items: { type: 'array', items: { type: 'boolean' }, maxItems: 2 }, minItems: 2, maxItems: 2 },
  { type: 'object', properties: { tags: { type: 'array', items: { enum: ['x', 'y', 'z'] }, minItems: 2, maxItems: 4 } }, required: ['tags'], additionalProperties: false },
  { type: 'integer', minimum: 1000, maximum: 1999 },
  { type: 'number', minimum: -1, maximum: 1 },
  { type: 'object', properties: { status: { enum: ['open', 'closed'] }, owner: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/user' }] } }, required: ['status', 'owner'], additionalProperties: false,
    $defs: { user: { type: 'object', properties: { login: str(8) }, required: ['login'], additionalProperties: false } } },
  { type: 'object', properties: { title: { type: 'string', maxLength: 20, description: 'a title' }, year: { type: 'integer', minimum: 1900, maximum: 2100 } }, required: ['title', 'year'], additionalProperties: false, title: 'Book' },
];
const SEEDS = [1, 2, 3];
const messages = [{ role: 'user', content: 'Reply in JSON.' }];

async function streamText(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

test('json_schema: 20 schemas x 3 seeds parse and validate, streaming and not', async () => {
  assert.equal(SCHEMAS.length, 20);
  const jobs = [];
  SCHEMAS.forEach((schema, i) => {
    const validate = ajv.compile(schema);
    for (const seed of SEEDS) {
      jobs.push((async () => {
        const params = {
          model: MODEL, messages, seed, temperature: 1, max_tokens: 400,
          response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema, strict: true } },
        };
        const r = await client.chat.completions.create(params);
        const text = r.choices[0].message.content;
        assert.equal(r.choices[0].finish_reason, 'stop', `schema ${i} seed ${seed}: ${text}`);
        const value = JSON.parse(text);
        assert.ok(validate(value), `schema ${i} seed ${seed}: ${text} ${JSON.stringify(validate.errors)}`);
        const s = await streamText(params);
        assert.equal(s.text, text, `stream == non-stream (schema ${i} seed ${seed})`);
        assert.equal(s.finish, 'stop');
      })());
    }
  });
  await Promise.all(jobs);
});

test('chat.completions.parse returns the parsed object', async () => {
  const schema = SCHEMAS[0];
  const r = await client.chat.completions.parse({
    model: MODEL, messages, seed: 5, max_tokens: 200,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
  });
  const m = r.choices[0].message;
  assert.deepEqual(m.parsed, JSON.parse(m.content));
  assert.ok(ajv.validate(schema, m.parsed));
});

test('json_object, choice, regex and grammar always hold (n > 1, temperature 1)', async () => {
  const base = { model: MODEL, messages, temperature: 1, max_tokens: 200, n: 4 };
  const obj = await client.chat.completions.create({ ...base, max_tokens: 400, response_format: { type: 'json_object' } });
  for (const c of obj.choices) {
    if (c.finish_reason !== 'stop') continue;  // a free-form object may run to max_tokens
    const v = JSON.parse(c.message.content);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  }
  const labels = ['positive', 'negative', 'neutral'];
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.chat.completions.create({ ...base, seed, structured_outputs: { choice: labels } });
    for (const c of r.choices) {
      assert.ok(labels.includes(c.message.content), c.message.content);
      assert.equal(c.finish_reason, 'stop');
    }
    const re = await client.chat.completions.create({ ...base, seed, structured_outputs: { regex: '[A-Z][a-z]{2,6} [0-9]{1,3}(\\.[0-9])?' } });
    for (const c of re.choices) assert.match(c.message.content, /^[A-Z][a-z]{2,6} [0-9]{1,3}(\.[0-9])?$/);
    const g = await client.chat.completions.create({
      ...base, seed,
      structured_outputs: { grammar: 'root ::= "(" expr ")"\nexpr ::= num (("+" | "*") num){0,3}\nnum ::= [1-9] [0-9]?' },
    });
    for (const c of g.choices) assert.match(c.message.content, /^\([1-9][0-9]?([+*][1-9][0-9]?){0,3}\)$/);
  }
  // Completions take structured_outputs too.
  const comp = await client.completions.create({ model: MODEL, prompt: 'The answer:', max_tokens: 10, structured_outputs: { choice: ['yes', 'no'] } });
  assert.ok(['yes', 'no'].includes(comp.choices[0].text));
});

test('an unsupported keyword is a 400 naming it', async () => {
  const cases = [
    [{ type: 'object', patternProperties: { '^x': { type: 'string' } } }, 'patternProperties'],
    [{ type: 'string', format: 'hostname' }, 'hostname'],
    [{ oneOf: [{ type: 'string' }] }, 'oneOf'],
    [{ type: 'integer', multipleOf: 3 }, 'multipleOf'],
  ];
  for (const [schema, word] of cases) {
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }),
      (e) => e instanceof BadRequestError && e.status === 400 && e.message.includes(word),
      word,
    );
  }
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages, structured_outputs: { regex: '(a' } }),
    (e) => e instanceof BadRequestError && e.param === 'structured_outputs',
  );
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'], additionalProperties: false },
  },
};
const timeTool = {
  type: 'function',
  function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string', pattern: '^[A-Z]{3}$' } }, required: ['tz'], additionalProperties: false } },
};
const tools = [weatherTool, timeTool];
const toolSchemas = Object.fromEntries(tools.map((t) => [t.function.name, t.function.parameters]));

function checkCalls(message, allowed) {
  assert.ok(Array.isArray(message.tool_calls) && message.tool_calls.length >= 1, JSON.stringify(message));
  for (const call of message.tool_calls) {
    assert.match(call.id, /^[A-Za-z0-9]{9}$/);
    assert.equal(call.type, 'function');
    assert.ok(allowed.includes(call.function.name), call.function.name);
    const args = JSON.parse(call.function.arguments);
    assert.ok(ajv.validate(toolSchemas[call.function.name], args), call.function.arguments);
  }
}

async function streamCalls(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const calls = [];
  let content = '';
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      content += c.delta.content ?? '';
      for (const d of c.delta.tool_calls ?? []) {
        const cur = (calls[d.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (d.id) cur.id = d.id;
        if (d.function?.name) cur.function.name += d.function.name;
        if (d.function?.arguments) cur.function.arguments += d.function.arguments;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { calls, content, finish };
}

test('tool_choice named / required always yields calls whose arguments validate; stream == non-stream', async () => {
  for (const seed of [1, 2, 3]) {
    const named = { model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, seed, max_tokens: 300,
      tool_choice: { type: 'function', function: { name: 'get_time' } } };
    const r = await client.chat.completions.create(named);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.content, null);
    checkCalls(r.choices[0].message, ['get_time']);
    assert.equal(r.choices[0].message.tool_calls.length, 1, 'a named tool_choice -> one call');

    const required = { ...named, tool_choice: 'required', parallel_tool_calls: false };
    const q = await client.chat.completions.create(required);
    assert.equal(q.choices[0].finish_reason, 'tool_calls');
    checkCalls(q.choices[0].message, ['get_weather', 'get_time']);
    assert.equal(q.choices[0].message.tool_calls.length, 1, 'parallel_tool_calls: false -> one call');

    const s = await streamCalls(required);
    assert.equal(s.finish, 'tool_calls');
    assert.equal(s.content, '');
    const strip = (calls) => calls.map((c) => ({ type: c.type, name: c.function.name, arguments: c.function.arguments }));
    assert.deepEqual(strip(s.calls), strip(q.choices[0].message.tool_calls), 'streamed deltas reassemble to the call');
    for (const c of s.calls) assert.match(c.id, /^[A-Za-z0-9]{9}$/);
  }
});

test('two-turn conversation with a tool result', async () => {
  const first = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'What is the weather in Rome?' }], tools, seed: 9, max_tokens: 300,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const msg = first.choices[0].message;
  checkCalls(msg, ['get_weather']);
  const call = msg.tool_calls[0];
  const second = await client.chat.completions.create({
    model: MODEL, seed: 9, max_tokens: 20, temperature: 0, tools,
    messages: [
      { role: 'user', content: 'What is the weather in Rome?' },
      msg,
      { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temperature: 21, sky: 'clear' }) },
    ],
  });
  const ans = second.choices[0];
  assert.ok(['stop', 'length', 'tool_calls'].includes(ans.finish_reason));
  if (ans.finish_reason !== 'tool_calls') assert.equal(typeof ans.message.content, 'string');
  // The tool result is in the prompt: it costs more tokens than the first turn's prompt.
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
  // A tool message must follow the assistant's tool_calls.
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'abcdefghi', content: '1' }] }),
    (e) => e instanceof BadRequestError,
  );
  // tool_choice "none": plain text, no calls.
  const none = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], tools, tool_choice: 'none', max_tokens: 8 });
  assert.equal(none.choices[0].message.tool_calls, undefined);
});
