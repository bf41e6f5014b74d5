// Benchmark peer: Express 4 + express-session + connect-mongo 5.1, serving the
// contract in bench/CONTRACT.md. The modules come from compat/express-app
// (install them with scripts/install-express-peer), so this file runs from any
// working directory: `node bench/node/server.js`.
'use strict';
const path = require('path');

const modules = path.join(__dirname, '../../compat/express-app/node_modules');
const express = require(path.join(modules, 'express'));
const session = require(path.join(modules, 'express-session'));
const MongoStore = require(path.join(modules, 'connect-mongo'));

const env = process.env;
for (const name of ['PORT', 'MONGODB_URI', 'BENCH_DB']) {
  if (!env[name]) {
    console.error(`bench/node/server.js: ${name} must be set`);
    process.exit(2);
  }
}
const HOUR = 3600;

// As connect-mongo's README recommends for lazy session updates: touchAfter
// suppresses the touch write for an unchanged session for 1 hour; ttl is only
// used when the cookie has no expiry (it has one here). autoRemove stays
// 'native' (a TTL index on `expires`, created when the store connects).
const store = MongoStore.create({
  mongoUrl: env.MONGODB_URI,
  mongoOptions: { maxPoolSize: 64 },
  dbName: env.BENCH_DB,
  collectionName: env.BENCH_COLLECTION || 'sessions',
  touchAfter: HOUR,
  ttl: HOUR,
});

const app = express();
app.get('/health', (req, res) => res.type('text/plain').send('ok'));
app.use(session({
  secret: 'mongodb-session-store-bench',
  store,
  resave: false,
  saveUninitialized: false,
  rolling: false,
  cookie: { maxAge: HOUR * 1000 },
}));

app.get('/new', (req, res, next) => {
  req.session.n = 0;
  req.session.user = 'bench';
  req.session.blob = 'x'.repeat(900);
  // Persist before answering; express-session then sees the session as saved.
  req.session.save((err) => (err ? next(err) : res.type('text/plain').send('created')));
});

app.get('/read', (req, res) => {
  const n = req.session.n;
  if (typeof n !== 'number') return res.status(401).type('text/plain').send('no session');
  res.type('text/plain').send(String(n));
});

app.post('/incr', (req, res) => {
  if (typeof req.session.n !== 'number') return res.status(401).type('text/plain').send('no session');
  req.session.n += 1;
  // express-session saves the modified session (an upsert) before the response ends.
  res.type('text/plain').send(String(req.session.n));
});

// Listen once the store's collection (and its TTL index) is ready.
store.collectionP.then(() => {
  app.listen(Number(env.PORT), '127.0.0.1');
}, (err) => {
  console.error('bench/node/server.js: MongoDB store failed:', err);
  process.exit(1);
});
