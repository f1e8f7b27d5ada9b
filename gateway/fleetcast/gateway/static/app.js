// fleetcast dispatch console: wiring of the panels to one gateway connection.
// Served by the gateway at / (no build step); speaks only the public client
// protocol. URL parameters: ?token=<JWT> connects at once, ?rooms=a,b picks
// the rooms asked for on connect (default: fleet), ?path=/ws the Socket.IO path.

import { family, latencyMs, occurredTimes, positionsOf, readSession, statusesOf } from "./js/events.js";
import { Feed } from "./js/feed.js";
import { fmt, LatencyChart } from "./js/latency.js";
import { Link } from "./js/link.js";
import { FleetMap } from "./js/map.js";
import { ReceiptsPanel } from "./js/receipts.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TOKEN_KEY = "fleetcast.token";
const MAX_ANSWERS = 40;

const feed = new Feed({
  body: $("feed"),
  typeSelect: $("f-type"),
  roomSelect: $("f-room"),
  search: $("f-search"),
  hidePositions: $("f-hide-positions"),
  pauseButton: $("pause"),
  pausedLabel: $("paused"),
  counters: $("counters"),
});
const chart = new LatencyChart($("latency"), $("lat-readout"));
const map = new FleetMap($("map"), { onSelect: select, onChange: showMapStats });
const receipts = new ReceiptsPanel(
  { list: $("receipts"), count: $("receipt-count"), response: $("ack-response") },
  (body) => link.receipt(body),
);
const link = new Link(params.get("path") ?? "/ws", { onState, onSession, onEvent, onAnswer, onRooms });
let tokenExp = null;

// --- connection ----------------------------------------------------------------

function onState(state) {
  const text = {
    connecting: "connecting…",
    connected: "connected",
    reconnecting: `reconnecting${state.attempt ? ` (attempt ${state.attempt})` : ""}${state.reason ? ` · ${state.reason}` : ""}`,
    refused: `refused: ${state.code}${state.message ? ` · ${state.message}` : ""}`,
    disconnected: `disconnected${state.reason ? ` · ${state.reason}` : ""}`,
  }[state.name] ?? state.name;
  $("conn").className = `conn state-${state.name}`;
  $("conn").dataset.state = state.name;
  $("conn").dataset.code = state.code ?? "";
  $("conn-text").textContent = text;
  $("transport").textContent = state.name === "connected" && state.transport ? state.transport : "";
  $("reconnects").textContent = state.reconnects ? `${state.reconnects} reconnect${state.reconnects > 1 ? "s" : ""}` : "";
}

function onSession(payload) {
  const s = readSession(payload);
  $("s-user").textContent = s.user;
  $("s-org").textContent = s.org;
  $("s-roles").replaceChildren(...s.roles.map((r) => chip(r, "role")));
  $("s-rooms").replaceChildren(...s.rooms.map((r) => chip(r, "room")));
  $("s-gateway").textContent = s.gateway ?? "–";
  tokenExp = s.expiresAt ?? jwtExp(link.token);
  $("session").dataset.user = s.user;
  receipts.session(payload);
}

function jwtExp(token) {
  try {
    const body = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof body.exp === "number" ? body.exp : null;
  } catch {
    return null;
  }
}

function chip(text, kind) {
  const span = document.createElement("span");
  span.className = `chip ${kind}`;
  span.textContent = text;
  return span;
}

// --- events ----------------------------------------------------------------------

function onEvent(name, payload, at) {
  feed.add(name, payload, at);
  const type = payload?.event_type ?? name;
  if (receipts.event(type, payload, at)) return; // a receipt record names an alert, is none
  for (const occurredAt of occurredTimes(name, payload)) chart.add(latencyMs(occurredAt, at), at);
  const positions = positionsOf(name, payload);
  if (positions.length) map.positions(positions, at);
  const statuses = statusesOf(name, payload);
  if (statuses.length) map.statuses(statuses);
  if (family(type) === "incident") map.incident(type, payload, at);
  if (family(type) === "alert") map.alert(type, payload, at);
  if (name in STATE_TABLES) applyState(STATE_TABLES[name], payload?.data ?? {}, at);
}

/** Snapshot event -> [table in its data, the map's collection, the map's method]. */
const STATE_TABLES = {
  incidents_snapshot: ["incidents", "incident"],
  alerts_snapshot: ["alerts", "alert"],
};

/** The org's open incidents or active alerts as of now: what is not in the snapshot closed. */
function applyState([table, kind], data, at) {
  const records = Array.isArray(data[table]) ? data[table] : [];
  const open = new Set(records.map((r) => r[`${kind}_id`]));
  for (const record of records) map[kind](`${kind}_snapshot`, { data: record }, at);
  if (data.complete === false) return; // a capped table: the rest may be open still
  for (const [id, item] of map[table]) if (!open.has(id)) item.closedAt = item.closedAt ?? at;
  map.redrawHighlights();
}

// --- rooms and answers -------------------------------------------------------------

function onRooms(rooms) {
  $("rooms").replaceChildren(
    ...[...rooms].map(([room, entry]) => {
      const li = document.createElement("li");
      li.dataset.room = room;
      li.dataset.state = entry.state;
      li.dataset.code = entry.code ?? "";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = room;
      const badge = chip(entry.state === "refused" ? entry.code ?? "refused" : entry.state, `state-${entry.state}`);
      const extra = document.createElement("span");
      extra.className = "muted";
      extra.textContent = entry.recovered === true ? "recovered" : entry.recovered === false ? "gap" : "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "x";
      remove.title = "unsubscribe";
      remove.textContent = "×";
      remove.addEventListener("click", () => link.unsubscribe(room));
      li.append(name, badge, extra, remove);
      if (entry.message) li.title = entry.message;
      return li;
    }),
  );
}

function onAnswer({ at, op, room, since, ack }) {
  const li = document.createElement("li");
  const ok = Boolean(ack && ack.ok);
  li.className = ok ? "ok" : "bad";
  li.dataset.op = op;
  li.dataset.room = room;
  li.dataset.code = ok ? "" : ack?.error?.code ?? "error";
  const when = new Date(at).toISOString().slice(11, 19);
  const verdict = ok
    ? `ok${ack.recovered === true ? " · recovered" : ack.recovered === false ? " · history gap" : ""}`
    : `${ack?.error?.code ?? "error"}: ${ack?.error?.message ?? ""}`;
  li.textContent = `${when} ${op} ${room}${since ? ` since ${since}` : ""} → ${verdict}`;
  $("answers").prepend(li);
  while ($("answers").childElementCount > MAX_ANSWERS) $("answers").lastElementChild.remove();
}

// --- map side panels ----------------------------------------------------------------

function showMapStats(stats) {
  $("map-stats").textContent = `${stats.assets} assets · ${stats.moving} reporting`;
  $("incident-count").textContent = String(stats.incidents.length);
  $("alert-count").textContent = String(stats.alerts.length);
  $("incidents").replaceChildren(...stats.incidents.slice(-12).reverse().map((i) => item("incident", i, `${i.priority ? `P${i.priority} ` : ""}${i.type ?? i.kind ?? i.category ?? ""} ${i.status}`)));
  $("alerts").replaceChildren(...stats.alerts.slice(-12).reverse().map((a) => item("alert", a, `${a.severity ?? ""} ${a.message ?? a.kind ?? ""}`)));
}

function item(kind, thing, text) {
  const li = document.createElement("li");
  li.className = `${kind}${Date.now() - (thing.flashAt ?? 0) < 3000 ? " fresh" : ""}`;
  li.dataset.id = thing.id;
  const id = document.createElement("b");
  id.textContent = thing.id;
  li.append(id, ` ${text.trim()}`);
  li.addEventListener("click", () => select(kind, thing.id));
  return li;
}

let selection = null;

function select(kind, id) {
  selection = { kind, id };
  map.select(kind, id);
  const box = $("selected");
  box.classList.remove("muted");
  const room = kind === "alert" ? null : `${kind}:${id}`;
  const follow = document.createElement("button");
  follow.type = "button";
  follow.textContent = room ? `Follow ${room}` : "";
  follow.hidden = !room;
  follow.addEventListener("click", () => link.subscribe(room));
  const dl = document.createElement("dl");
  dl.className = "kv";
  box.replaceChildren(follow, dl);
  showSelected();
}

const HIDDEN_FIELDS = new Set(["node", "trailNode", "trail", "x", "y", "cls", "flashAt"]);

/** The selected thing's fields, kept current (called every second). */
function showSelected() {
  if (!selection) return;
  const source = { asset: map.assets, incident: map.incidents, alert: map.alerts }[selection.kind];
  const thing = source.get(selection.id) ?? { id: selection.id, status: "gone" };
  const rows = [];
  for (const [k, v] of Object.entries(thing)) {
    if (HIDDEN_FIELDS.has(k) || v === undefined || v === null) continue;
    const text = v instanceof Set ? [...v].join(", ") : typeof v === "number" && k.endsWith("At") ? new Date(v).toISOString().slice(11, 19) : typeof v === "number" ? String(Math.round(v * 1e5) / 1e5) : String(v);
    if (text) rows.push(Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: text }));
  }
  $("selected").querySelector("dl").replaceChildren(...rows);
}

// --- controls -------------------------------------------------------------------------

function connect(token) {
  if (typeof io !== "function") {
    onState({ name: "refused", code: "no_client_library", message: "vendor/socket.io.min.js missing: run make run (or scripts/web-deps.sh)" });
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  link.connect(token);
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (token) connect(token);
});
$("disconnect").addEventListener("click", () => link.disconnect());
$("refresh").addEventListener("click", () => {
  const token = $("token").value.trim();
  if (token) link.refresh(token).then(() => (tokenExp = jwtExp(token)));
});
$("sub-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  if (room) link.subscribe(room);
  $("room").value = "";
});
for (const button of document.querySelectorAll(".quick button")) {
  button.addEventListener("click", () => link.subscribe(button.dataset.room));
}
$("fit").addEventListener("click", () => map.fit());
$("clear").addEventListener("click", () => feed.clear());

setInterval(() => {
  $("rate").textContent = feed.rates().all.toFixed(1);
  feed.drawCounters();
  chart.draw();
  if (tokenExp) {
    const left = tokenExp * 1000 - Date.now();
    $("s-exp").textContent = left > 0 ? `expires in ${fmt(left)}` : "expired";
    $("s-exp").className = left < 60000 ? "warn" : "";
  }
}, 500);
setInterval(() => {
  map.redrawHighlights();
  showSelected();
}, 1000);

// --- start -------------------------------------------------------------------------------

// The map's tile server is the gateway's setting; without it the offline grid stays.
fetch("config.json").then((answer) => answer.json()).then((config) => map.tiles(config.map), () => {});

for (const room of (params.get("rooms") ?? "fleet").split(",").map((r) => r.trim()).filter(Boolean)) {
  link.subscribe(room);
}
const initial = params.get("token") ?? sessionStorage.getItem(TOKEN_KEY);
if (params.has("token")) {
  // Keep the token out of the address bar, bookmarks and screenshots.
  params.delete("token");
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}`);
}
if (initial) {
  $("token").value = initial;
  connect(initial);
}
