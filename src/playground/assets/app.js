// moeserve playground: chat, compare, experts at work, code, key and usage.
// Plain ES modules, no framework. Talks only to this server's OpenAI API
// (same origin; the page's Content-Security-Policy allows nothing else).
// Every text from a model or a user goes through escapeHtml/renderMarkdown
// or textContent, never raw into innerHTML.
import { escapeHtml, renderMarkdown } from './markdown.js';
import { curlSnippet, pythonSnippet, jsSnippet } from './snippets.js';
import { drawExperts } from './experts.js';

const $ = (id) => document.getElementById(id);
const STORE = 'moeserve.conversations';
const CURRENT = 'moeserve.current';
const PARAMS = 'moeserve.params';
const KEY = 'moeserve.apiKey';
const PARAM_IDS = ['model', 'system', 'temperature', 'top_p', 'top_k', 'max_tokens', 'seed', 'stop', 'experts'];

// ---- storage ------------------------------------------------------------------

function loadJson(storage, key, fallback) {
  try {
    const v = JSON.parse(storage.getItem(key));
    return v ?? fallback;
  } catch {
    return fallback;
  }
}

let conversations = loadJson(localStorage, STORE, []);
if (!Array.isArray(conversations)) conversations = [];
let currentId = localStorage.getItem(CURRENT);

function saveConversations() {
  try {
    localStorage.setItem(STORE, JSON.stringify(conversations));
    localStorage.setItem(CURRENT, currentId ?? '');
  } catch {
    showAlert('Could not save the conversation in local storage (full?).');
  }
}

function current() {
  let c = conversations.find((x) => x.id === currentId);
  if (!c) {
    c = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: 'New conversation', messages: [] };
    conversations.unshift(c);
    currentId = c.id;
  }
  return c;
}

// ---- alerts and API ------------------------------------------------------------

function showAlert(text) {
  const a = $('alert');
  a.textContent = text;
  a.hidden = !text;
}

function apiKey() {
  return $('api-key').value.trim();
}

function headers(json = true) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  const k = apiKey();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

// The error an API response carries, as one clear sentence.
async function errorOf(res) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const j = await res.json();
    if (j && j.error && j.error.message) msg = j.error.message;
  } catch {
    /* not JSON */
  }
  if (res.status === 401) return `The API key was refused (401): ${msg} Enter a valid key in the "API key" field.`;
  if (res.status === 403) return `This key may not do that (403): ${msg}`;
  if (res.status === 429) return `Rate limited (429): ${msg}`;
  return `Request failed (${res.status}): ${msg}`;
}

// POST a streamed chat completion; calls onDelta(text, chunk) per content
// delta. Resolves {text, usage, expertLoad, tokens, finish, ttft, ms, stopped}.
async function streamChat(body, signal, onDelta) {
  const t0 = performance.now();
  const out = { text: '', usage: null, expertLoad: null, tokens: [], finish: null, ttft: null, ms: 0, stopped: false, chunks: 0 };
  let res;
  try {
    res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal });
  } catch (e) {
    if (e.name === 'AbortError') return { ...out, stopped: true };
    throw new Error(`Cannot reach the server: ${e.message}`);
  }
  if (!res.ok) throw new Error(await errorOf(res));
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(`The server ended the reply: ${j.error.message}`);
          if (j.usage) out.usage = j.usage;
          if (j.expert_load) out.expertLoad = j.expert_load;
          for (const c of j.choices || []) {
            const lp = c.logprobs && c.logprobs.content;
            if (lp) for (const t of lp) out.tokens.push(t.token);
            if (c.finish_reason) out.finish = c.finish_reason;
            const d = c.delta && c.delta.content;
            if (d) {
              if (out.ttft === null) out.ttft = performance.now() - t0;
              out.text += d;
              out.chunks++;
              out.ms = performance.now() - t0;
              onDelta(out);
            }
          }
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') out.stopped = true;
    else throw e;
  }
  out.ms = performance.now() - t0;
  return out;
}

function statsText(r) {
  const parts = [];
  if (r.ttft !== null) parts.push(`TTFT ${r.ttft.toFixed(0)} ms`);
  const n = r.usage ? r.usage.completion_tokens : r.chunks;
  if (r.ttft !== null && n > 1 && r.ms > r.ttft) parts.push(`${(((n - 1) * 1000) / (r.ms - r.ttft)).toFixed(1)} tok/s`);
  if (r.usage) parts.push(`prompt ${r.usage.prompt_tokens} tokens`, `completion ${r.usage.completion_tokens} tokens`);
  else parts.push(`${n} tokens so far`);
  if (r.stopped) parts.push('stopped');
  else if (r.finish) parts.push(`finish: ${r.finish}`);
  return parts.join(' · ');
}

// ---- parameters -----------------------------------------------------------------

function num(id) {
  const v = $(id).value.trim();
  return v === '' ? null : Number(v);
}

function params() {
  const p = {
    model: $('p-model').value || undefined,
    temperature: num('p-temperature') ?? 1,
    top_p: num('p-top_p') ?? 1,
    max_tokens: num('p-max_tokens') ?? 128,
  };
  const k = num('p-top_k');
  if (k) p.top_k = k;
  const seed = num('p-seed');
  if (seed !== null) p.seed = seed;
  const stop = $('p-stop').value.split(',').map((s) => s.trim()).filter(Boolean);
  if (stop.length) p.stop = stop;
  return p;
}

// The messages of a conversation as the API takes them (system prompt first).
function apiMessages(msgs) {
  const sys = $('p-system').value.trim();
  const out = sys ? [{ role: 'system', content: sys }] : [];
  for (const m of msgs) if (m.role === 'user' || m.role === 'assistant') out.push({ role: m.role, content: m.content });
  return out;
}

function saveParams() {
  const p = {};
  for (const id of PARAM_IDS) {
    const el = $(`p-${id}`);
    p[id] = el.type === 'checkbox' ? el.checked : el.value;
  }
  localStorage.setItem(PARAMS, JSON.stringify(p));
}

function restoreParams() {
  const p = loadJson(localStorage, PARAMS, {});
  for (const id of PARAM_IDS) {
    const el = $(`p-${id}`);
    if (!(id in p) || id === 'model') continue;
    if (el.type === 'checkbox') el.checked = !!p[id];
    else el.value = p[id];
  }
  return p.model;
}

async function loadModels(wanted) {
  const res = await fetch('/v1/models', { headers: headers(false) });
  if (!res.ok) {
    showAlert(await errorOf(res));
    return;
  }
  const ids = ((await res.json()).data || []).map((m) => m.id);
  for (const [sel, pick] of [['p-model', wanted], ['a-model', ids[0]], ['b-model', ids[1] ?? ids[0]]]) {
    const el = $(sel);
    const keep = el.value || pick;
    el.replaceChildren(...ids.map((id) => new Option(id, id)));
    if (ids.includes(keep)) el.value = keep;
  }
  showAlert('');
}

async function loadUsage() {
  const box = $('usage');
  if (!apiKey()) {
    box.hidden = true; // usage is per key: nothing to show without one
    return;
  }
  let res;
  try {
    res = await fetch('/v1/usage/me', { headers: headers(false) });
  } catch {
    box.hidden = true;
    return;
  }
  if (res.status === 404 || !res.ok) {
    box.hidden = true; // no governance on this server, or no key yet
    return;
  }
  const u = await res.json();
  const dl = $('usage-body');
  dl.replaceChildren();
  const add = (k, v) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dl.append(dt, dd);
  };
  if (u.key_id !== undefined) add('Key', String(u.key_id));
  for (const [label, p] of [['Today', u.today], ['This month', u.month]]) {
    if (!p) continue;
    add(label, `${p.requests ?? 0} requests`);
    add('', `${p.prompt_tokens ?? 0} prompt + ${p.completion_tokens ?? 0} completion tokens`);
    if (p.cost !== undefined) add('', `cost ${Number(p.cost).toFixed(4)}`);
  }
  box.hidden = false;
}

// ---- chat -------------------------------------------------------------------------

let controller = null; // the chat request in flight
let lastRun = null;    // {expertLoad, tokens} of the last reply

function renderConversationList() {
  const ul = $('conv-list');
  ul.replaceChildren();
  for (const c of conversations) {
    const li = document.createElement('li');
    if (c.id === currentId) li.setAttribute('aria-current', 'true');
    const open = document.createElement('button');
    open.type = 'button';
    open.textContent = c.title;
    open.addEventListener('click', () => {
      currentId = c.id;
      saveConversations();
      renderAll();
    });
    const del = document.createElement('button');
    del.type = 'button';
    del.textContent = '×';
    del.setAttribute('aria-label', `Delete conversation ${c.title}`);
    del.addEventListener('click', () => {
      conversations = conversations.filter((x) => x !== c);
      if (currentId === c.id) currentId = conversations[0]?.id ?? null;
      saveConversations();
      renderAll();
    });
    li.append(open, del);
    ul.append(li);
  }
}

function messageElement(m, index) {
  const li = document.createElement('li');
  li.className = `msg ${m.role}${m.error ? ' error' : ''}`;
  li.dataset.role = m.role;
  const who = document.createElement('div');
  who.className = 'who';
  const name = document.createElement('span');
  name.textContent = m.role === 'user' ? 'You' : m.error ? 'Error' : 'Assistant';
  who.append(name);
  if (m.role === 'user' && index !== undefined) {
    const edit = document.createElement('button');
    edit.type = 'button';
    edit.textContent = 'Edit';
    edit.setAttribute('aria-label', 'Edit and resend this message');
    edit.addEventListener('click', () => startEdit(li, index));
    who.append(edit);
  }
  const body = document.createElement('div');
  body.className = 'content md';
  if (m.role === 'assistant' && !m.error) body.innerHTML = renderMarkdown(m.content);
  else body.textContent = m.content;
  const stats = document.createElement('div');
  stats.className = 'stat';
  stats.textContent = m.stats || '';
  li.append(who, body, stats);
  return li;
}

function renderMessages() {
  const conv = current();
  $('messages').replaceChildren(...conv.messages.map((m, i) => messageElement(m, i)));
}

function renderAll() {
  renderConversationList();
  renderMessages();
}

function startEdit(li, index) {
  if (controller) return;
  const conv = current();
  const ta = document.createElement('textarea');
  ta.value = conv.messages[index].content;
  ta.setAttribute('aria-label', 'Edited message');
  const row = document.createElement('div');
  row.className = 'row';
  const save = document.createElement('button');
  save.type = 'button';
  save.textContent = 'Save & send';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.textContent = 'Cancel';
  row.append(save, cancel);
  li.querySelector('.content').replaceChildren(ta, row);
  ta.focus();
  save.addEventListener('click', () => {
    const text = ta.value.trim();
    if (!text) return;
    conv.messages = conv.messages.slice(0, index);
    conv.messages.push({ role: 'user', content: text });
    saveConversations();
    renderMessages();
    runAssistant();
  });
  cancel.addEventListener('click', renderMessages);
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      save.click();
    }
  });
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('regen').disabled = busy;
  $('stop').disabled = !busy;
}

async function runAssistant() {
  const conv = current();
  const wantExperts = $('p-experts').checked;
  const body = {
    ...params(),
    messages: apiMessages(conv.messages),
    stream: true,
    stream_options: { include_usage: true },
  };
  if (wantExperts) {
    body.return_expert_load = true;
    body.logprobs = true; // token strings for the per-token view
  }
  const li = messageElement({ role: 'assistant', content: '' });
  li.dataset.done = '0';
  $('messages').append(li);
  const content = li.querySelector('.content');
  const stats = li.querySelector('.stat');
  controller = new AbortController();
  setBusy(true);
  showAlert('');
  let pending = false;
  let r;
  try {
    r = await streamChat(body, controller.signal, (partial) => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        content.innerHTML = renderMarkdown(partial.text);
        stats.textContent = statsText(partial);
      });
    });
  } catch (e) {
    controller = null;
    setBusy(false);
    li.remove();
    conv.messages.push({ role: 'assistant', content: e.message, error: true });
    showAlert(e.message);
    saveConversations();
    renderMessages();
    return;
  }
  controller = null;
  setBusy(false);
  const msg = { role: 'assistant', content: r.text, stats: statsText(r) };
  conv.messages.push(msg);
  const first = conv.messages.find((m) => m.role === 'user');
  if (first) conv.title = first.content.slice(0, 40); // follows an edited first message
  saveConversations();
  content.innerHTML = renderMarkdown(r.text);
  stats.textContent = msg.stats;
  li.dataset.done = '1';
  renderConversationList();
  lastRun = { expertLoad: r.expertLoad, tokens: r.tokens };
  renderExperts();
  loadUsage();
}

function send() {
  const ta = $('prompt');
  const text = ta.value.trim();
  if (!text || controller) return;
  const conv = current();
  // An error reply is not part of the conversation the model sees.
  conv.messages = conv.messages.filter((m) => !m.error);
  conv.messages.push({ role: 'user', content: text });
  ta.value = '';
  saveConversations();
  renderAll();
  runAssistant();
}

function regenerate() {
  if (controller) return;
  const conv = current();
  while (conv.messages.length && conv.messages[conv.messages.length - 1].role === 'assistant') conv.messages.pop();
  if (!conv.messages.length) return;
  saveConversations();
  renderMessages();
  runAssistant();
}

function stopAll() {
  if (controller) controller.abort();
  for (const c of cmpControllers) c.abort();
}

// ---- experts at work (experts.js draws it) -----------------------------------------

function renderExperts() {
  drawExperts(lastRun, $('p-experts').checked);
}

// ---- compare ----------------------------------------------------------------------

let cmpControllers = [];

async function runPane(side, prompt) {
  const out = $(`${side}-out`);
  const stats = $(`${side}-stats`);
  const base = params();
  const body = {
    ...base,
    model: $(`${side}-model`).value || base.model,
    temperature: num(`${side}-temperature`) ?? base.temperature,
    messages: apiMessages([{ role: 'user', content: prompt }]),
    stream: true,
    stream_options: { include_usage: true },
  };
  delete body.seed;
  const seed = num(`${side}-seed`);
  if (seed !== null) body.seed = seed;
  const ctl = new AbortController();
  cmpControllers.push(ctl);
  out.dataset.done = '0';
  out.replaceChildren();
  stats.textContent = '';
  try {
    const r = await streamChat(body, ctl.signal, (p) => {
      out.innerHTML = renderMarkdown(p.text);
      stats.textContent = statsText(p);
    });
    out.innerHTML = renderMarkdown(r.text);
    out.dataset.text = r.text;
    stats.textContent = `${body.model} · ${statsText(r)}`;
  } catch (e) {
    out.textContent = e.message;
    showAlert(e.message);
  } finally {
    out.dataset.done = '1';
  }
}

async function sendCompare() {
  const prompt = $('cmp-prompt').value.trim();
  if (!prompt || cmpControllers.length) return;
  $('cmp-send').disabled = true;
  $('cmp-stop').disabled = false;
  showAlert('');
  await Promise.all([runPane('a', prompt), runPane('b', prompt)]);
  cmpControllers = [];
  $('cmp-send').disabled = false;
  $('cmp-stop').disabled = true;
}

// ---- code --------------------------------------------------------------------------

let codeLang = 'curl';

function snippetBody() {
  const msgs = current().messages.filter((m) => !m.error);
  let end = msgs.length;
  while (end > 0 && msgs[end - 1].role === 'assistant') end--;
  const body = { ...params(), messages: apiMessages(msgs.slice(0, end)) };
  if (!body.model) delete body.model;
  return body;
}

function renderCode() {
  const base = location.origin;
  const body = snippetBody();
  const text = codeLang === 'curl' ? curlSnippet(base, body) : codeLang === 'python' ? pythonSnippet(base, body) : jsSnippet(base, body);
  $('code-text').textContent = text;
  for (const [id, lang] of [['code-curl', 'curl'], ['code-python', 'python'], ['code-js', 'js']])
    $(id).setAttribute('aria-selected', String(lang === codeLang));
}

// ---- wiring ---------------------------------------------------------------------------

function showView(which) {
  $('view-chat').hidden = which !== 'chat';
  $('view-compare').hidden = which !== 'compare';
  $('tab-chat').setAttribute('aria-pressed', String(which === 'chat'));
  $('tab-compare').setAttribute('aria-pressed', String(which === 'compare'));
  $(which === 'chat' ? 'prompt' : 'cmp-prompt').focus();
}

function enterSends(textarea, submit) {
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
}

function init() {
  $('api-key').value = sessionStorage.getItem(KEY) || '';
  $('api-key').addEventListener('change', () => {
    const k = apiKey();
    if (k) sessionStorage.setItem(KEY, k);
    else sessionStorage.removeItem(KEY);
    loadModels($('p-model').value);
    loadUsage();
  });
  const wanted = restoreParams();
  for (const id of PARAM_IDS) $(`p-${id}`).addEventListener('change', saveParams);

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  enterSends($('prompt'), send);
  $('stop').addEventListener('click', stopAll);
  $('regen').addEventListener('click', regenerate);
  $('new-conv').addEventListener('click', () => {
    currentId = null;
    current();
    saveConversations();
    renderAll();
    $('prompt').focus();
  });
  $('clear-conv').addEventListener('click', () => {
    if (controller) return;
    current().messages = [];
    lastRun = null;
    saveConversations();
    renderAll();
    renderExperts();
  });
  $('experts-part').addEventListener('change', renderExperts);
  $('p-experts').addEventListener('change', renderExperts);

  $('tab-chat').addEventListener('click', () => showView('chat'));
  $('tab-compare').addEventListener('click', () => showView('compare'));
  $('cmp-composer').addEventListener('submit', (e) => {
    e.preventDefault();
    sendCompare();
  });
  enterSends($('cmp-prompt'), sendCompare);
  $('cmp-stop').addEventListener('click', stopAll);

  $('show-code').addEventListener('click', () => {
    renderCode();
    $('code-dialog').showModal();
  });
  for (const [id, lang] of [['code-curl', 'curl'], ['code-python', 'python'], ['code-js', 'js']])
    $(id).addEventListener('click', () => {
      codeLang = lang;
      renderCode();
    });
  $('code-copy').addEventListener('click', () => navigator.clipboard?.writeText($('code-text').textContent).catch(() => {}));
  $('code-close').addEventListener('click', () => $('code-dialog').close());

  $('toggle-side').addEventListener('click', () => {
    const open = $('side').classList.toggle('open');
    $('toggle-side').setAttribute('aria-expanded', String(open));
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && (controller || cmpControllers.length)) {
      e.preventDefault();
      stopAll();
    }
  });

  current();
  renderAll();
  loadModels(wanted).catch((e) => showAlert(`Cannot list the models: ${e.message}`));
  loadUsage();
  $('prompt').focus();
}

// For the browser tests and the curious: the renderer the page uses.
window.moeservePlayground = { renderMarkdown, escapeHtml };
init();
