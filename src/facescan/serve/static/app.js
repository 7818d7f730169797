// facescan's page. Served as /static/app.js: the page's Content-Security-Policy allows no inline script.
// Every text that comes from the server (labels, errors, descriptions, explanations, answers) is
// put into the page as text (textContent / DOM nodes), never parsed as HTML.
// A clip plays from the user's own file (a blob: URL; the server keeps nothing): a canvas over it
// draws the boxes of the analyzed frame nearest the playback time, and each person gets an emotion
// timeline with a playhead.
// A photo is shown only once the browser has decoded it (never a broken-image icon); its captions are
// placed like the annotated files' (annotate.place_captions): beside their boxes, inside the picture,
// off the other faces and captions, shortened when the picture is too small for the full ones.
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const CLIP_SUFFIX = /\.(mp4|mov|m4v|webm|mkv|avi)$/i;
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
                 "#469990", "#808000"];
const EMOTION_COLOURS = { angry: "#d62728", disgust: "#7f9f2a", fear: "#9467bd", happy: "#f2b701",
                          neutral: "#a5aab0", sad: "#1f77b4", surprise: "#17becf", contempt: "#8c564b" };
const TIMELINE_W = 1000, TIMELINE_H = 60;  // an emotion chart's viewBox (stretched to the page's width)
let file = null, lastResult = null, chosen = null, isClip = false, clip = null, clipLimits = null, fileUrl = null;
let seq = 0;          // the latest file choice or request: answers to older ones are dropped
let photoOk = false;  // the chosen photo is decoded by the browser (else it is never shown)
let failed = false;   // the latest request failed: no picture and no results until the next one

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
  clipLimits = m.video_limits || null;
  if (clipLimits) {
    $("fps").placeholder = String(clipLimits.default_fps);
    $("fps").title = `Frames analyzed per second of video; empty: ${clipLimits.default_fps}, fewer for clips ` +
      `over ${clipLimits.max_frames} frames (at most ${clipLimits.max_seconds} s and ${clipLimits.max_upload_mb} MB)`;
  }
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
  isClip = f.type.startsWith("video/") || CLIP_SUFFIX.test(f.name);
  if (fileUrl) URL.revokeObjectURL(fileUrl);
  fileUrl = URL.createObjectURL(f);  // the page shows the user's own file: the server keeps no copy
  seq++; failed = false; photoOk = false;
  clearResults();
  $("stage").hidden = true;  // shown once the browser has decoded the photo (see wire: "load")
  if (isClip) {
    $("photo").removeAttribute("src");
    $("clip").src = fileUrl;
  } else {
    $("clip").removeAttribute("src"); $("clip").load();
    $("photo").src = fileUrl;
  }
  $("clipstage").hidden = !isClip;
  document.querySelectorAll(".photo-only input").forEach((e) => { e.disabled = isClip; });
  $("fpsrow").hidden = !isClip; $("askrow").hidden = isClip;
  $("cardstitle").textContent = isClip ? "People" : "Faces";
  $("run").disabled = false; $("ask").disabled = isClip;
  const mb = f.size / 1e6;
  const limit = clipLimits && isClip ? clipLimits.max_upload_mb : null;
  if (limit && f.size > limit * 1024 * 1024) {
    $("run").disabled = true;
    status(`${f.name} is ${mb.toFixed(1)} MB: clips are limited to ${limit} MB`, true);
  } else {
    status(`${f.name}: ${mb.toFixed(2)} MB — press Analyze`);
  }
}

function form(extra = {}) {
  const fd = new FormData();
  fd.append(isClip ? "video" : "image", file);
  const attrs = [...document.querySelectorAll("input[name=attr]:checked")].map((e) => e.value);
  if (attrs.length) fd.append("attributes", attrs.join(","));
  fd.append("backend", $("backend").value);
  if (isClip) {
    const fps = $("fps").value.trim();
    if (fps) fd.append("fps", fps);  // empty: the server's default (lowered for long clips)
  } else {
    fd.append("describe", $("describe").checked);
    fd.append("explain", $("explain").checked);
  }
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

// ------------------------------------------------------------------------------ photo captions
const LABEL_PX = 12, LABEL_PAD = 3, LABEL_GAP = 3;  // caption text size, padding, gap to its box (CSS px)
let measurer = null;

// Text metrics in CSS pixels for the captions' font (the overlay's own bold font).
function measure(text) {
  if (!measurer) measurer = document.createElement("canvas").getContext("2d");
  measurer.font = `bold ${LABEL_PX}px ${getComputedStyle($("overlay")).fontFamily || "sans-serif"}`;
  return measurer.measureText(text);
}

// The captions one face may get, widest first: one line; two lines; one line per attribute; the number.
const VARIANTS = ["full", "two-line", "stacked", "number"];
function captionVariants(f) {
  const labels = Object.values(f.attributes).map((a) => pretty(a.label));
  const id = `#${f.index}`;
  if (!labels.length) return VARIANTS.map(() => [id]);
  const twoLines = labels.length > 1 ? [`${id} ${labels[0]}`, labels.slice(1).join(", ")] : [`${id} ${labels[0]}`];
  return [[`${id} ${labels.join(", ")}`], twoLines, [id, ...labels], [id]];
}

function overlapArea(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x), h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return Math.max(0, w) * Math.max(0, h);
}

// annotate.place_captions' rule: larger faces first, each caption block goes to the first of below /
// above / right / left of its box (kept inside the picture) that covers no face and no caption placed
// before it; when none is free, to the spot covering least. Its own face counts too (a block pushed
// back inside the picture is not laid over its own face while another spot is free), and a gap of
// `gap` keeps it off its box's outline. Boxes and sizes in the picture's pixels; returns the spots and
// the area they cover (0: no overlap; Infinity: a block larger than the picture).
function placeCaptions(boxes, sizes, width, height, gap) {
  const order = boxes.map((_, i) => i).sort((i, j) => boxes[j].w * boxes[j].h - boxes[i].w * boxes[i].h);
  const placed = [], spots = [];
  let total = 0;
  for (const i of order) {
    const b = boxes[i], { w, h } = sizes[i];
    const candidates = [[b.x, b.y + b.h + gap], [b.x, b.y - h - gap], [b.x + b.w + gap, b.y], [b.x - w - gap, b.y], [b.x, b.y]];
    let best = null, bestCost = Infinity;
    for (const [cx, cy] of candidates) {
      const spot = { x: Math.min(Math.max(0, cx), Math.max(0, width - w)), y: Math.min(Math.max(0, cy), Math.max(0, height - h)), w, h };
      const cost = [...boxes, ...placed].reduce((sum, o) => sum + overlapArea(spot, o), 0);
      if (cost < bestCost - 1e-6) { best = spot; bestCost = cost; }
      if (cost <= 1e-6) break;
    }
    if (w > width || h > height) bestCost = Infinity;  // a caption larger than the picture never fits
    spots[i] = best; placed.push(best); total += bestCost;
  }
  return { spots, cost: total };
}

// Boxes and captions over the shown photo, in the photo's own pixels (the SVG's viewBox); the captions'
// text is LABEL_PX CSS pixels at any display size, so they are placed again when the photo is resized.
function draw(result) {
  const svg = $("overlay");
  svg.replaceChildren();
  svg.dataset.labels = "[]"; svg.dataset.variant = "";
  const scale = $("photo").clientWidth / result.width;  // CSS pixels per photo pixel
  if (!photoOk || !scale) return;
  svg.setAttribute("viewBox", `0 0 ${result.width} ${result.height}`);
  const faces = result.faces;
  const boxes = faces.map((f) => ({ x: f.box.x, y: f.box.y, w: f.box.width, h: f.box.height }));
  const metrics = measure("Hg"), ascent = metrics.fontBoundingBoxAscent || LABEL_PX * 0.9;
  const lineH = Math.ceil(ascent + (metrics.fontBoundingBoxDescent || LABEL_PX * 0.25));
  const variants = faces.map(captionVariants);
  let layout = null, chosenVariant = 0;
  for (let v = 0; v < VARIANTS.length; v++) {  // the longest captions that all fit, else the number alone
    const sizes = variants.map((vs) => ({
      w: (Math.max(...vs[v].map((line) => measure(line).width)) + 2 * LABEL_PAD) / scale,
      h: (vs[v].length * lineH + 2 * LABEL_PAD) / scale }));
    layout = placeCaptions(boxes, sizes, result.width, result.height, LABEL_GAP / scale);
    chosenVariant = v;
    if (layout.cost <= 1e-6) break;
  }
  faces.forEach((f, i) => {
    const b = boxes[i], mark = f.index === chosen ? " chosen" : "";
    const rect = svgEl("rect", { x: b.x, y: b.y, width: b.w, height: b.h, class: "box" + mark });
    rect.dataset.face = f.index;
    svg.appendChild(rect);
  });
  const labels = [];
  faces.forEach((f, i) => {
    const spot = layout.spots[i], lines = variants[i][chosenVariant], mark = f.index === chosen ? " chosen" : "";
    const g = svgEl("g", { class: "caption" + mark });
    g.dataset.face = f.index;
    const title = svgEl("title");
    title.textContent = variants[i][0][0];  // the full caption, on hover, when a shorter one is drawn
    const bg = svgEl("rect", { x: spot.x, y: spot.y, width: spot.w, height: spot.h, rx: 2 / scale, class: "tagbg" + mark });
    const text = svgEl("text", { "font-size": LABEL_PX / scale, class: "tag" + mark });
    text.dataset.face = f.index;
    text.dataset.caption = variants[i][0][0];
    lines.forEach((line, k) => {
      const span = svgEl("tspan", { x: spot.x + LABEL_PAD / scale, y: spot.y + (LABEL_PAD + k * lineH + ascent) / scale });
      span.textContent = line;  // text, never HTML
      text.append(span);
    });
    g.append(title, bg, text);
    svg.appendChild(g);
    labels.push({ face: f.index, x: spot.x, y: spot.y, w: spot.w, h: spot.h });
  });
  svg.dataset.labels = JSON.stringify(labels);  // what is drawn, for tests and tools
  svg.dataset.variant = VARIANTS[chosenVariant];
}

function redrawPhoto() { if (!isClip && lastResult && lastResult.faces) draw(lastResult); }

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

// The download link always holds the results shown: withdrawn when a request starts or fails.
function withdrawDownload() {
  const a = $("download");
  if (a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
  a.removeAttribute("href"); a.hidden = true;
}

function offerDownload(result) {
  withdrawDownload();
  const blob = new Blob([JSON.stringify(result, null, 2)], { type: "application/json" });
  const a = $("download");
  a.href = URL.createObjectURL(blob); a.hidden = false;
  a.download = (file ? file.name.replace(/\.[^.]*$/, "") : "facescan") + ".facescan.json";
}

// No results, no answer, no download (the picture itself is left as it is).
function clearResults() {
  lastResult = null; chosen = null; clip = null;
  $("overlay").replaceChildren(); $("overlay").dataset.labels = "[]";
  $("cards").replaceChildren();
  $("answer").textContent = ""; $("answer").hidden = true; delete $("answer").dataset.status;
  $("timelines").hidden = true; $("timelines").replaceChildren();
  withdrawDownload();
  drawClip();
}

// A request failed: its message, and nothing of the earlier picture or results.
function fail(message) {
  failed = true;
  clearResults();
  $("stage").hidden = true;
  status(message, true);
}

function show(result) {
  lastResult = result;
  draw(result); cards(result);
  offerDownload(result);
}

// ---------------------------------------------------------------------------------------- clips
const trackColour = (id) => (id == null ? "#c8c8c8" : PALETTE[Math.abs(id - 1) % PALETTE.length]);

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function swatch(colour) {
  const s = el("span", { className: "swatch" });
  s.style.background = colour;  // CSSOM: allowed by the CSP
  return s;
}

// The index of the value in ascending `times` nearest to t.
function nearest(times, t) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] < t) lo = mid + 1; else hi = mid;
  }
  return lo > 0 && Math.abs(times[lo - 1] - t) <= Math.abs(times[lo] - t) ? lo - 1 : lo;
}

function medianStep(times) {
  const d = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  return d.length ? d[d.length >> 1] : 0.2;
}

function showClip(result) {
  const times = result.frames.map((f) => f.time_s);
  const step = medianStep(times);
  const last = times.length ? times[times.length - 1] + step : 1;
  const emotions = new Map(result.tracks.map((t) => [t.track_id, {
    times: t.emotion_timeline.map((p) => p.time_s), points: t.emotion_timeline }]));
  clip = { result, times, step, emotions, duration: Math.max(result.duration_s || 0, last) || 1 };
  lastResult = result;
  timelines(result); trackCards(result); drawClip();
  offerDownload(result);
}

// The analyzed frame nearest the playback time (none when the nearest is more than a step away).
function frameAt(t) {
  if (!clip || !clip.times.length) return null;
  const i = nearest(clip.times, t);
  return Math.abs(clip.times[i] - t) <= Math.max(clip.step, 0.05) ? clip.result.frames[i] : null;
}

function emotionAt(trackId, t) {
  const e = clip.emotions.get(trackId);
  if (!e || !e.times.length) return null;
  const i = nearest(e.times, t);
  return Math.abs(e.times[i] - t) <= 2 * clip.step ? e.points[i].label : null;
}

// Where the picture is inside the <video> element (object-fit: contain), in CSS pixels.
function pictureRect(v) {
  const w = v.clientWidth, h = v.clientHeight;
  const vw = v.videoWidth || clip.result.width, vh = v.videoHeight || clip.result.height;
  const s = Math.min(w / vw, h / vh);
  return { x: (w - vw * s) / 2, y: (h - vh * s) / 2, w: vw * s, h: vh * s };
}

function drawClip() {
  const v = $("clip"), c = $("clipoverlay");
  const dpr = window.devicePixelRatio || 1, w = v.clientWidth, h = v.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
  }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (!clip || !w || !h) { c.dataset.time = ""; c.dataset.boxes = "[]"; return; }
  const t = v.currentTime, ff = frameAt(t), r = pictureRect(v);
  const sx = r.w / clip.result.width, sy = r.h / clip.result.height;
  const drawn = [];
  for (const f of ff ? ff.faces : []) {
    const b = f.box, x = r.x + b.x * sx, y = r.y + b.y * sy, bw = b.width * sx, bh = b.height * sy;
    const colour = trackColour(f.track_id);
    ctx.strokeStyle = colour; ctx.lineWidth = f.track_id == null ? 1.5 : 3;
    ctx.setLineDash(f.track_id == null ? [4, 3] : []);
    ctx.strokeRect(x, y, bw, bh);
    if (f.track_id != null) {
      const emotion = emotionAt(f.track_id, t);
      const text = `#${f.track_id}` + (emotion ? " " + pretty(emotion) : "");
      const fs = Math.round(Math.max(11, Math.min(16, bw / 5)));
      ctx.font = `bold ${fs}px system-ui, sans-serif`;
      const tw = ctx.measureText(text).width + 8, ty = y - fs - 6 >= 0 ? y - fs - 6 : y + bh;
      ctx.fillStyle = colour; ctx.fillRect(x - 1.5, ty, tw, fs + 6);
      ctx.fillStyle = "#fff"; ctx.textBaseline = "top"; ctx.fillText(text, x + 3, ty + 3);
    }
    drawn.push({ track: f.track_id, x: Math.round(b.x), y: Math.round(b.y), w: Math.round(b.width), h: Math.round(b.height) });
  }
  c.dataset.time = ff ? String(ff.time_s) : "";  // what is drawn, for tests and tools
  c.dataset.boxes = JSON.stringify(drawn);
  const px = (Math.min(t, clip.duration) / clip.duration) * TIMELINE_W;
  document.querySelectorAll("#timelines line.playhead").forEach((l) => { l.setAttribute("x1", px); l.setAttribute("x2", px); });
}

let frameRequest = 0;
function playLoop() {
  drawClip();
  const v = $("clip");
  frameRequest = v.paused || v.ended ? 0 : requestAnimationFrame(playLoop);
}

// Each label's band of a stacked area chart of a person's smoothed emotion probabilities over the clip.
function emotionChart(track, labels) {
  const { duration, step } = clip;
  const svg = svgEl("svg", { viewBox: `0 0 ${TIMELINE_W} ${TIMELINE_H}`, preserveAspectRatio: "none",
                             class: "tlchart", role: "img" });
  svg.setAttribute("aria-label", `person #${track.track_id}: ${labels.length ? "emotion over time" : "when seen"}`);
  svg.append(svgEl("rect", { x: 0, y: 0, width: TIMELINE_W, height: TIMELINE_H, class: "tlbg" }));
  const x = (t) => (Math.max(0, Math.min(t, duration)) / duration) * TIMELINE_W;
  const y = (p) => TIMELINE_H * (1 - p);
  // without emotions (not asked for), the frames the person is seen in: a band in their colour
  const points = track.emotion_timeline.length ? track.emotion_timeline
    : clip.result.frames.filter((f) => f.faces.some((face) => face.track_id === track.track_id))
      .map((f) => ({ time_s: f.time_s, probabilities: { seen: 1 } }));
  const colours = labels.length ? labels.map((l, k) => EMOTION_COLOURS[l] || PALETTE[k % PALETTE.length])
    : [trackColour(track.track_id)];
  const segments = [];  // runs of points without a gap (a person out of view is blank)
  for (const p of points) {
    const seg = segments[segments.length - 1];
    if (seg && p.time_s - seg[seg.length - 1].time_s <= 2.5 * step) seg.push(p); else segments.push([p]);
  }
  for (const seg of segments) {
    const last = seg[seg.length - 1];  // each point stands for the time to the next analyzed frame
    const pts = [...seg, { ...last, time_s: last.time_s + step }];
    let lower = pts.map(() => 0);
    (labels.length ? labels : ["seen"]).forEach((label, k) => {
      const upper = pts.map((p, i) => lower[i] + (p.probabilities[label] || 0));
      const top = pts.map((p, i) => `${x(p.time_s).toFixed(1)},${y(upper[i]).toFixed(1)}`);
      const bottom = pts.map((p, i) => `${x(p.time_s).toFixed(1)},${y(lower[i]).toFixed(1)}`).reverse();
      const band = svgEl("polygon", { points: [...top, ...bottom].join(" "), class: "band", fill: colours[k] });
      band.dataset.label = label;
      svg.append(band);
      lower = upper;
    });
  }
  svg.append(svgEl("line", { x1: 0, x2: 0, y1: 0, y2: TIMELINE_H, class: "playhead" }));
  svg.addEventListener("click", (e) => {  // click a moment to see it
    const box = svg.getBoundingClientRect();
    $("clip").currentTime = ((e.clientX - box.left) / box.width) * duration;
  });
  return svg;
}

function timelines(result) {
  const root = $("timelines");
  root.replaceChildren();
  root.hidden = false;
  if (!result.tracks.length) { root.append(el("p", { className: "muted", text: "No person was tracked in this clip." })); return; }
  const labels = [];
  for (const t of result.tracks) for (const p of t.emotion_timeline) for (const l of Object.keys(p.probabilities)) {
    if (!labels.includes(l)) labels.push(l);
  }
  root.append(el("h3", { text: labels.length ? "Emotion over time" : "When each person is seen" }));
  for (const t of result.tracks) {
    const share = t.dominant_emotion ? t.emotion_shares[t.dominant_emotion] : null;
    const summary = `${t.first_time_s.toFixed(1)}–${t.last_time_s.toFixed(1)} s` +
      (share != null ? ` · mostly ${pretty(t.dominant_emotion)} (${Math.round(100 * share)}%)` : "");
    const row = el("div", { className: "timeline" },
                   el("div", { className: "tlhead" }, swatch(trackColour(t.track_id)), el("b", { text: `#${t.track_id}` }),
                      el("span", { text: summary })), emotionChart(t, labels));
    row.dataset.track = t.track_id;
    root.append(row);
  }
  root.append(el("div", { className: "axis" }, el("span", { text: "0 s" }), el("span", { text: `${clip.duration.toFixed(1)} s` })));
  if (labels.length) {
    root.append(el("div", { className: "legend" },
                   ...labels.map((l, k) => el("span", {}, swatch(EMOTION_COLOURS[l] || PALETTE[k % PALETTE.length]), " " + pretty(l)))));
  }
}

function trackCards(result) {
  const root = $("cards");
  root.replaceChildren();
  if (!result.tracks.length) root.textContent = "No person tracked.";
  for (const t of result.tracks) {
    const card = el("div", { className: "card person" },
                    el("h3", {}, swatch(trackColour(t.track_id)), ` Person #${t.track_id}`));
    card.style.borderLeftColor = trackColour(t.track_id);
    card.dataset.track = t.track_id;
    card.append(el("div", { className: "attr", text: `seen ${t.first_time_s.toFixed(1)}–${t.last_time_s.toFixed(1)} s, ${t.n_frames} frames` }));
    for (const [name, a] of Object.entries(t.attributes)) card.append(...attributeRows(name, a));
    root.appendChild(card);
  }
}

function clipStatus(result) {
  const s = result.sampling || {};
  const rate = s.fps ? `${s.fps} frames/s` : s.every ? `every ${s.every} frames` : "every frame";
  const warn = result.warnings && result.warnings.length ? ` Warning: ${result.warnings.join("; ")}` : "";
  const play = $("clip").error ? "this browser cannot play the clip, so no boxes are drawn over it; the people " +
    "and their timelines are below." : "play the clip.";
  return `${result.tracks.length} person(s) tracked in ${result.frames_analyzed} analyzed frames (${rate}) — ${play}${warn}`;
}

// One answered value as words: a label, a list of colours, or an object's known fields.
function answerValue(v) {
  if (v === null || v === undefined || v === "unknown") return "";
  if (Array.isArray(v)) return v.map(String).join("/");
  if (typeof v === "object") {
    if ("label" in v) return pretty(v.label);
    return Object.entries(v).map(([k, x]) => [k, answerValue(x)]).filter(([, x]) => x).map(([k, x]) => `${k} ${x}`).join(", ");
  }
  return String(v);
}

function answerText(a) {
  const lines = [`${a.status}: ${a.question}`];
  if (a.face !== null) {
    const parts = Object.entries(a.answer || {}).filter(([k]) => k !== "explanation")
      .map(([k, v]) => [pretty(k), answerValue(v)]).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`);
    lines.push(`person #${a.face}: ${parts.join("; ")}`);
    if (a.answer && a.answer.explanation) lines.push(`(the expression's explanation is in card #${a.face})`);
  }
  a.reasons.forEach((r) => lines.push("why: " + r));
  a.candidates.forEach((c) => lines.push("candidate " + c.summary));
  return lines.join("\n");
}

// A new request: nothing of the last one is offered meanwhile; the chosen picture is shown again.
function start(text) {
  const mine = ++seq;
  failed = false;
  clearResults();
  $("stage").hidden = isClip || !photoOk;
  status(text);
  return mine;
}

async function analyze() {
  const mine = start(isClip ? "Analyzing the clip…" : "Analyzing…");
  try {
    const result = await post("/v1/analyze", form());
    if (mine !== seq) return;  // another file or request came meanwhile
    if (isClip) { showClip(result); status(clipStatus(result)); } else { show(result); status(photoStatus(result)); }
  } catch (e) { if (mine === seq) fail(e.message); }
}

function photoStatus(result) {
  const seen = photoOk ? "" : " This browser cannot show the picture, so the faces are only listed.";
  return `${result.faces.length} face(s) found.${seen}`;
}

// The answer sits right under the question, in view.
function showAnswer(a) {
  const box = $("answer");
  box.textContent = answerText(a);
  box.dataset.status = a.status;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

async function ask() {
  const q = $("question").value.trim();
  if (!q) { status("Type a question first.", true); return; }
  const mine = start("Asking…");
  try {
    const out = await post("/v1/ask", form({ question: q }));
    if (mine !== seq) return;
    const a = out.answer;
    chosen = a.face;
    show(out.result);
    showAnswer(a);
    status(a.status === "answered" ? `Person #${a.face} is highlighted.` : a.status);
  } catch (e) { if (mine === seq) fail(e.message); }
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
  $("question").addEventListener("keydown", (e) => { if (e.key === "Enter" && !$("ask").disabled) ask(); });
  const photo = $("photo");
  photo.addEventListener("load", () => {  // decoded: now it may be shown (never a broken-image icon)
    if (isClip || !photo.getAttribute("src")) return;
    photoOk = true;
    $("stage").hidden = failed;
    redrawPhoto();
  });
  photo.addEventListener("error", () => {
    if (isClip || !photo.getAttribute("src")) return;
    photoOk = false; $("stage").hidden = true;
    if ($("status").textContent.endsWith("press Analyze")) status(`${file.name}: this browser cannot show it as a picture — press Analyze to send it anyway`);
  });
  new ResizeObserver(redrawPhoto).observe(photo);
  const v = $("clip");
  v.addEventListener("play", () => { if (!frameRequest) frameRequest = requestAnimationFrame(playLoop); });
  for (const name of ["seeked", "timeupdate", "loadedmetadata", "pause", "ended"]) v.addEventListener(name, drawClip);
  v.addEventListener("error", () => {
    if (isClip && !clip && $("status").textContent.endsWith("press Analyze")) status(`${file.name}: this browser cannot play it, but it can still be analyzed — press Analyze`);
  });
  new ResizeObserver(drawClip).observe(v);
  init().catch((e) => status("Cannot reach the server: " + e.message, true));
}

wire();  // the script is deferred: the document is parsed by now
