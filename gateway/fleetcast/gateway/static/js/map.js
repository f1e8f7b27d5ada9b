// The live map on Leaflet (vendor/leaflet.js): every asset of the org drawn from
// positions (single events, fleet batches, the snapshot) as a dot coloured by
// its status, incidents and alerts marked while open, and a unit's details in
// a popup when it is clicked. Tiles come from the gateway's tile server
// (config.json); when they cannot be loaded the offline grid (offline.js)
// stands in. Positions only mark the map dirty; one animation frame moves all.

import { coordinates, isClosed, parseTime } from "./events.js";
import { OfflineGrid } from "./offline.js";

const TRAIL = 6;
const CLOSED_LINGER_MS = 8000;
const FIT_MAX_ZOOM = 15;
const DOT_RADIUS = 5;
/** Where a popup may open: clear of the map's edges and of the incidents/alerts panel (top right). */
const POPUP_ROOM = { autoPanPaddingTopLeft: [40, 40], autoPanPaddingBottomRight: [280, 40] };
const STATUS_CLASSES = [
  [/emerg|panic|distress/, "st-emergency"],
  [/(^|[^a-z])out([^a-z]|$)|offline|off_duty|unavailable|maint/, "st-out"], // not en_r-out-e
  [/on_scene|onscene|busy|engaged|at_scene/, "st-busy"],
  [/route|dispatch|respond|assigned|transport/, "st-enroute"],
  [/avail|idle|in_service|patrol|ready|free/, "st-available"],
];

export function statusClass(status) {
  const text = String(status ?? "").toLowerCase();
  for (const [pattern, cls] of STATUS_CLASSES) if (pattern.test(text)) return cls;
  return "st-unknown";
}

function assetIds(data) {
  const ids = [];
  if (typeof data.asset_id === "string") ids.push(data.asset_id);
  for (const key of ["asset_ids", "assets", "assigned_assets", "units"]) {
    if (Array.isArray(data[key])) ids.push(...data[key].filter((x) => typeof x === "string"));
  }
  return ids;
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 19);
}

/** What a unit's popup says, as [label, text] rows: who, status, last position time, speed. */
export function unitDetails(asset, now = Date.now()) {
  const name = asset.callsign ?? asset.name ?? asset.id;
  const at = parseTime(asset.occurred_at) ?? asset.seenAt ?? null;
  const ago = at === null ? "" : ` (${Math.max(0, Math.round((now - at) / 1000))} s ago)`;
  const speed = typeof asset.speed_kmh === "number" ? `${asset.speed_kmh} km/h`
    : typeof asset.speed === "number" ? `${asset.speed} m/s` : "–";
  const rows = [["unit", name]];
  if (name !== asset.id) rows.push(["id", asset.id]);
  rows.push(
    ["status", asset.status ?? "no status yet"],
    ["position", at === null ? "–" : `${clock(at)}${ago}`],
    ["speed", speed],
  );
  if (typeof asset.heading === "number") rows.push(["heading", `${Math.round(asset.heading)}°`]);
  return rows;
}

function popupContent(asset) {
  const box = document.createElement("div");
  box.className = "unit-popup";
  box.dataset.asset = asset.id;
  const dl = document.createElement("dl");
  for (const [label, text] of unitDetails(asset)) {
    dl.append(Object.assign(document.createElement("dt"), { textContent: label }));
    dl.append(Object.assign(document.createElement("dd"), { textContent: String(text) }));
  }
  box.append(dl);
  return box;
}

export class FleetMap {
  constructor(container, hooks) {
    this.container = container;
    this.hooks = hooks; // onSelect(kind, id), onChange(stats)
    this.assets = new Map();
    this.incidents = new Map();
    this.alerts = new Map();
    this.dots = new Map(); // asset id -> {dot, trail}: Leaflet layers, kept out of the records
    this.marks = { incident: new Map(), alert: new Map() };
    this.dirty = new Set();
    this.frame = null;
    this.selected = null;
    this.autoFit = true;
    this.leaflet = typeof L === "object" ? this.create() : null;
    if (!this.leaflet) container.textContent = "vendor/leaflet.js missing: run scripts/web-deps.sh (make run does)";
  }

  create() {
    const map = L.map(this.container, { worldCopyJump: true, zoomSnap: 0.25 }).setView([20, 0], 2);
    map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    this.layers = {};
    for (const name of ["trails", "incidents", "assets", "alerts"]) this.layers[name] = L.layerGroup().addTo(map);
    this.offline = new OfflineGrid(map);
    this.offline.show(); // until a tile server answers
    const manual = () => (this.autoFit = false);
    map.on("dragstart popupopen", manual);
    this.container.addEventListener("wheel", manual, { passive: true });
    new ResizeObserver(() => map.invalidateSize()).observe(this.container);
    return map;
  }

  /** Use the gateway's tile server ({tileUrl, attribution, maxZoom}, from config.json). */
  tiles(config) {
    if (!this.leaflet || !config?.tileUrl) return;
    const layer = L.tileLayer(config.tileUrl, {
      maxZoom: config.maxZoom ?? 19,
      attribution: config.attribution ?? "",
      referrerPolicy: "strict-origin", // the tile server learns the origin, never a ?token=
    });
    let failed = 0;
    layer.on("loading", () => (failed = 0));
    layer.on("tileerror", () => {
      failed += 1;
      this.offline.show();
    });
    layer.on("load", () => failed === 0 && this.offline.hide());
    this.leaflet.setMaxZoom(config.maxZoom ?? 19);
    layer.addTo(this.leaflet);
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

  /** Frame every asset and incident, and keep doing so as they move (until the user pans). */
  fit() {
    this.autoFit = true;
    this.fitted = false;
    this.schedule();
  }

  // --- drawing --------------------------------------------------------------------

  schedule() {
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.frame = null;
    if (!this.leaflet) return this.dirty.clear();
    for (const asset of this.dirty) this.drawAsset(asset);
    this.dirty.clear();
    if (this.autoFit) this.keepInView();
  }

  keepInView() {
    const points = [...this.assets.values()].map((a) => [a.lat, a.lon]);
    for (const inc of this.incidents.values()) if (inc.lat !== undefined && !inc.closedAt) points.push([inc.lat, inc.lon]);
    if (!points.length) return;
    const bounds = L.latLngBounds(points);
    if (this.fitted && this.leaflet.getBounds().contains(bounds)) return;
    this.fitted = true;
    this.leaflet.fitBounds(bounds.pad(0.05), { maxZoom: FIT_MAX_ZOOM, animate: false });
  }

  drawAsset(asset) {
    const at = [asset.lat, asset.lon];
    let layers = this.dots.get(asset.id);
    if (!layers) {
      const trail = L.polyline([at], { className: "trail", interactive: false, weight: 1 }).addTo(this.layers.trails);
      const dot = L.circleMarker(at, { radius: DOT_RADIUS, weight: 1, fillOpacity: 1, className: "asset" });
      dot.bindPopup(() => popupContent(asset), { className: "unit", ...POPUP_ROOM });
      dot.on("click", () => this.hooks.onSelect("asset", asset.id));
      dot.addTo(this.layers.assets);
      dot.getElement().dataset.asset = asset.id;
      layers = { dot, trail };
      this.dots.set(asset.id, layers);
    } else layers.dot.setLatLng(at);
    layers.trail.setLatLngs([...asset.trail, at]);
    const el = layers.dot.getElement();
    el.dataset.lat = String(asset.lat);
    el.dataset.lon = String(asset.lon);
    this.paint(asset);
    if (layers.dot.isPopupOpen()) layers.dot.getPopup().update();
  }

  paint(asset) {
    const layers = this.dots.get(asset.id);
    if (!layers) return;
    const cls = `asset ${statusClass(asset.status)}${this.highlightClass(asset)}`;
    if (cls === asset.cls) return;
    asset.cls = cls;
    layers.dot.getElement().setAttribute("class", `${cls} leaflet-interactive`);
    layers.dot.setRadius(cls.includes(" selected") ? DOT_RADIUS + 2 : DOT_RADIUS);
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
    if (this.leaflet) {
      this.drawMarks("incident", this.incidents, this.layers.incidents, now);
      this.drawMarks("alert", this.alerts, this.layers.alerts, now);
      for (const asset of this.assets.values()) this.paint(asset);
    }
    this.hooks.onChange(this.stats(now));
  }

  /** One marker per incident or alert, moved and restyled in place (so a click is never lost). */
  drawMarks(kind, items, layer, now) {
    const marks = this.marks[kind];
    for (const [id, mark] of marks) {
      if (!items.has(id)) {
        layer.removeLayer(mark);
        marks.delete(id);
      }
    }
    for (const item of items.values()) {
      const spot = item.lat !== undefined ? [item.lat, item.lon] : this.anchor(item);
      const mark = marks.get(item.id);
      if (!spot) {
        if (mark) layer.removeLayer(mark);
        marks.delete(item.id);
        continue;
      }
      const cls = this.markClass(kind, item, now);
      if (!mark) marks.set(item.id, this.newMark(kind, item, spot, cls).addTo(layer));
      else {
        if (!mark.getLatLng().equals(spot)) mark.setLatLng(spot);
        if (mark.cls !== cls) this.restyle(mark, kind, item, cls);
      }
    }
  }

  markClass(kind, item, now) {
    const state = item.closedAt ? "closed" : "open";
    const fresh = now - (item.flashAt ?? 0) < 3000 ? " fresh" : "";
    const picked = this.selected?.kind === kind && this.selected.id === item.id ? " selected" : "";
    return `${kind} ${state}${fresh}${picked}`;
  }

  newMark(kind, item, spot, cls) {
    const mark = L.marker(spot, { icon: this.icon(kind, item, cls), keyboard: false, zIndexOffset: kind === "alert" ? 1000 : 500 });
    mark.cls = cls;
    mark.on("click", () => this.hooks.onSelect(kind, item.id));
    return mark;
  }

  restyle(mark, kind, item, cls) {
    mark.cls = cls;
    mark.setIcon(this.icon(kind, item, cls));
  }

  icon(kind, item, cls) {
    const box = document.createElement("div");
    box.dataset[kind] = item.id;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = item.id;
    box.append(Object.assign(document.createElement("i"), { className: "shape" }), label);
    return L.divIcon({ className: `mark ${cls}`, html: box, iconSize: [22, 22], iconAnchor: [11, 11] });
  }

  /** Where to draw an incident or alert that has no coordinates: at its first asset. */
  anchor(item) {
    for (const id of item.assets) {
      const a = this.assets.get(id);
      if (a && a.lat !== undefined) return [a.lat, a.lon];
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
