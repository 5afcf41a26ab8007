// Ready-to-run code for a chat request: curl, Python `openai`, JavaScript
// `openai`. The key comes from the MOESERVE_API_KEY environment variable,
// never from the page.

// A string as a POSIX shell single-quoted word.
function shQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// JSON with 2-space indent (valid Python literal too, after the replacements).
function pyLiteral(v, indent = '') {
  const next = indent + '    ';
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return `[\n${v.map((x) => next + pyLiteral(x, next)).join(',\n')},\n${indent}]`;
  }
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length) return '{}';
    return `{\n${keys.map((k) => `${next}${JSON.stringify(k)}: ${pyLiteral(v[k], next)}`).join(',\n')},\n${indent}}`;
  }
  return JSON.stringify(v);
}

// body: {model, messages, ...params} as the page sends it (without stream fields).
export function curlSnippet(baseUrl, body) {
  return [
    `curl -sS ${shQuote(baseUrl + '/v1/chat/completions')} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -H "Authorization: Bearer \${MOESERVE_API_KEY:-none}" \\`,
    `  -d ${shQuote(JSON.stringify(body, null, 2))}`,
  ].join('\n');
}

export function pythonSnippet(baseUrl, body) {
  const { model, messages, ...rest } = body;
  const known = ['temperature', 'top_p', 'max_tokens', 'seed', 'stop'];
  const args = [`    model=${JSON.stringify(model)},`, `    messages=${pyLiteral(messages, '    ')},`];
  const extra = {};
  for (const [k, v] of Object.entries(rest)) {
    if (known.includes(k)) args.push(`    ${k}=${pyLiteral(v, '    ')},`);
    else extra[k] = v;
  }
  if (Object.keys(extra).length) args.push(`    extra_body=${pyLiteral(extra, '    ')},`);
  return [
    'import os',
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url=${JSON.stringify(baseUrl + '/v1')}, api_key=os.environ.get("MOESERVE_API_KEY", "none"))`,
    'reply = client.chat.completions.create(',
    ...args,
    ')',
    'print(reply.choices[0].message.content)',
  ].join('\n');
}

export function jsSnippet(baseUrl, body) {
  const json = JSON.stringify(body, null, 2).replace(/\n/g, '\n');
  return [
    "import OpenAI from 'openai';",
    '',
    `const client = new OpenAI({ baseURL: ${JSON.stringify(baseUrl + '/v1')}, apiKey: process.env.MOESERVE_API_KEY ?? 'none' });`,
    `const reply = await client.chat.completions.create(${json});`,
    'console.log(reply.choices[0].message.content);',
  ].join('\n');
}
