#!/usr/bin/env node
// structured_bench.mjs — the cost of constrained decoding under load.
//
// Three phases at one concurrency (default 16), each `--rounds` requests per
// worker, every request generating exactly --max-tokens tokens:
//   unconstrained  all workers free text (ignore_eos);
//   constrained    all workers JSON Schema constrained (an array of >= 100
//                  rows, so it cannot end before max_tokens);
//   mixed          half and half: the unconstrained half's per-request
//                  tokens/s shows whether constrained neighbours slow it down.
// Reported: aggregate generated tokens/s per phase (wall clock), and the
// per-request decode rate of unconstrained requests alone vs mixed. The three
// phases run --repeat times in rotating order (machines shared with other
// work drift); the median of each phase is reported.
// Plain node >= 18 (fetch), no packages.
const args = { url: 'http://127.0.0.1:8080', concurrency: 16, maxTokens: 64, rounds: 2, repeat: 3, model: '' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  const v = process.argv[++i];
  if (k === '--url') args.url = v;
  else if (k === '--concurrency') args.concurrency = Number(v);
  else if (k === '--max-tokens') args.maxTokens = Number(v);
  else if (k === '--rounds') args.rounds = Number(v);
  else if (k === '--model') args.model = v;
  else if (k === '--repeat') args.repeat = Number(v);
  else throw new Error(`unknown argument ${k}`);
}

const schema = {
  type: 'array',
  minItems: 100,
  items: {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, n: { type: 'integer' } },
    required: ['name', 'n'],
    additionalProperties: false,
  },
};

async function one(constrained, seed) {
  const body = {
    model: args.model || undefined,
    messages: [{ role: 'user', content: 'List the tribes of Israel with their numbers.' }],
    max_tokens: args.maxTokens,
    temperature: 0.8,
    seed,
  };
  if (constrained) body.response_format = { type: 'json_schema', json_schema: { name: 'rows', schema } };
  else body.ignore_eos = true;
  const t0 = performance.now();
  const r = await fetch(`${args.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  if (!r.ok) throw new Error(JSON.stringify(j));
  const secs = (performance.now() - t0) / 1000;
  return { tokens: j.usage.completion_tokens, secs, constrained };
}

async function phase(kind) {
  const t0 = performance.now();
  const results = [];
  const workers = [];
  for (let w = 0; w < args.concurrency; w++) {
    const constrained = kind === 'constrained' || (kind === 'mixed' && w % 2 === 1);
    workers.push((async () => {
      for (let r = 0; r < args.rounds; r++) results.push(await one(constrained, 1000 * w + r));
    })());
  }
  await Promise.all(workers);
  const wall = (performance.now() - t0) / 1000;
  const tokens = results.reduce((s, x) => s + x.tokens, 0);
  const free = results.filter((x) => !x.constrained);
  const perReq = free.length ? free.reduce((s, x) => s + x.tokens / x.secs, 0) / free.length : NaN;
  return { kind, tokens, wall, tps: tokens / wall, freePerRequestTps: perReq };
}

await one(true, 1);  // compile the schema once (cached afterwards), warm up
await one(false, 1);
const kinds = ['unconstrained', 'constrained', 'mixed'];
const runs = { unconstrained: [], constrained: [], mixed: [] };
for (let r = 0; r < args.repeat; r++)
  for (let k = 0; k < 3; k++) {
    const kind = kinds[(k + r) % 3];
    runs[kind].push(await phase(kind));
  }
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`concurrency ${args.concurrency}, max_tokens ${args.maxTokens}, ${args.rounds} rounds per worker, median of ${args.repeat}`);
const base = median(runs.unconstrained.map((p) => p.tps));
for (const kind of kinds) {
  const tps = median(runs[kind].map((p) => p.tps));
  const free = runs[kind].map((p) => p.freePerRequestTps).filter((x) => !Number.isNaN(x));
  console.log(
    `${kind.padEnd(14)} ${tps.toFixed(1)} tok/s (${((tps / base) * 100).toFixed(1)}% of unconstrained)` +
      (free.length ? `; unconstrained requests ${median(free).toFixed(2)} tok/s each` : '') +
      `  [runs: ${runs[kind].map((p) => p.tps.toFixed(1)).join(', ')}]`,
  );
}
