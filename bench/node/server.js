// Reference Node.js socket.io v4 server for fleetcast's benchmark.
//
// It speaks the protocol subset the benchmark exercises, the way a Node
// developer would write it with stock socket.io: JWT (HS256) in the `auth`
// payload, automatic org and user rooms, `subscribe`/`unsubscribe` with an
// ack, and fan-out of the events it reads from the same Redis pub/sub channels
// and wire format the fleetcast gateway reads (protocol/fleetcast/protocol/wire.py).
// So the benchmark publishes the same bytes to both servers and compares the
// cost of the same broadcast: same payload, same clients, same rooms.
//
// Env: PORT, REDIS_URL, JWT_SECRET, WS_PATH (default /ws).
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const { Server } = require('socket.io');
const { createClient } = require('redis');
const jwt = require('jsonwebtoken');

const PORT = Number(process.env.PORT || 0);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
// A KeyObject made once: handed a string, jsonwebtoken 9 first tries to parse
// it as a public key and catches the failure, ~2-3 ms per handshake.
const JWT_KEY = crypto.createSecretKey(Buffer.from(process.env.JWT_SECRET || 'dev-secret'));
const WS_PATH = process.env.WS_PATH || '/ws';
const CHANNEL_PATTERN = 'fleetcast:{*}:events';

const ID = /^[A-Za-z0-9._-]{1,128}$/;
const ENTITY_KINDS = new Set(['user', 'channel', 'incident', 'asset']);
const ANY_ROOM_ROLES = new Set(['admin', 'supervisor', 'dispatcher']);

let published = 0;

const httpServer = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true, clients: io.engine.clientsCount, redis_messages: published }));
    return;
  }
  res.statusCode = 404;
  res.end();
});

const io = new Server(httpServer, {
  path: WS_PATH,
  serveClient: false,
  perMessageDeflate: false,
  cors: { origin: true },
});

io.use((socket, next) => {
  try {
    const claims = jwt.verify(String(socket.handshake.auth?.token ?? ''), JWT_KEY, {
      algorithms: ['HS256'],
    });
    if (!ID.test(claims.org_id ?? '') || !ID.test(claims.sub ?? '')) throw new Error('bad claims');
    socket.data.claims = claims;
    next();
  } catch (e) {
    const err = new Error('invalid token');
    const expired = e && e.name === 'TokenExpiredError';
    err.data = { code: expired ? 'token_expired' : 'invalid_token', message: String(e.message) };
    next(err);
  }
});

// "channel:ch-3" -> "channel:ch-3:org:org-42"; null when refused.
function serverRoom(text, claims) {
  if (typeof text !== 'string' || text.length === 0 || text.length > 300) return null;
  const parts = text.split(':');
  const kind = parts[0];
  const roles = new Set(claims.roles || []);
  if (parts.length === 1 && (kind === 'org' || kind === 'fleet')) {
    return kind === 'org' ? `org:${claims.org_id}` : `fleet:org:${claims.org_id}`;
  }
  if (parts.length !== 2 || !ENTITY_KINDS.has(kind) || !ID.test(parts[1])) return null;
  const id = parts[1];
  const anyRoom = [...roles].some((r) => ANY_ROOM_ROLES.has(r));
  if (!anyRoom) {
    if (!roles.has('field_unit')) return null;
    const allowed =
      (kind === 'user' && id === claims.sub) ||
      (kind === 'channel' && (claims.channels || []).includes(id)) ||
      (kind === 'asset' && (claims.assets || []).includes(id));
    if (!allowed) return null;
  }
  return `${kind}:${id}:org:${claims.org_id}`;
}

function clientRoom(name) {
  const parts = name.split(':');
  if (parts[0] === 'org') return 'org';
  if (parts[0] === 'fleet') return 'fleet';
  return `${parts[0]}:${parts[1]}`;
}

io.on('connection', (socket) => {
  const claims = socket.data.claims;
  socket.join([`org:${claims.org_id}`, `user:${claims.sub}:org:${claims.org_id}`]);
  socket.emit('session', { sid: socket.id, user: claims.sub, org: claims.org_id });
  for (const verb of ['subscribe', 'unsubscribe']) {
    socket.on(verb, (msg, ack) => {
      if (typeof ack !== 'function') return;
      const text = msg && msg.room;
      const room = serverRoom(text, claims);
      if (room === null) {
        ack({ ok: false, error: { code: 'forbidden', message: 'room refused' } });
        return;
      }
      if (verb === 'subscribe') socket.join(room);
      else socket.leave(room);
      ack({ ok: true, room: text });
    });
  }
});

// One pub/sub message: {"v":1,"org":..., "events":[{"rooms":[...],"offsets":{...},"event":{...}}]}
// Each event reaches a client once, through the first of its rooms the client is in.
function deliver(raw) {
  published += 1;
  const doc = JSON.parse(raw);
  if (doc.v !== 1) return;
  for (const item of doc.events) {
    const covered = [];
    for (const room of item.rooms) {
      const payload = Object.assign({}, item.event, {
        room: clientRoom(room),
        offset: item.offsets[room] ?? null,
      });
      io.to(room).except(covered).emit(item.event.event_type, payload);
      covered.push(room);
    }
  }
}

async function main() {
  const sub = createClient({ url: REDIS_URL });
  sub.on('error', (e) => console.error('redis:', e.message));
  await sub.connect();
  await sub.pSubscribe(CHANNEL_PATTERN, (message) => deliver(message));
  httpServer.listen(PORT, '127.0.0.1', () => {
    console.log(JSON.stringify({ listening: httpServer.address().port }));
  });
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
