// astroembed web app: plain JavaScript over the JSON API (schema: /api/openapi.json). No build step, no libraries.
"use strict";

const $ = (selector) => document.querySelector(selector);

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    throw new Error(body.error || `HTTP ${response.status}`);
  }
  return body;
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child);  // strings become text nodes: ids are never parsed as HTML
  }
  return node;
}

const objectUrl = (id) => `/objects/${encodeURIComponent(id)}`;

// ----------------------------------------------------------------------------- home page
function initHome() {
  $("#search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const found = await api(`/api/resolve?q=${encodeURIComponent($("#q").value)}`);
      if (found.kind === "object") {
        window.location.href = objectUrl(found.object_id);
        return;
      }
      const list = $("#cone-results");
      list.replaceChildren(el("p", {}, `${found.objects.length} object(s) within ${found.radius_arcsec}″ of ` +
        `RA ${found.ra.toFixed(5)}, Dec ${found.dec.toFixed(5)}`));
      const ul = el("ul", { class: "cone" });
      for (const o of found.objects) {
        ul.append(el("li", {}, el("a", { href: objectUrl(o.object_id) }, o.object_id),
          ` at ${o.separation_arcsec.toFixed(1)}″`));
      }
      list.append(ul);
    } catch (error) {
      showError(error.message);
    }
  });
  $("#random").addEventListener("click", async () => {
    try {
      const { object_id } = await api("/api/objects/random");
      window.location.href = objectUrl(object_id);
    } catch (error) {
      showError(error.message);
    }
  });
  const select = $("#map-label");
  select.addEventListener("change", () => drawMap(select.value));
  drawMap("");
}

function colourOf(value, numeric, lo, hi, categories) {
  if (value === null || value === undefined) return "#bbbbbb";
  if (numeric) {
    const t = hi > lo ? (value - lo) / (hi - lo) : 0.5;  // blue (low) to red (high)
    return `hsl(${Math.round(240 - 240 * t)}, 70%, 45%)`;
  }
  return `hsl(${(categories.indexOf(value) * 137) % 360}, 60%, 45%)`;
}

async function drawMap(label) {
  const canvas = $("#map");
  let data;
  try {
    data = await api(`/api/map${label ? `?label=${encodeURIComponent(label)}` : ""}`);
  } catch (error) {
    showError(error.message);
    return;
  }
  const ctx = canvas.getContext("2d");
  const pad = 12;
  const xs = data.x, ys = data.y;
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const px = (x) => pad + (x - x0) / ((x1 - x0) || 1) * (canvas.width - 2 * pad);
  const py = (y) => canvas.height - pad - (y - y0) / ((y1 - y0) || 1) * (canvas.height - 2 * pad);
  const values = data.values || [];
  const finite = values.filter((v) => typeof v === "number");
  const lo = finite.length ? Math.min(...finite) : 0, hi = finite.length ? Math.max(...finite) : 1;
  const categories = data.numeric ? [] : [...new Set(values.filter((v) => v !== null))];
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < xs.length; i++) {
    ctx.fillStyle = label ? colourOf(values[i], data.numeric, lo, hi, categories) : "#1f3b73";
    ctx.beginPath();
    ctx.arc(px(xs[i]), py(ys[i]), 3, 0, 2 * Math.PI);
    ctx.fill();
  }
  $("#map-legend").textContent = label ? (data.numeric ? `${label}: blue ${lo.toPrecision(3)} to red ${hi.toPrecision(3)}`
    : `${label}: ${categories.length} categories`) : `${xs.length} of ${data.n_total} objects`;
  canvas.onclick = (event) => {
    const box = canvas.getBoundingClientRect();
    const cx = (event.clientX - box.left) * canvas.width / box.width;
    const cy = (event.clientY - box.top) * canvas.height / box.height;
    let best = -1, bestDistance = 100;  // within 10 canvas pixels
    for (let i = 0; i < xs.length; i++) {
      const d = (px(xs[i]) - cx) ** 2 + (py(ys[i]) - cy) ** 2;
      if (d < bestDistance) { best = i; bestDistance = d; }
    }
    if (best >= 0) window.location.href = objectUrl(data.object_id[best]);
  };
  canvas.dataset.ready = "true";
}

// ----------------------------------------------------------------------------- neighbour search
function searchParams(form, query) {
  const params = new URLSearchParams(query);
  params.set("query_modality", form.qm.value);
  params.set("target_modality", form.tm.value);
  params.set("k", form.k.value || "16");
  if (form.exclude.value) params.set("exclude_within_arcsec", form.exclude.value);
  return params;
}

function neighbourCard(n) {
  const card = el("div", { class: "card", "data-object-id": n.object_id });
  const link = el("a", { href: objectUrl(n.object_id), class: "neighbour-link" });
  const id = encodeURIComponent(n.object_id);
  // Both pictures whatever the target modality: an image match is judged by its spectrum too.
  const pictures = [
    el("img", { class: "thumb", loading: "lazy", alt: `image of ${n.object_id}`, src: `/api/thumbnails/${id}` }),
    el("img", { class: "spectrum", loading: "lazy", alt: `spectrum of ${n.object_id}`, src: `/api/spectra/${id}?format=png` }),
  ];
  for (const picture of pictures) {
    picture.addEventListener("error", () => picture.remove());  // the survey lacks this modality
    link.append(picture);
  }
  link.append(el("div", { class: "caption" }, `${n.rank}. ${n.object_id}`));
  card.append(link, el("div", { class: "muted" }, `similarity ${n.similarity.toFixed(3)}` +
    (n.separation_arcsec === null ? "" : ` · ${formatSeparation(n.separation_arcsec)}`)));
  return card;
}

function formatSeparation(arcsec) {
  if (arcsec < 60) return `${arcsec.toFixed(1)}″`;
  if (arcsec < 3600) return `${(arcsec / 60).toFixed(1)}′`;
  return `${(arcsec / 3600).toFixed(2)}°`;
}

function initSearchPanel(query, pageUrl) {
  const form = $("#neighbour-form");
  const url = new URL(window.location.href);
  for (const name of ["qm", "tm", "k", "exclude"]) {
    if (url.searchParams.has(name)) form[name].value = url.searchParams.get(name);
  }
  const run = async () => {
    clearError();
    const params = searchParams(form, query);
    const pageParams = new URLSearchParams({ qm: form.qm.value, tm: form.tm.value, k: form.k.value });
    if (form.exclude.value) pageParams.set("exclude", form.exclude.value);
    const permalink = `${pageUrl}?${pageParams}`;
    history.replaceState(null, "", permalink);
    $("#permalink").href = permalink;
    $("#download-csv").href = `/api/search?${params}&format=csv`;
    $("#download-parquet").href = `/api/search?${params}&format=parquet`;
    const grid = $("#neighbours");
    grid.dataset.state = "loading";
    try {
      const result = await api(`/api/search?${params}`);
      grid.replaceChildren(...result.neighbours.map(neighbourCard));
      $("#result-summary").textContent = `${result.neighbours.length} neighbours, ${form.qm.value} → ${form.tm.value}`;
      grid.dataset.state = "done";
    } catch (error) {
      grid.replaceChildren();
      grid.dataset.state = "error";
      showError(error.message);
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  run();
}

// ----------------------------------------------------------------------------- upload
function initUpload() {
  const form = $("#upload-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    try {
      const result = await api("/api/upload-search", { method: "POST", body: new FormData(form) });
      window.location.href = result.permalink;
    } catch (error) {
      showError(error.message);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "home") initHome();
  if (page === "upload") initUpload();
  if (page === "object") {
    const id = document.body.dataset.objectId;
    initSearchPanel({ object_id: id }, objectUrl(id));
  }
  if (page === "upload-results") {
    const key = document.body.dataset.upload;
    const qm = $("#neighbour-form").qm;
    for (const option of [...qm.options]) {
      if (option.value === "both") option.remove();  // an upload is one image or one spectrum
    }
    initSearchPanel({ upload: key }, `/uploads/${key}`);
  }
});
