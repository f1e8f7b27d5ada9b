// The live map: every asset of the org drawn from positions (single events,
// fleet batches, the snapshot), incidents and alerts highlighted while open.
// Plain SVG over a lat/lon grid: no tiles, nothing fetched from the internet.
// Positions only mark the map dirty; one animation frame draws all changes.

import { coordinates, isClosed } from "./events.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const TRAIL = 6;
const CLOSED_LINGER_MS = 8000;
const STATUS_CLASSES = [
  [/emerg|panic|distress/, "st-emergency"],
  [/out|offline|off_duty|unavailable|maint/, "st-out"],
  [/on_scene|onscene|busy|engaged|at_scene/, "st-busy"],
  [/route|dispatch|respond|assigned|transport/, "st-enroute"],
  [/avail|idle|in_service|patrol|ready|free/, "st-available"],
];

export function statusClass(status) {
  const text = String(status ?? "").toLowerCase();
  for (const [pattern, cls] of STATUS_CLASSES) if (pattern.test(text)) return cls;
  return "st-unknown";
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function niceStep(span) {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
}

function assetIds(data) {
  const ids = [];
  if (typeof data.asset_id === "string") ids.push(data.asset_id);
  for (const key of ["asset_ids", "assets", "assigned_assets", "units"]) {
    if (Array.isArray(data[key])) ids.push(...data[key].filter((x) => typeof x === "string"));
  }
  return ids;
}

export class FleetMap {
  constructor(svg, hooks) {
    this.svg = svg;
    this.hooks = hooks; // onSelect(kind, id), onChange(stats)
    this.assets = new Map();
    this.incidents = new Map();
    this.alerts = new Map();
    this.bounds = null;
    this.size = { w: 800, h: 500 };
    this.layers = {};
    for (const name of ["grid", "trails", "incidents", "assets", "alerts", "labels"]) {
      this.layers[name] = el("g", { class: `layer-${name}` }, svg);
    }
    this.dirty = new Set();
    this.reprojectAll = true;
    this.frame = null;
    this.selected = null;
    new ResizeObserver(() => this.resize()).observe(svg);
    this.resize();
  }

  resize() {
    const w = Math.max(200, this.svg.clientWidth);
    const h = Math.max(150, this.svg.clientHeight);
    this.size = { w, h };
    this.svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    this.reprojectAll = true;
    this.schedule();
  }

  // --- input ------------------------------------------------------------------

  positions(list, at) {
    for (const p of list) {
      let asset = this.assets.get(p.asset_id);
      if (!asset) {
        asset = { id: p.asset_id, trail: [], status: null, alerts: new Set(), incidents: new Set() };
        this.assets.set(p.asset_id, asset);
      }
      if (asset.lat !== undefined) asset.trail.push([asset.lat, asset.lon]);
      if (asset.trail.length > TRAIL) asset.trail.shift();
      const { asset_id: _id, status, ...fields } = p;
      Object.assign(asset, fields, { seenAt: at });
      if (status) asset.status = status;
      this.include(p.lat, p.lon);
      this.dirty.add(asset);
    }
    this.schedule();
  }

  statuses(list) {
    for (const s of list) {
      const asset = this.assets.get(s.asset_id);
      if (!asset) continue;
      asset.status = s.status;
      this.dirty.add(asset);
    }
    this.schedule();
  }

  incident(type, payload, at) {
    const data = payload?.data ?? {};
    const id = data.incident_id;
    if (typeof id !== "string") return;
    let inc = this.incidents.get(id);
    if (!inc) {
      inc = { id, openedAt: at, status: "open", assets: new Set() };
      this.incidents.set(id, inc);
    }
    const where = coordinates(data);
    if (where) Object.assign(inc, where);
    for (const key of ["priority", "title", "type", "kind", "category", "summary", "address"]) {
      if (data[key] !== undefined) inc[key] = data[key];
    }
    const status = data.status ?? data.new_status;
    if (status) inc.status = String(status);
    inc.closedAt = isClosed(inc.status) ? (inc.closedAt ?? at) : null;
    for (const assetId of assetIds(data)) inc.assets.add(assetId);
    inc.flashAt = at;
    if (where) this.include(where.lat, where.lon);
    this.redrawHighlights();
  }

  alert(type, payload, at) {
    const data = payload?.data ?? {};
    const id = data.alert_id ?? payload?.event_id;
    if (typeof id !== "string") return;
    let alert = this.alerts.get(id);
    if (!alert) {
      alert = { id, at, assets: new Set() };
      this.alerts.set(id, alert);
    }
    for (const key of ["severity", "message", "kind", "type", "level"]) {
      if (data[key] !== undefined) alert[key] = data[key];
    }
    const where = coordinates(data);
    if (where) Object.assign(alert, where);
    for (const assetId of assetIds(data)) alert.assets.add(assetId);
    if (type === "alert_acknowledged" || isClosed(data.status)) alert.closedAt = alert.closedAt ?? at;
    alert.flashAt = at;
    this.redrawHighlights();
  }

  select(kind, id) {
    this.selected = id === null ? null : { kind, id };
    this.redrawHighlights();
  }

  fit() {
    this.bounds = null;
    for (const a of this.assets.values()) this.include(a.lat, a.lon);
    for (const i of this.incidents.values()) if (i.lat !== undefined) this.include(i.lat, i.lon);
    this.schedule();
  }

  // --- projection -----------------------------------------------------------------

  include(lat, lon) {
    const b = this.bounds;
    if (b && lat >= b.minLat && lat <= b.maxLat && lon >= b.minLon && lon <= b.maxLon) return;
    const pad = 0.004;
    this.bounds = b
      ? {
          minLat: Math.min(b.minLat, lat - pad), maxLat: Math.max(b.maxLat, lat + pad),
          minLon: Math.min(b.minLon, lon - pad), maxLon: Math.max(b.maxLon, lon + pad),
        }
      : { minLat: lat - pad, maxLat: lat + pad, minLon: lon - pad, maxLon: lon + pad };
    this.reprojectAll = true;
  }

  /** Equirectangular, longitude shrunk by cos(latitude), fitted into the panel. */
  projector() {
    const b = this.bounds;
    const { w, h } = this.size;
    const k = Math.cos((((b.minLat + b.maxLat) / 2) * Math.PI) / 180);
    const spanX = (b.maxLon - b.minLon) * k;
    const spanY = b.maxLat - b.minLat;
    const margin = 24;
    const scale = Math.min((w - 2 * margin) / spanX, (h - 2 * margin) / spanY);
    const ox = (w - spanX * scale) / 2;
    const oy = (h - spanY * scale) / 2;
    return (lat, lon) => [ox + (lon - b.minLon) * k * scale, oy + (b.maxLat - lat) * scale];
  }

  // --- drawing --------------------------------------------------------------------

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = null;
    if (!this.bounds) return;
    this.project = this.projector();
    const todo = this.reprojectAll ? this.assets.values() : this.dirty;
    if (this.reprojectAll) this.drawGrid();
    for (const asset of todo) this.drawAsset(asset);
    this.dirty.clear();
    if (this.reprojectAll) this.redrawHighlights();
    this.reprojectAll = false;
  }

  drawGrid() {
    const g = this.layers.grid;
    g.replaceChildren();
    const b = this.bounds;
    const { w, h } = this.size;
    const step = niceStep(Math.max(b.maxLat - b.minLat, b.maxLon - b.minLon));
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    for (let lat = Math.ceil(b.minLat / step) * step; lat <= b.maxLat; lat += step) {
      const [, y] = this.project(lat, b.minLon);
      el("line", { x1: 0, x2: w, y1: y, y2: y }, g);
      el("text", { x: 4, y: y - 3 }, g).textContent = lat.toFixed(digits);
    }
    for (let lon = Math.ceil(b.minLon / step) * step; lon <= b.maxLon; lon += step) {
      const [x] = this.project(b.minLat, lon);
      el("line", { x1: x, x2: x, y1: 0, y2: h }, g);
      el("text", { x: x + 3, y: 11 }, g).textContent = lon.toFixed(digits);
    }
  }

  drawAsset(asset) {
    if (!asset.node) {
      asset.node = el("g", { "data-asset": asset.id }, this.layers.assets);
      el("circle", { r: 4 }, asset.node);
      el("title", {}, asset.node).textContent = asset.id;
      asset.node.addEventListener("click", () => this.hooks.onSelect("asset", asset.id));
      asset.trailNode = el("polyline", {}, this.layers.trails);
    }
    const [x, y] = this.project(asset.lat, asset.lon);
    asset.x = x;
    asset.y = y;
    asset.node.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
    this.paint(asset);
    const points = [...asset.trail, [asset.lat, asset.lon]].map(([la, lo]) => this.project(la, lo).map((v) => v.toFixed(1)).join(","));
    asset.trailNode.setAttribute("points", points.join(" "));
  }

  paint(asset) {
    const cls = `asset ${statusClass(asset.status)}${this.highlightClass(asset)}`;
    if (cls !== asset.cls) {
      asset.cls = cls;
      asset.node.setAttribute("class", cls);
    }
  }

  highlightClass(asset) {
    let cls = "";
    if ([...asset.alerts].some((id) => this.alerts.get(id) && !this.alerts.get(id).closedAt)) cls += " alerted";
    if ([...asset.incidents].some((id) => this.incidents.get(id) && !this.incidents.get(id).closedAt)) cls += " engaged";
    if (this.selected?.kind === "asset" && this.selected.id === asset.id) cls += " selected";
    return cls;
  }

  /** Incidents, alerts and the asset rings they put on; cheap (tens of items). */
  redrawHighlights(now = Date.now()) {
    for (const asset of this.assets.values()) {
      asset.alerts.clear();
      asset.incidents.clear();
    }
    for (const [id, inc] of this.incidents) {
      if (inc.closedAt && now - inc.closedAt > CLOSED_LINGER_MS) this.incidents.delete(id);
      else for (const a of inc.assets) this.assets.get(a)?.incidents.add(id);
    }
    for (const [id, alert] of this.alerts) {
      if (alert.closedAt && now - alert.closedAt > CLOSED_LINGER_MS) this.alerts.delete(id);
      else for (const a of alert.assets) this.assets.get(a)?.alerts.add(id);
    }
    if (this.bounds && this.project) {
      this.drawMarkers(this.layers.incidents, this.incidents, "incident", now);
      this.drawMarkers(this.layers.alerts, this.alerts, "alert", now);
      for (const asset of this.assets.values()) if (asset.node) this.paint(asset);
    }
    this.hooks.onChange(this.stats(now));
  }

  drawMarkers(layer, items, kind, now) {
    layer.replaceChildren();
    for (const item of items.values()) {
      const spot = item.lat !== undefined ? this.project(item.lat, item.lon) : this.anchor(item);
      if (!spot) continue;
      const state = item.closedAt ? "closed" : "open";
      const fresh = now - (item.flashAt ?? 0) < 3000 ? " fresh" : "";
      const picked = this.selected?.kind === kind && this.selected.id === item.id ? " selected" : "";
      const g = el("g", { class: `${kind} ${state}${fresh}${picked}`, transform: `translate(${spot[0].toFixed(1)} ${spot[1].toFixed(1)})` }, layer);
      if (kind === "incident") el("path", { d: "M0,-9 L9,0 L0,9 L-9,0 Z" }, g);
      else el("circle", { r: 11 }, g);
      el("text", { x: 12, y: -8 }, g).textContent = item.id;
      g.addEventListener("click", () => this.hooks.onSelect(kind, item.id));
    }
  }

  /** Where to draw an incident or alert that has no coordinates: at its first asset. */
  anchor(item) {
    for (const id of item.assets) {
      const a = this.assets.get(id);
      if (a && a.x !== undefined) return [a.x, a.y];
    }
    return null;
  }

  stats(now = Date.now()) {
    let moving = 0;
    for (const a of this.assets.values()) if (now - (a.seenAt ?? 0) < 10000) moving += 1;
    const open = (m) => [...m.values()].filter((x) => !x.closedAt);
    return { assets: this.assets.size, moving, incidents: open(this.incidents), alerts: open(this.alerts) };
  }
}
