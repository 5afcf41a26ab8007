// Experts at work: the layer x expert heat map of a reply's expert_load (the
// server's "return_expert_load" field, docs/SERVING.md) and the per-token view
// (each generated token's experts in every layer, on hover or focus). Text
// goes in through textContent only.

const $ = (id) => document.getElementById(id);


function heatColor(frac) {
  // white -> deep blue
  const r = Math.round(255 - frac * (255 - 11));
  const g = Math.round(255 - frac * (255 - 87));
  const b = Math.round(255 - frac * (255 - 208));
  return `rgb(${r}, ${g}, ${b})`;
}

// run: {expertLoad, tokens} of the last reply (tokens: the text of each
// generated token, from the stream's logprobs); shown: the user wants the view.
export function drawExperts(run, shown) {
  const box = $('experts');
  const load = run && run.expertLoad;
  if (!load || !load.layers || !shown) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const part = $('experts-part').value;
  const L = load.layers;
  const E = load.experts;
  const table = [];
  let tokens = 0;
  for (let l = 0; l < L; l++) {
    table.push([]);
    for (let e = 0; e < E; e++) {
      const p = load.prompt[l][e];
      const c = load.completion[l][e];
      table[l].push(part === 'prompt' ? p : part === 'completion' ? c : p + c);
    }
  }
  if (part !== 'completion') tokens += load.prompt_tokens;
  if (part !== 'prompt') tokens += load.completion_tokens;
  const max = Math.max(1, ...table.flat());
  const total = table.flat().reduce((a, b) => a + b, 0);
  const hm = $('heatmap');
  hm.style.gridTemplateColumns = `auto repeat(${E}, minmax(2rem, 1fr))`;
  // Rows are display: contents, so the cells sit in the grid and the ARIA table keeps its rows.
  const rows = [];
  const row = () => {
    const r = document.createElement('div');
    r.className = 'hrow';
    r.setAttribute('role', 'row');
    rows.push(r);
    return r;
  };
  const head = (text, role = 'columnheader') => {
    const d = document.createElement('div');
    d.className = 'hhead';
    d.setAttribute('role', role);
    d.textContent = text;
    return d;
  };
  let cells = row();
  cells.append(head('layer \\ expert'));
  for (let e = 0; e < E; e++) cells.append(head(`e${e}`));
  for (let l = 0; l < L; l++) {
    cells = row();
    cells.append(head(`L${l}`, 'rowheader'));
    for (let e = 0; e < E; e++) {
      const v = table[l][e];
      const d = document.createElement('div');
      d.className = 'hcell';
      d.setAttribute('role', 'cell');
      d.dataset.count = String(v);
      d.title = `layer ${l}, expert ${e}: ${v} tokens`;
      d.textContent = String(v);
      d.style.backgroundColor = heatColor(v / max);
      if (v / max > 0.55) d.classList.add('hot');
      cells.append(d);
    }
  }
  hm.replaceChildren(...rows);
  hm.dataset.total = String(total);
  hm.dataset.tokens = String(tokens);
  $('experts-total').textContent = `${tokens} tokens × top-${load.top_k} × ${L} layers = ${total} routings`;
  $('experts-note').textContent = `${L} layers × ${E} experts, top-${load.top_k}`;

  // Per token: the completion tokens that ran through the model (all but the last).
  const strip = $('token-strip');
  const routes = load.completion_routes || [];
  const toks = run.tokens || [];
  const spans = [];
  for (let i = 0; i < routes.length; i++) {
    const s = document.createElement('span');
    s.className = 'tok';
    s.tabIndex = 0;
    s.textContent = toks[i] !== undefined ? toks[i] : `#${i}`;
    const desc = routes[i].map((ks, l) => `L${l}: ${ks.map((e) => `e${e}`).join(' ')}`).join(' · ');
    s.setAttribute('aria-label', `token ${i}: ${s.textContent}; experts ${desc}`);
    const show = () => {
      $('token-routes').textContent = `${JSON.stringify(s.textContent)} → ${desc}`;
    };
    s.addEventListener('mouseenter', show);
    s.addEventListener('focus', show);
    spans.push(s);
  }
  strip.replaceChildren(...spans);
  $('token-routes').textContent = routes.length ? '' : 'No per-token routing for this reply.';
}
