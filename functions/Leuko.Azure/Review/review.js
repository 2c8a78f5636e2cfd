// The review page: calls the HTTP API of this origin (leuko serve or the function app) with the client key given
// at sign-in, kept in sessionStorage. No framework, nothing fetched from elsewhere.
"use strict";

const API = "/api";
const KEY = "leukoApiKey";
const KEYS = "123456789abcdefghijklmnopqrstuvwxyz";
const $ = id => document.getElementById(id);

let key = sessionStorage.getItem(KEY);
let me = null;
let sheet = null;
let current = null;
let queue = Promise.resolve();
const annotated = new Map();
const observer = new IntersectionObserver(entries => {
  for (const entry of entries) {
    if (entry.isIntersecting) {
      observer.unobserve(entry.target);
      loadImage(entry.target, entry.target.dataset.src);
    }
  }
}, { rootMargin: "300px" });

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function call(path, options = {}) {
  const response = await fetch(API + path, { ...options, headers: { "x-functions-key": key || "", ...(options.headers || {}) } });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { const problem = await response.json(); detail = problem.detail || problem.title || detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return response;
}

const json = async (path, options) => (await call(path, options)).json();

// Images need the key too: fetched with it, shown from a blob URL (the key never goes into a URL).
async function loadImage(img, path) {
  try {
    const blob = await (await call(path)).blob();
    img.src = URL.createObjectURL(blob);
  } catch (e) {
    img.alt = `not loaded: ${e.message}`;
  }
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "class") e.className = v;
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

const label = c => c === "NOT_A_CELL" ? "not a cell" : c.toLowerCase().replace(/_/g, " ");
const short = c => c === "NOT_A_CELL" ? "none" : c.slice(0, 4).toLowerCase();
const percent = x => `${Math.round(x * 10) / 10}`;
const when = t => t ? new Date(t).toLocaleString() : "";

// Sign-in -----------------------------------------------------------------------------------------------------------

async function signIn() {
  try {
    me = await json("/whoami");
  } catch (e) {
    const tried = key;
    sessionStorage.removeItem(KEY);
    key = null;
    showKeyForm(!tried && e.status === 401 ? "" : e.status === 401 || e.status === 403 ? `Not signed in: ${e.message}` : e.message);
    return;
  }
  $("key-form").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `Signed in as ${me.name} (${me.roles.join(", ")})`;
  $("who").dataset.client = me.name;
  route();
}

function showKeyForm(error) {
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("key-form").hidden = false;
  $("key-error").textContent = error || "";
  $("key").focus();
}

$("key-form").addEventListener("submit", e => {
  e.preventDefault();
  key = $("key").value.trim();
  sessionStorage.setItem(KEY, key);
  $("key").value = "";
  signIn();
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  key = null;
  me = null;
  showKeyForm();
});

// Routing: #image/ID, #batch/ID, or the list -----------------------------------------------------------------------

window.addEventListener("hashchange", () => me && route());

function route() {
  const [kind, id] = location.hash.slice(1).split("/");
  if ((kind === "image" || kind === "batch") && id) openSheet(kind, id);
  else openList();
}

async function openList() {
  $("sheet-view").hidden = true;
  $("list-view").hidden = false;
  let list;
  try {
    list = await json("/reviews");
  } catch (e) {
    return failed(e);
  }
  const signed = i => i.signedOffBy ? `${i.signedOffBy}, ${when(i.signedOffAt)}` : "";
  $("batches").tBodies[0].replaceChildren(...list.batches.map(b => el("tr", { dataset: { id: b.id } },
    el("td", {}, el("a", { href: `#batch/${b.id}` }, b.archive)), el("td", {}, b.status), el("td", { class: "n" }, `${b.images}`),
    el("td", { class: "n" }, `${b.cells}`), el("td", { class: "n needs-review" }, `${b.needsReview}`), el("td", { class: "n" }, `${b.reclassified}`),
    el("td", { class: "signed" }, signed(b)))));
  $("images").tBodies[0].replaceChildren(...list.images.map(i => el("tr", { dataset: { id: i.id } },
    el("td", {}, el("a", { href: `#image/${i.id}` }, i.source)), el("td", {}, i.status), el("td", { class: "n" }, `${i.cells}`),
    el("td", { class: "n needs-review" }, `${i.needsReview}`), el("td", { class: "n" }, `${i.reclassified}`), el("td", { class: "signed" }, signed(i)))));
}

function failed(e) {
  if (e.status === 401 || e.status === 403) return showKeyForm(e.message);
  $("message").textContent = e.message;
}

// One image or batch: the grid by class, the field, the differential -----------------------------------------------

async function openSheet(kind, id) {
  $("list-view").hidden = true;
  $("sheet-view").hidden = false;
  $("message").textContent = "";
  $("grid").replaceChildren();
  const started = performance.now();
  try {
    sheet = await json(`/${kind === "image" ? "images" : "batches"}/${id}/review`);
  } catch (e) {
    return failed(e);
  }
  $("sheet-title").textContent = sheet.source;
  $("sheet-status").textContent = sheet.status;
  renderPalette();
  renderGrid();
  renderTotals(sheet.totals);
  const first = $("grid").querySelector(".tile");
  if (first) select(first, false);
  else showField(sheet.images[0], null);
  document.body.dataset.gridMs = `${Math.round(performance.now() - started)}`;
  document.body.dataset.ready = `${kind}/${id}`;
}

function canChange() {
  return me && me.canReview && sheet && !sheet.totals.signedOffBy;
}

function renderPalette() {
  $("palette").replaceChildren(...sheet.classes.map((c, i) => el("button", {
    type: "button", dataset: { class: c, key: KEYS[i] }, disabled: !canChange(), title: `Move the selected cell to ${label(c)} (key ${KEYS[i]})`,
  }, el("kbd", {}, KEYS[i]), label(c))));
}

// Flagged cells first, then the least sure.
const order = (a, b) => (b.needsReview - a.needsReview) || (a.confidence - b.confidence);

function renderGrid() {
  const byClass = new Map(sheet.classes.map(c => [c, []]));
  for (const cell of sheet.cells) (byClass.get(cell.reviewedClass) || byClass.set(cell.reviewedClass, []).get(cell.reviewedClass)).push(cell);
  const groups = [];
  for (const [c, cells] of byClass) {
    cells.sort(order);
    const tiles = el("div", { class: "tiles", dataset: { class: c }, role: "group", ariaLabel: label(c) }, ...cells.map(tile));
    groups.push(el("section", { class: "group", dataset: { class: c } }, el("h3", {}, label(c), " ", el("span", { class: "n" }, `${cells.length}`)), tiles));
  }
  $("grid").replaceChildren(...groups);
  for (const img of $("grid").querySelectorAll("img[data-src]")) observer.observe(img);
}

function tile(cell) {
  const t = el("figure", {
    class: "tile" + (cell.needsReview ? " review" : "") + (cell.reviewedClass !== cell.class ? " reviewed" : ""),
    tabIndex: -1, role: "button",
    dataset: { image: cell.imageId, index: `${cell.index}`, class: cell.reviewedClass, original: cell.class, needsReview: `${cell.needsReview}`, confidence: `${cell.confidence}` },
  },
  el("img", { alt: `cell ${cell.index}`, width: 74, height: 74, dataset: { src: cell.crop.slice(API.length) } }),
  el("figcaption", {}, el("span", { class: "confidence" }, `${Math.round(cell.confidence * 100)}%`), el("span", { class: "was", title: `automatic: ${label(cell.class)}` }, cell.reviewedClass !== cell.class ? `was ${short(cell.class)}` : "")));
  t.cell = cell;
  t.setAttribute("aria-label", `${label(cell.reviewedClass)}, ${Math.round(cell.confidence * 100)}% sure${cell.needsReview ? ", needs review" : ""}`);
  return t;
}

function tiles() { return [...$("grid").querySelectorAll(".tile")]; }

function select(t, focus = true) {
  if (current) { current.classList.remove("current"); current.tabIndex = -1; }
  current = t;
  t.classList.add("current");
  t.tabIndex = 0;
  if (focus) t.focus();
  showField(sheet.images.find(i => i.id === t.cell.imageId), t.cell);
}

function showField(image, cell) {
  if (!image) return;
  const img = $("annotated");
  if (img.dataset.image !== image.id) {
    img.dataset.image = image.id;
    img.removeAttribute("src");
    if (!annotated.has(image.id)) annotated.set(image.id, call(image.annotated.slice(API.length)).then(r => r.blob()).then(b => URL.createObjectURL(b)).catch(() => ""));
    annotated.get(image.id).then(url => { if (img.dataset.image === image.id && url) img.src = url; });
  }
  const box = $("focus-box");
  box.setAttribute("viewBox", `0 0 ${image.width || 1} ${image.height || 1}`);
  box.setAttribute("preserveAspectRatio", "none");
  box.replaceChildren();
  if (cell) {
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [k, v] of Object.entries({ x: cell.box.x, y: cell.box.y, width: cell.box.width, height: cell.box.height })) r.setAttribute(k, v);
    box.append(r);
  }
  $("field-caption").textContent = image.source + (cell ? ` — cell ${cell.index}: ${label(cell.class)}, ${Math.round(cell.confidence * 100)}%` : "");
}

$("grid").addEventListener("click", e => {
  const t = e.target.closest(".tile");
  if (t) select(t);
});

$("grid").addEventListener("focusin", e => {
  const t = e.target.closest(".tile");
  if (t && t !== current) select(t, false);
});

$("palette").addEventListener("click", e => {
  const b = e.target.closest("button");
  if (b && current) reclassify(current, b.dataset.class);
});

$("grid").addEventListener("keydown", e => {
  if (!current || e.altKey || e.ctrlKey || e.metaKey) return;
  const all = tiles();
  const at = all.indexOf(current);
  let next = null;
  switch (e.key) {
    case "ArrowRight": next = all[at + 1]; break;
    case "ArrowLeft": next = all[at - 1]; break;
    case "ArrowDown": next = vertical(all, at, +1); break;
    case "ArrowUp": next = vertical(all, at, -1); break;
    case "Home": next = all[0]; break;
    case "End": next = all[all.length - 1]; break;
    default: {
      const i = KEYS.indexOf(e.key.toLowerCase());
      if (i >= 0 && i < sheet.classes.length) {
        e.preventDefault();
        reclassify(current, sheet.classes[i]);
      }
      return;
    }
  }
  e.preventDefault();
  if (next) select(next);
});

// The tile in the row below (or above) nearest in x, across groups.
function vertical(all, at, step) {
  const here = all[at].getBoundingClientRect();
  let best = null, bestRow = null;
  for (let i = at + step; i >= 0 && i < all.length; i += step) {
    const r = all[i].getBoundingClientRect();
    if (Math.abs(r.top - here.top) < 4) continue;
    if (bestRow === null) bestRow = r.top;
    if (Math.abs(r.top - bestRow) >= 4) break;
    if (!best || Math.abs(r.left - here.left) < Math.abs(best.getBoundingClientRect().left - here.left)) best = all[i];
  }
  return best;
}

function reclassify(t, target) {
  if (!canChange()) {
    $("message").textContent = sheet.totals.signedOffBy ? `Signed off by ${sheet.totals.signedOffBy}: no more changes.` : "This client may not review (role review).";
    return;
  }
  if (t.dataset.class === target) return;
  // Changes go one after another, in the order they were asked for.
  queue = queue.then(async () => {
    const cell = t.cell;
    let answer;
    try {
      answer = await json(`/images/${cell.imageId}/cells/${cell.index}/class`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ class: target }),
      });
    } catch (e) {
      return failed(e);
    }
    $("message").textContent = "";
    const all = tiles();
    const at = all.indexOf(t);
    const after = all[at + 1] || all[at - 1];
    moveTile(t, answer.cell);
    renderTotals(sheet.kind === "batch" ? answer.batch : answer.image);
    if (current === t && after && after !== t) select(after);
    document.body.dataset.changes = `${(+document.body.dataset.changes || 0) + 1}`;
  });
}

function moveTile(t, cell) {
  const fromGroup = t.parentElement;
  Object.assign(t.cell, cell);
  t.dataset.class = cell.reviewedClass;
  t.classList.toggle("reviewed", cell.reviewedClass !== cell.class);
  t.querySelector(".was").textContent = cell.reviewedClass !== cell.class ? `was ${short(cell.class)}` : "";
  t.setAttribute("aria-label", `${label(cell.reviewedClass)}, ${Math.round(cell.confidence * 100)}% sure${cell.needsReview ? ", needs review" : ""}`);
  const to = $("grid").querySelector(`.tiles[data-class="${cell.reviewedClass}"]`);
  const before = [...to.children].find(other => other !== t && order(t.cell, other.cell) < 0);
  to.insertBefore(t, before || null);
  for (const g of [fromGroup, to]) g.parentElement.querySelector("h3 .n").textContent = `${g.children.length}`;
}

function renderTotals(totals) {
  sheet.totals = totals;
  const rows = [];
  for (const [c, auto] of Object.entries(totals.differential)) {
    const r = totals.reviewedDifferential[c];
    rows.push(el("tr", { dataset: { class: c } }, el("td", {}, label(c)), el("td", { class: "n automatic" }, `${auto.count}`),
      el("td", { class: "n reviewed" }, `${r.count}`), el("td", { class: "n percent" }, percent(r.percent)),
      el("td", { class: "n interval" }, `${percent(r.percentLow)}–${percent(r.percentHigh)}`)));
  }
  for (const [c, auto] of Object.entries(totals.otherCells)) {
    rows.push(el("tr", { class: "other", dataset: { class: c } }, el("td", {}, label(c)), el("td", { class: "n automatic" }, `${auto}`),
      el("td", { class: "n reviewed" }, `${totals.reviewedOtherCells[c] ?? 0}`), el("td", {}, ""), el("td", {}, "")));
  }
  rows.push(el("tr", { class: "other", dataset: { class: "NOT_A_CELL" } }, el("td", {}, "not a cell"), el("td", { class: "n automatic" }, "0"),
    el("td", { class: "n reviewed" }, `${totals.notCells}`), el("td", {}, ""), el("td", {}, "")));
  $("differential").tBodies[0].replaceChildren(...rows);
  $("interval-note").textContent = totals.reviewedCounted < 100
    ? `Fewer than 100 cells were counted (${totals.reviewedCounted}): the percentages are rough, as their intervals show.`
    : `${totals.reviewedCounted} cells counted.`;
  $("signed").textContent = totals.signedOffBy ? `Signed off by ${totals.signedOffBy}, ${when(totals.signedOffAt)}` : "";
  $("signed").dataset.reviewer = totals.signedOffBy || "";
  $("sign-off").disabled = !canChange();
  for (const b of $("palette").querySelectorAll("button")) b.disabled = !canChange();
}

$("sign-off").addEventListener("click", () => {
  queue = queue.then(async () => {
    try {
      const totals = await json(`/${sheet.kind === "image" ? "images" : "batches"}/${sheet.id}/sign-off`, { method: "POST" });
      renderTotals(totals);
    } catch (e) {
      failed(e);
    }
  });
});

// Without a key too: leuko serve open on loopback (development) answers every caller as its admin.
signIn();
