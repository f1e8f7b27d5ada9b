// The map's background when its tiles cannot be reached (no internet, a tile
// server down, a closed port): a plain backdrop with a light lat/lon grid and
// its labels, so units stay readable and distances can still be judged.
// Drawn in a pane of its own between the tiles and the markers.

const PANE = "offline-grid";
const LINES_PER_SPAN = 8;

/** A round grid step (1, 2 or 5 times a power of ten) giving about eight lines over ``span`` degrees. */
export function niceStep(span) {
  const raw = Math.max(span, 1e-6) / LINES_PER_SPAN;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
}

/** The grid's meridians and parallels inside a view: {step, digits, lats, lons}. */
export function gridLines(south, west, north, east) {
  const step = niceStep(Math.max(north - south, east - west));
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const lines = (from, to) => {
    const out = [];
    const last = Math.floor(to / step + 1e-9);
    for (let k = Math.ceil(from / step - 1e-9); k <= last; k += 1) out.push(Number((k * step).toFixed(digits)));
    return out;
  };
  return { step, digits, lats: lines(Math.max(south, -85), Math.min(north, 85)), lons: lines(west, east) };
}

export class OfflineGrid {
  constructor(map) {
    this.map = map;
    map.createPane(PANE).style.zIndex = "250"; // above tiles (200), below shapes (400)
    this.renderer = L.svg({ pane: PANE });
    this.layer = L.layerGroup();
    this.shown = false;
    this.notice = L.control({ position: "bottomright" });
    this.notice.onAdd = () => Object.assign(L.DomUtil.create("div", "offline-notice"), { textContent: "map tiles unreachable · offline grid" });
    map.on("moveend zoomend resize", () => this.shown && this.draw());
  }

  show() {
    if (this.shown) return;
    this.shown = true;
    this.map.getContainer().dataset.tiles = "offline";
    this.layer.addTo(this.map);
    this.notice.addTo(this.map);
    this.draw();
  }

  hide() {
    this.map.getContainer().dataset.tiles = "online";
    if (!this.shown) return;
    this.shown = false;
    this.layer.remove();
    this.notice.remove();
  }

  draw() {
    const b = this.map.getBounds();
    const grid = gridLines(b.getSouth(), b.getWest(), b.getNorth(), b.getEast());
    const style = { renderer: this.renderer, className: "grid-line", interactive: false, weight: 1 };
    const label = (text, at, cls) => L.marker(at, {
      pane: PANE, interactive: false, keyboard: false,
      icon: L.divIcon({ className: `grid-label ${cls}`, html: text, iconSize: null }),
    });
    this.layer.clearLayers();
    for (const lat of grid.lats) {
      this.layer.addLayer(L.polyline([[lat, b.getWest()], [lat, b.getEast()]], style));
      this.layer.addLayer(label(lat.toFixed(grid.digits), [lat, b.getWest()], "lat"));
    }
    for (const lon of grid.lons) {
      this.layer.addLayer(L.polyline([[b.getSouth(), lon], [b.getNorth(), lon]], style));
      this.layer.addLayer(label(lon.toFixed(grid.digits), [b.getNorth(), lon], "lon"));
    }
  }
}
