// The live event feed, the counters per type and the rate per second.
// Rendering is batched per animation frame and the table is bounded, so a
// flood of positions costs a few DOM writes per frame, never one per event.

import { describe, family, latencyMs } from "./events.js";

const MAX_ROWS = 300;
const MAX_PENDING = 2000;
const RATE_WINDOW_S = 5;

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function clock(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(11, 23);
}

export function latencyClass(ms) {
  if (ms === null) return "lat-none";
  return ms < 100 ? "lat-ok" : ms < 1000 ? "lat-warn" : "lat-bad";
}

export class Feed {
  constructor({ body, typeSelect, roomSelect, search, hidePositions, pauseButton, pausedLabel, counters }) {
    this.body = body;
    this.typeSelect = typeSelect;
    this.roomSelect = roomSelect;
    this.search = search;
    this.hidePositions = hidePositions;
    this.pauseButton = pauseButton;
    this.pausedLabel = pausedLabel;
    this.counters = counters;
    this.paused = false;
    this.pending = []; // rows waiting for the next frame (or for resume)
    this.held = 0;
    this.counts = new Map(); // type -> count
    this.seconds = new Map(); // epoch second -> Map(type -> count)
    this.types = new Set();
    this.rooms = new Set();
    this.frame = null;
    pauseButton.addEventListener("click", () => this.togglePause());
    for (const el of [typeSelect, roomSelect, hidePositions]) el.addEventListener("change", () => this.refilter());
    search.addEventListener("input", () => this.refilter());
  }

  add(name, payload, receivedAt) {
    const type = payload?.event_type ?? name;
    const room = payload?.room ?? "-";
    this.count(type, receivedAt);
    this.remember(this.types, type, this.typeSelect);
    this.remember(this.rooms, room, this.roomSelect);
    const row = { type, room, receivedAt, latency: latencyMs(payload?.occurred_at, receivedAt), text: describe(name, payload) };
    this.pending.push(row);
    if (this.pending.length > MAX_PENDING) this.pending.splice(0, this.pending.length - MAX_PENDING);
    if (this.paused) {
      this.held += 1;
      this.pausedLabel.textContent = `paused · ${this.held} new`;
    } else this.schedule();
  }

  count(type, at) {
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    const second = Math.floor(at / 1000);
    let bucket = this.seconds.get(second);
    if (!bucket) {
      bucket = new Map();
      this.seconds.set(second, bucket);
      for (const old of this.seconds.keys()) if (old < second - RATE_WINDOW_S - 1) this.seconds.delete(old);
    }
    bucket.set(type, (bucket.get(type) ?? 0) + 1);
  }

  remember(set, value, select) {
    if (set.has(value)) return;
    set.add(value);
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    const after = [...select.options].slice(1).find((o) => o.value > value);
    select.insertBefore(option, after ?? null);
  }

  /** Rate per second of each type over the last full seconds. */
  rates(now = Date.now()) {
    const current = Math.floor(now / 1000);
    const totals = new Map();
    let all = 0;
    for (const [second, bucket] of this.seconds) {
      if (second >= current || second < current - RATE_WINDOW_S) continue;
      for (const [type, n] of bucket) {
        totals.set(type, (totals.get(type) ?? 0) + n / RATE_WINDOW_S);
        all += n / RATE_WINDOW_S;
      }
    }
    return { all, byType: totals };
  }

  visible(row) {
    if (this.hidePositions.checked && family(row.type) === "position") return false;
    if (this.typeSelect.value && row.type !== this.typeSelect.value) return false;
    if (this.roomSelect.value && row.room !== this.roomSelect.value) return false;
    const needle = this.search.value.trim().toLowerCase();
    return !needle || row.text.toLowerCase().includes(needle) || row.type.includes(needle);
  }

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = null;
    if (this.paused) return; // rows wait in `pending` until resume
    const rows = this.pending.filter((r) => this.visible(r)).slice(-MAX_ROWS);
    this.pending = [];
    const fragment = document.createDocumentFragment();
    for (let i = rows.length - 1; i >= 0; i -= 1) fragment.appendChild(this.render(rows[i]));
    this.body.insertBefore(fragment, this.body.firstChild);
    while (this.body.childElementCount > MAX_ROWS) this.body.lastElementChild.remove();
  }

  render(row) {
    const tr = document.createElement("tr");
    tr.className = `fam-${family(row.type)}`;
    tr.dataset.type = row.type;
    tr.dataset.room = row.room;
    tr.append(
      cell(clock(row.receivedAt), "t"),
      cell(row.latency === null ? "" : `${Math.round(row.latency)} ms`, `lat ${latencyClass(row.latency)}`),
      cell(row.type, "type"),
      cell(row.room, "room"),
      cell(row.text, "what"),
    );
    return tr;
  }

  /** Filters apply to rows already shown as well as to new ones. */
  refilter() {
    for (const tr of this.body.children) {
      const row = { type: tr.dataset.type, room: tr.dataset.room, text: tr.lastChild.textContent };
      tr.hidden = !this.visible(row);
    }
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    this.pauseButton.classList.toggle("active", this.paused);
    this.pausedLabel.textContent = this.paused ? "paused · 0 new" : "";
    if (!this.paused) {
      this.held = 0;
      this.schedule();
    }
  }

  clear() {
    this.body.replaceChildren();
    this.pending = [];
  }

  /** Redraw the counters table (called a few times a second, not per event). */
  drawCounters(now = Date.now()) {
    const { byType } = this.rates(now);
    const rows = [...this.counts].sort((a, b) => b[1] - a[1]);
    this.counters.replaceChildren(
      ...rows.map(([type, count]) => {
        const tr = document.createElement("tr");
        tr.className = `fam-${family(type)}`;
        tr.dataset.type = type;
        tr.append(cell(type, "type"), cell(String(count), "num"), cell((byType.get(type) ?? 0).toFixed(1), "num"));
        return tr;
      }),
    );
  }
}
