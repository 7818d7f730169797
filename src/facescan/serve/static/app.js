// facescan's page. Served as /static/app.js: the page's Content-Security-Policy allows no inline script.
// Every text that comes from the server (labels, errors, descriptions, explanations, answers) is
// put into the page as text (textContent / DOM nodes), never parsed as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let file = null, lastResult = null, chosen = null;

// An element with attributes and children; strings become text nodes (never HTML).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "className") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function headers() {
  const t = $("token").value.trim();
  return t ? { Authorization: "Bearer " + t } : {};
}
function status(text, error = false) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

async function init() {
  const health = await (await fetch("/healthz")).json();
  $("tokenrow").hidden = !health.auth_required;
  const r = await fetch("/v1/models", { headers: headers() });
  if (!r.ok) { status("Enter the server's token to load its models.", true); return; }
  const m = await r.json();
  $("backend").replaceChildren();
  for (const b of m.backends) $("backend").add(new Option(b.name, b.name, b.name === m.default));
  $("attrs").querySelectorAll("label").forEach((e) => e.remove());
  for (const a of m.attributes) {
    const box = el("input", { type: "checkbox", name: "attr", value: a });
    box.checked = m.default_attributes.includes(a);
    $("attrs").appendChild(el("label", {}, box, " " + a));
  }
}

function choose(f) {
  if (!f) return;
  file = f;
  $("photo").src = URL.createObjectURL(f);
  $("stage").hidden = false;
  $("run").disabled = false; $("ask").disabled = false;
  $("overlay").replaceChildren(); $("cards").replaceChildren(); $("answer").textContent = "";
  status(`${f.name}: ${(f.size / 1e6).toFixed(2)} MB — press Analyze`);
}

function form(extra = {}) {
  const fd = new FormData();
  fd.append("image", file);
  const attrs = [...document.querySelectorAll("input[name=attr]:checked")].map((e) => e.value);
  if (attrs.length) fd.append("attributes", attrs.join(","));
  fd.append("backend", $("backend").value);
  fd.append("describe", $("describe").checked);
  fd.append("explain", $("explain").checked);
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  return fd;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", body, headers: headers() });
  const data = await r.json().catch(() => ({ detail: r.statusText }));
  if (!r.ok) throw new Error(`${r.status}: ${data.detail}`);
  return data;
}

function pretty(label) { return label == null ? "invalid" : String(label).replaceAll("_", " "); }

function draw(result) {
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${result.width} ${result.height}`);
  const size = Math.max(result.width, result.height) / 45;
  svg.replaceChildren();
  for (const f of result.faces) {
    const b = f.box;
    const rect = document.createElementNS(SVG, "rect");
    Object.entries({ x: b.x, y: b.y, width: b.width, height: b.height }).forEach(([k, v]) => rect.setAttribute(k, v));
    rect.setAttribute("class", "box" + (f.index === chosen ? " chosen" : ""));
    rect.dataset.face = f.index;
    svg.appendChild(rect);
    const text = document.createElementNS(SVG, "text");
    const fs = Math.min(size, b.width / 4.5);  // neighbours' captions stay apart in group photos
    text.setAttribute("x", b.x); text.setAttribute("y", Math.max(fs, b.y - fs / 3));
    text.setAttribute("font-size", fs); text.setAttribute("class", "tag");
    const top = Object.values(f.attributes).map((a) => pretty(a.label)).join(", ");
    text.textContent = `#${f.index} ${top}`;
    text.dataset.face = f.index;
    svg.appendChild(text);
  }
}

function bar(label, p) {
  const fill = el("span", { className: "fill" });
  fill.style.width = `${(100 * p).toFixed(1)}%`;  // CSSOM, not a style attribute: allowed by the CSP
  return el("div", { className: "bar" }, el("span", { text: pretty(label) }),
            el("span", { className: "track" }, fill), el("span", { text: Number(p).toFixed(2) }));
}

function attributeRows(name, a) {
  const rows = [el("div", { className: "attr" }, el("b", { text: name }), `: ${pretty(a.label)}`,
                   a.error ? " — " + a.error : null)];
  const probs = Object.entries(a.probabilities || {}).sort((x, y) => y[1] - x[1]).slice(0, 4);
  for (const [lab, p] of probs) rows.push(bar(lab, p));
  return rows;
}

function describeText(d) {
  const posture = Object.entries(d.posture || {}).map(([k, v]) => k + " " + v).join(", ");
  return `clothing ${(d.clothing_colours || []).join("/") || "?"}; hair ${d.hair_length || ""} ` +
         `${d.hair_colour || "?"}; ${d.eyewear}; ${posture}`;
}

function cards(result) {
  const root = $("cards");
  root.replaceChildren();
  if (!result.faces.length) root.textContent = "No face found.";
  for (const f of result.faces) {
    const card = el("div", { className: "card" + (f.index === chosen ? " chosen" : "") },
                    el("h3", { text: `#${f.index}` }));
    card.dataset.face = f.index;
    for (const [name, a] of Object.entries(f.attributes)) card.append(...attributeRows(name, a));
    if (f.description && !f.description.error) card.append(el("div", { className: "attr", text: describeText(f.description) }));
    if (f.explanation) card.append(el("pre", { className: "expl", text: f.explanation }));
    root.appendChild(card);
  }
}

function show(result) {
  lastResult = result;
  draw(result); cards(result);
  const blob = new Blob([JSON.stringify(result, null, 2)], { type: "application/json" });
  $("download").href = URL.createObjectURL(blob); $("download").hidden = false;
}

function answerText(a) {
  const lines = [`${a.status}: ${a.question}`];
  const value = (v) => (typeof v === "object" && v && "label" in v ? pretty(v.label) : JSON.stringify(v));
  if (a.face !== null) lines.push(`person #${a.face}: ` + Object.entries(a.answer).map(([k, v]) => `${k} ${value(v)}`).join("; "));
  a.reasons.forEach((r) => lines.push("why: " + r));
  a.candidates.forEach((c) => lines.push("candidate " + c.summary));
  return lines.join("\n");
}

async function analyze() {
  status("Analyzing…"); chosen = null; $("answer").textContent = "";
  try {
    const result = await post("/v1/analyze", form());
    show(result);
    status(`${result.faces.length} face(s) found.`);
  } catch (e) { status(e.message, true); }
}

async function ask() {
  const q = $("question").value.trim();
  if (!q) { status("Type a question first.", true); return; }
  status("Asking…");
  try {
    const out = await post("/v1/ask", form({ question: q }));
    const a = out.answer;
    chosen = a.face;
    show(out.result);
    $("answer").textContent = answerText(a);
    $("answer").dataset.status = a.status;
    status(a.status === "answered" ? `Person #${a.face} is highlighted.` : a.status);
  } catch (e) { status(e.message, true); }
}

function wire() {
  $("drop").addEventListener("click", () => $("file").click());
  $("drop").addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", (e) => choose(e.target.files[0]));
  $("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
  $("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
  $("drop").addEventListener("drop", (e) => { e.preventDefault(); $("drop").classList.remove("over"); choose(e.dataTransfer.files[0]); });
  $("token").addEventListener("change", init);
  $("run").addEventListener("click", analyze);
  $("ask").addEventListener("click", ask);
  init().catch((e) => status("Cannot reach the server: " + e.message, true));
}

wire();  // the script is deferred: the document is parsed by now
