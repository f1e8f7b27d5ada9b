// Pure readers of what the gateway delivers: no DOM, no sockets.
// They are tolerant on purpose: the console must keep drawing when a domain
// service adds a field or names a coordinate slightly differently.

export const BATCH_TYPE = "asset_positions";
export const SNAPSHOT_TYPE = "fleet_snapshot";

/** Any snapshot event (fleet_snapshot, or a variant name a gateway may use). */
export function isSnapshot(name) {
  return typeof name === "string" && name.includes("snapshot");
}
export const POSITION_TYPE = "asset_position_updated";
const CLOSED_STATES = new Set(["closed", "resolved", "cancelled", "canceled", "completed", "done"]);

/** Epoch milliseconds of an ISO 8601 time, or null. */
export function parseTime(text) {
  if (typeof text !== "string") return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : null;
}

/** now - occurred_at in milliseconds, or null when the event has no usable time. */
export function latencyMs(occurredAt, receivedAt) {
  const at = parseTime(occurredAt);
  return at === null ? null : receivedAt - at;
}

/** The style family of an event type: alerts stand out, positions recede. */
export function family(type) {
  if (type.startsWith("alert_")) return "alert";
  if (type.startsWith("incident_")) return "incident";
  if (type.startsWith("task_")) return "task";
  if (type.startsWith("transmission_") || type.startsWith("transcription_")) return "radio";
  if (type === "asset_status_changed") return "status";
  if (type.startsWith("asset_position")) return "position";
  return "other";
}

function dataOf(item) {
  return item && typeof item.data === "object" && item.data !== null ? item.data : item;
}

function listOf(value) {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") return Object.values(value);
  return [];
}

function number(value) {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

/** {lat, lon} from the usual spellings (lat/lon, latitude/longitude, location/position). */
export function coordinates(data) {
  if (!data || typeof data !== "object") return null;
  for (const holder of [data, data.location, data.position, data.coords]) {
    if (!holder || typeof holder !== "object") continue;
    const lat = number(holder.lat ?? holder.latitude);
    const lon = number(holder.lon ?? holder.lng ?? holder.longitude);
    if (lat !== null && lon !== null) return { lat, lon };
  }
  return null;
}

/** One normalized position: {asset_id, lat, lon, status?, heading?, speed?, occurred_at?}. */
function position(item) {
  const data = dataOf(item);
  const where = coordinates(data);
  if (!where || typeof data.asset_id !== "string") return null;
  return {
    ...data,
    ...where,
    occurred_at: item.occurred_at ?? data.occurred_at ?? null,
  };
}

/**
 * Every position one delivered event carries: a single asset_position_updated,
 * an asset_positions batch (data.positions, each a position data object or an
 * envelope) or a fleet snapshot (data.positions / positions / assets).
 */
export function positionsOf(name, payload) {
  if (!payload || typeof payload !== "object") return [];
  let items;
  if (name === POSITION_TYPE) items = [payload];
  else if (name === BATCH_TYPE || isSnapshot(name)) {
    const holder = dataOf(payload);
    items = listOf(holder.positions ?? payload.positions ?? holder.assets ?? payload.assets);
  } else return [];
  return items.map(position).filter((p) => p !== null);
}

/** [{asset_id, status}] from asset_status_changed or a snapshot's statuses. */
export function statusesOf(name, payload) {
  if (!payload || typeof payload !== "object") return [];
  let items;
  if (name === "asset_status_changed") items = [payload];
  else if (isSnapshot(name)) {
    const holder = dataOf(payload);
    items = listOf(holder.statuses ?? payload.statuses ?? holder.assets ?? payload.assets);
  } else return [];
  return items
    .map(dataOf)
    .filter((d) => d && typeof d.asset_id === "string" && (d.status ?? d.new_status))
    .map((d) => ({ asset_id: d.asset_id, status: String(d.status ?? d.new_status) }));
}

/** Whether a status string means an incident or alert is over. */
export function isClosed(status) {
  return typeof status === "string" && CLOSED_STATES.has(status.toLowerCase());
}

/** The times one event stands for (one per position for a batch, none for a snapshot). */
export function occurredTimes(name, payload) {
  if (isSnapshot(name) || !payload || typeof payload !== "object") return [];
  if (name === BATCH_TYPE) return positionsOf(name, payload).map((p) => p.occurred_at);
  return [payload.occurred_at];
}

const ID_KEYS = ["asset_id", "incident_id", "alert_id", "task_id", "channel_id", "user_id"];

/** A short phrase saying what an event is about, for the feed. */
export function describe(name, payload) {
  if (name === BATCH_TYPE) return `${positionsOf(name, payload).length} positions`;
  if (isSnapshot(name)) return `${positionsOf(name, payload).length} assets`;
  const data = dataOf(payload) ?? {};
  const keys = [...ID_KEYS.filter((k) => k in data), ...Object.keys(data).filter((k) => !ID_KEYS.includes(k))];
  const parts = [];
  for (const key of keys) {
    const value = data[key];
    if (value === null || typeof value === "object") continue;
    parts.push(`${key}=${typeof value === "number" ? String(Number(value.toFixed(5))) : value}`);
  }
  const text = parts.join(" ");
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

/** The session payload, whatever the gateway calls its fields. */
export function readSession(payload) {
  const p = payload && typeof payload === "object" ? payload : {};
  const roles = p.roles ?? [];
  return {
    user: p.user ?? p.sub ?? p.user_id ?? "?",
    org: p.org ?? p.org_id ?? p.organization_id ?? "?",
    roles: Array.isArray(roles) ? roles : [String(roles)],
    rooms: listOf(p.rooms).map(String),
    sid: p.sid ?? null,
    gateway: p.gateway ?? p.gateway_id ?? null,
    expiresAt: number(p.exp ?? p.expires_at),
  };
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((q / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}
