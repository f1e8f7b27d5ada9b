// The console's connection to a gateway, through the public client protocol
// only (DESIGN.md "Client protocol"): token in the Socket.IO auth payload,
// subscribe/unsubscribe with acks, refresh, receipts, and recovery with `since` after
// any reconnect, from the last offset seen in each room.

const ACK_TIMEOUT_MS = 10000;
const TERMINAL = new Set(["invalid_token", "token_expired", "forbidden"]);

export class Link {
  /**
   * @param {object} hooks onState(state), onSession(payload), onEvent(name, payload, receivedAt),
   *                       onAnswer(answer), onRooms(rooms)
   */
  constructor(path, hooks) {
    this.path = path;
    this.hooks = hooks;
    this.socket = null;
    this.token = null;
    this.rooms = new Map(); // room -> {state, code, message, recovered, offset}
    this.reconnects = 0;
    this.connectedOnce = false;
    this.retryTimer = null;
    this.closing = null; // the last disconnect_reason notice
  }

  connect(token) {
    this.close();
    this.token = token;
    this.connectedOnce = false;
    this.reconnects = 0;
    /* global io */
    const socket = io({
      path: this.path,
      // state: the open incidents and active alerts come first, at every (re)connect
      auth: (cb) => cb({ token: this.token, state: true }),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    this.socket = socket;
    this.state("connecting");
    socket.on("connect", () => this.onConnect());
    socket.on("connect_error", (err) => this.onConnectError(err));
    socket.on("disconnect", (reason) => this.onDisconnect(reason));
    socket.io.on("reconnect_attempt", (n) => this.state("reconnecting", { attempt: n }));
    socket.onAny((name, payload) => this.onAny(name, payload));
  }

  close() {
    clearTimeout(this.retryTimer);
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.io.removeAllListeners();
      this.socket.disconnect();
      this.socket = null;
    }
  }

  disconnect() {
    this.close();
    this.state("disconnected", { reason: "you disconnected" });
  }

  get connected() {
    return Boolean(this.socket && this.socket.connected);
  }

  state(name, detail = {}) {
    const transport = this.socket?.io?.engine?.transport?.name ?? null;
    this.hooks.onState({ name, transport, reconnects: this.reconnects, ...detail });
  }

  onConnect() {
    if (this.connectedOnce) this.reconnects += 1;
    this.connectedOnce = true;
    this.state("connected", { id: this.socket.id });
    this.socket.io.engine.once("upgrade", () => this.state("connected", { id: this.socket.id }));
    for (const room of this.rooms.keys()) this.request("subscribe", room);
  }

  onConnectError(err) {
    const data = err && err.data ? err.data : null;
    if (!data || !data.code) {
      this.state("reconnecting", { reason: err ? err.message : "unreachable" });
      return;
    }
    // A refusal by the server: socket.io-client does not retry by itself.
    this.state("refused", { code: data.code, message: data.message ?? "" });
    if (TERMINAL.has(data.code)) return;
    const hint = Number(data.retry_after_ms ?? (data.retry_after ?? 1) * 1000);
    const delay = Math.max(250, hint) + Math.random() * 500;
    this.retryTimer = setTimeout(() => this.socket && this.socket.connect(), delay);
  }

  onDisconnect(reason) {
    for (const entry of this.rooms.values()) entry.state = "pending";
    this.hooks.onRooms(this.rooms);
    if (reason === "io client disconnect") return;
    const notice = this.closing;
    this.closing = null;
    if (reason === "io server disconnect") {
      if (notice && TERMINAL.has(notice.code)) {
        // The same token cannot get back in: wait for a new one.
        this.state("refused", { code: notice.code, message: notice.message ?? "" });
        return;
      }
      // Closed by the server for another reason: connect again; a refusal then says why.
      this.state("reconnecting", { reason: notice ? notice.code : "closed by the server" });
      this.retryTimer = setTimeout(() => this.socket && this.socket.connect(), 1000);
      return;
    }
    this.state("reconnecting", { reason: notice ? notice.code : reason });
  }

  onAny(name, payload) {
    const receivedAt = Date.now();
    if (name === "session") {
      this.hooks.onSession(payload);
      return;
    }
    if (name === "disconnect_reason") {
      // Sent just before the server closes the connection: says why, and whether to come back.
      this.closing = payload;
      this.hooks.onAnswer({ at: receivedAt, op: "closing", room: "", since: null, ack: { ok: false, error: payload } });
      return;
    }
    if (payload && typeof payload.room === "string" && typeof payload.offset === "string") {
      const entry = this.rooms.get(payload.room);
      if (entry) entry.offset = payload.offset;
    }
    this.hooks.onEvent(name, payload, receivedAt);
  }

  /** Ask for a room; it is asked for again (with `since`) after every reconnect. */
  subscribe(room) {
    if (!this.rooms.has(room)) this.rooms.set(room, { state: "pending", offset: null });
    this.hooks.onRooms(this.rooms);
    if (this.connected) this.request("subscribe", room);
  }

  unsubscribe(room) {
    if (this.connected) this.request("unsubscribe", room);
    this.rooms.delete(room);
    this.hooks.onRooms(this.rooms);
  }

  async request(op, room) {
    const entry = this.rooms.get(room);
    const body = { room };
    if (op === "subscribe" && entry && entry.offset) body.since = entry.offset;
    let ack;
    try {
      ack = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(op, body);
    } catch (err) {
      ack = { ok: false, error: { code: "no_answer", message: String(err.message ?? err) } };
    }
    this.hooks.onAnswer({ at: Date.now(), op, room, since: body.since ?? null, ack });
    if (op !== "subscribe" || !entry || !this.rooms.has(room)) return;
    entry.state = ack && ack.ok ? "ok" : "refused";
    entry.code = ack?.error?.code ?? null;
    entry.message = ack?.error?.message ?? null;
    entry.recovered = ack?.recovered ?? null;
    this.hooks.onRooms(this.rooms);
  }

  /** Send `receipt {delivery_id, kind, response?}`; resolves to its ack (docs/receipts.md). */
  async receipt(body) {
    if (!this.connected) return { ok: false, error: { code: "not_connected", message: "" } };
    try {
      return await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("receipt", body);
    } catch (err) {
      return { ok: false, error: { code: "no_answer", message: String(err.message ?? err) } };
    }
  }

  /** Send `refresh` with a new token; future reconnects use it too. */
  async refresh(token) {
    this.token = token;
    if (!this.connected) return null;
    let ack;
    try {
      ack = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("refresh", { token });
    } catch (err) {
      ack = { ok: false, error: { code: "no_answer", message: String(err.message ?? err) } };
    }
    this.hooks.onAnswer({ at: Date.now(), op: "refresh", room: "", since: null, ack });
    return ack;
  }
}
