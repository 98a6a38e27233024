// facestream console: plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const kid of kids.flat()) node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return node;
};

const state = { tab: "live", offset: 0, limit: 25, cameraIds: [] };

function token() { return localStorage.getItem("facestream_token") || ""; }

function say(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) $("#token-bar").hidden = false;
  let body = null;
  const type = resp.headers.get("content-type") || "";
  if (type.includes("application/json")) body = await resp.json();
  if (!resp.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : resp.statusText;
    throw new Error(detail);
  }
  return body;
}

const send = (path, method, data) => api(path, {
  method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(data),
});

function when(iso) { return new Date(iso).toLocaleString(); }
function nameTag(name) { return el("span", { class: "tag " + (name === "Unknown" ? "unknown" : "known") }, name); }
const person = (name) => "/api/people/" + encodeURIComponent(name);

// --- live -----------------------------------------------------------------------------
async function refreshLive() {
  const cams = await api("/api/cameras");
  state.cameraIds = cams.map((c) => c.id);
  const grid = $("#cameras");
  for (const cam of cams) {
    let card = grid.querySelector(`.camera[data-camera="${CSS.escape(cam.id)}"]`);
    if (!card) {
      card = el("div", { class: "camera", "data-camera": cam.id },
        el("img", { class: "stream", alt: "live view of " + cam.id, src: cam.stream_url }),
        el("div", { class: "caption" }, el("span", { class: "id" }, cam.id), el("span", { class: "now" }), el("span", { class: "rate dim" })));
      grid.append(card);
    }
    const names = cam.faces.map((f) => f.name === null ? "…" : f.name + (f.similarity === null ? "" : " " + f.similarity.toFixed(2)));
    card.querySelector(".now").textContent = names.length ? names.join(", ") : (cam.status === "live" ? "no face" : cam.status);
    card.querySelector(".rate").textContent = cam.fps.toFixed(1) + " fps";
  }
  const latest = await api("/api/events?limit=10");
  $("#latest").replaceChildren(...latest.items.map((e) => el("figure", { "data-id": e.id },
    e.snapshot_url ? el("img", { src: e.snapshot_url, alt: "face of " + e.name }) : el("img", { alt: "" }),
    el("figcaption", {}, nameTag(e.name)), el("figcaption", { class: "dim" }, e.camera_id + " · " + new Date(e.last_seen).toLocaleTimeString()))));
  const select = $("#f-camera");
  if (select.options.length === 1) for (const id of state.cameraIds) select.append(el("option", { value: id }, id));
}

async function refreshHealth() {
  const h = await api("/api/health");
  const down = h.stages.filter((s) => s.up === false).map((s) => s.name + "-" + s.index);
  const span = $("#health");
  span.textContent = (down.length ? "down: " + down.join(", ") : "all stages up") + " · " + h.database.sightings + " sightings (" + h.database.kind + ")";
  span.classList.toggle("bad", down.length > 0);
}

// --- events ---------------------------------------------------------------------------
function eventQuery() {
  const q = new URLSearchParams({ limit: state.limit, offset: state.offset });
  const name = $("#f-name").value.trim();
  if (name) q.set("name", name);
  if ($("#f-camera").value) q.set("camera", $("#f-camera").value);
  if ($("#f-unknown").value) q.set("unknown", $("#f-unknown").value);
  for (const [id, key] of [["#f-since", "since"], ["#f-until", "until"]]) {
    if ($(id).value) q.set(key, new Date($(id).value).toISOString());
  }
  return q;
}

function busyTyping(root) {
  return [...root.querySelectorAll("input")].some((i) => i.value || i === document.activeElement);
}

// Asked again once the data is in: typing may have begun while it was fetched, and replacing
// the list then would throw away the name being typed.
function mayReplace(root, force) {
  return force || !busyTyping(root);
}

async function refreshEvents(force = false) {
  const list = $("#event-list");
  if (!mayReplace(list, force)) return;
  const page = await api("/api/events?" + eventQuery());
  if (!mayReplace(list, force)) return;
  list.replaceChildren(...page.items.map(eventRow));
  if (!page.items.length) list.append(el("p", { class: "dim" }, "No sightings yet."));
  const last = Math.min(page.offset + page.items.length, page.total);
  $("#page-info").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "";
  $("#prev").disabled = page.offset === 0;
  $("#next").disabled = last >= page.total;
}

function eventRow(e) {
  const row = el("div", { class: "event", "data-id": e.id, "data-name": e.name },
    e.snapshot_url ? el("img", { class: "snap", src: e.snapshot_url, alt: "face of " + e.name }) : el("img", { class: "snap", alt: "no snapshot" }),
    el("div", { class: "who" }, el("div", { class: "name" }, nameTag(e.name)),
      el("div", { class: "camera dim" }, e.camera_id)),
    el("div", { class: "facts" },
      el("div", { class: "when" }, when(e.first_seen) + " – " + new Date(e.last_seen).toLocaleTimeString()),
      el("div", {}, `${e.frames} frames` + (e.best_similarity === null ? "" : ` · similarity ${e.best_similarity.toFixed(2)}`)
        + (e.enrolled_as ? ` · enrolled as ${e.enrolled_as}` : ""))));
  if (e.has_embedding && !e.enrolled_as) {
    const input = el("input", { class: "enroll-name", placeholder: e.unknown ? "who is this?" : e.name });
    const go = async () => {
      const name = input.value.trim() || (e.unknown ? "" : e.name);
      if (!name) { say("Type a name first.", true); return; }
      try {
        const done = await send(`/api/events/${e.id}/enroll`, "POST", { name });
        say(`Enrolled ${done.name} (${done.faces} face${done.faces === 1 ? "" : "s"}); match names them within a second.`);
        input.value = "";
        refreshEvents(true);
      } catch (err) { say(err.message, true); }
    };
    row.append(el("div", { class: "enroll-box" }, input, el("button", { class: "enroll", onclick: go }, "Enroll")));
  }
  return row;
}

// --- library --------------------------------------------------------------------------
async function refreshLibrary(force = false) {
  const box = $("#people");
  if (!mayReplace(box, force)) return;
  const people = await api("/api/people");
  if (!mayReplace(box, force)) return;
  box.replaceChildren(...people.map((p) => {
    const renameTo = el("input", { class: "rename-to", placeholder: "new name" });
    const rename = async () => {
      if (!renameTo.value.trim()) return;
      try { await send(person(p.name), "PATCH", { name: renameTo.value.trim() }); say(`Renamed ${p.name}.`); refreshLibrary(true); }
      catch (err) { say(err.message, true); }
    };
    const remove = async () => {
      if (!confirm(`Remove ${p.name} and all their faces from the gallery?`)) return;
      try { await api(person(p.name), { method: "DELETE" }); say(`Removed ${p.name}.`); refreshLibrary(true); }
      catch (err) { say(err.message, true); }
    };
    return el("div", { class: "person", "data-name": p.name },
      el("div", {}, el("strong", {}, p.name), el("span", { class: "dim" }, ` · ${p.faces} face${p.faces === 1 ? "" : "s"}`)),
      el("div", { class: "thumbs" }, p.photo_urls.map((u) => el("img", { src: u, alt: p.name }))),
      el("div", { class: "toolbar" }, renameTo, el("button", { class: "rename", onclick: rename }, "Rename"),
        el("button", { class: "delete", onclick: remove }, "Delete")));
  }));
  if (!people.length) box.append(el("p", { class: "dim" }, "Nobody is enrolled."));
}

async function upload(event) {
  event.preventDefault();
  const name = $("#upload-name").value.trim();
  const file = $("#upload-file").files[0];
  if (!name || !file) return;
  const form = new FormData();
  form.append("photo", file);
  try {
    const done = await api(person(name) + "/faces", { method: "POST", body: form });
    say(`Added a face of ${done.name} (${done.faces} in all).`);
    $("#upload").reset();
    refreshLibrary(true);
  } catch (err) { say(err.message, true); }
}

// --- unknown faces --------------------------------------------------------------------
async function refreshUnknown(force = false) {
  const box = $("#clusters");
  if (!mayReplace(box, force)) return;
  const data = await api("/api/unknown/clusters");
  if (!mayReplace(box, force)) return;
  box.replaceChildren(...data.clusters.map((c) => {
    const input = el("input", { class: "cluster-name", placeholder: "who is this?" });
    const go = async () => {
      const name = input.value.trim();
      if (!name) return;
      try {
        const done = await send(person(name) + "/sightings", "POST", { event_ids: c.event_ids });
        say(`Enrolled ${done.event_ids.length} sightings as ${done.name}.`);
        refreshUnknown(true);
      } catch (err) { say(err.message, true); }
    };
    return el("div", { class: "cluster", "data-id": c.id },
      el("div", {}, el("strong", {}, `${c.size} sighting${c.size === 1 ? "" : "s"}`),
        el("span", { class: "dim" }, ` on ${c.cameras.join(", ")} · ${when(c.first_seen)} – ${when(c.last_seen)}`)),
      el("div", { class: "thumbs" }, c.snapshot_urls.map((u) => el("img", { src: u, alt: "unknown face" }))),
      el("div", { class: "toolbar" }, input, el("button", { class: "cluster-enroll", onclick: go }, "Name them")));
  }));
  if (!data.clusters.length) box.append(el("p", { class: "dim" }, "No unknown faces to review."));
}

// --- recordings -----------------------------------------------------------------------
async function refreshRecordings() {
  const cams = await api("/api/recordings");
  $("#recording-list").replaceChildren(...cams.map((c) => el("div", { class: "recordings", "data-camera": c.camera_id },
    el("h3", {}, c.camera_id),
    c.files.length ? c.files.map((f) => el("div", {},
      el("a", { href: f.url }, f.name), el("span", { class: "dim" }, ` · ${(f.bytes / 1e6).toFixed(1)} MB · ${when(f.modified)}`),
      el("video", { controls: "", preload: "metadata", src: f.url }))) : el("p", { class: "dim" }, "No recordings."))));
}

// --- tabs, token, timers --------------------------------------------------------------
const refreshers = { live: refreshLive, events: refreshEvents, library: refreshLibrary, unknown: refreshUnknown, recordings: refreshRecordings };

function show(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== tab;
  refreshers[tab](true).catch((err) => say(err.message, true));
}

let ticks = 0;
function tick() {
  ticks += 1;
  const periodic = { live: refreshLive, events: refreshEvents, library: refreshLibrary };
  if (ticks % 8 === 0) periodic.unknown = refreshUnknown;  // clustering is the costly call
  const run = periodic[state.tab];
  if (run) run().catch((err) => say(err.message, true));
  refreshHealth().catch(() => {});
}

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));
$("#filters").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; refreshEvents(true); });
$("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); refreshEvents(true); });
$("#next").addEventListener("click", () => { state.offset += state.limit; refreshEvents(true); });
$("#upload").addEventListener("submit", upload);
$("#token-save").addEventListener("click", () => {
  const t = $("#token").value.trim();
  localStorage.setItem("facestream_token", t);
  document.cookie = "facestream_token=" + encodeURIComponent(t) + "; path=/; SameSite=Strict";
  $("#token-bar").hidden = true;
  location.reload();
});
if (token()) document.cookie = "facestream_token=" + encodeURIComponent(token()) + "; path=/; SameSite=Strict";
show("live");
setInterval(tick, 1500);
