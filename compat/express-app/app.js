// An Express app sharing sessions with the Rust side, configured by env:
// MONGODB_URI, SESSION_DATABASE, SESSION_COLLECTION, SESSION_SECRET
// (comma-separated; the first signs), COOKIE_NAME (connect.sid), PORT,
// STORE_LAYOUT (connect-mongo | connect-mongo-object | connect-mongodb-session).
'use strict';
const express = require('express');
const session = require('express-session');

const env = process.env;
const layout = env.STORE_LAYOUT || 'connect-mongo';
const database = env.SESSION_DATABASE || 'demo';
const collection = env.SESSION_COLLECTION || 'sessions';

function makeStore() {
  if (layout === 'connect-mongodb-session') {
    const MongoDBStore = require('connect-mongodb-session')(session);
    const store = new MongoDBStore({ uri: env.MONGODB_URI, databaseName: database, collection });
    store.on('error', (e) => console.error('store error', e));
    return store;
  }
  const MongoStore = require('connect-mongo');
  return MongoStore.create({
    mongoUrl: env.MONGODB_URI,
    dbName: database,
    collectionName: collection,
    stringify: layout !== 'connect-mongo-object',
  });
}

const app = express();
app.use(express.json({ strict: false, limit: '64kb' }));
app.use(session({
  name: env.COOKIE_NAME || 'connect.sid',
  secret: (env.SESSION_SECRET || 'change-me').split(','),
  store: makeStore(),
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 24 * 3600 * 1000, sameSite: 'lax' },
}));

function data(req) {
  const out = {};
  for (const [k, v] of Object.entries(req.session || {})) if (k !== 'cookie') out[k] = v;
  return { data: out };
}

app.get('/healthz', (req, res) => res.send('ok'));
app.get('/api/session', (req, res) => res.json(data(req)));
app.put('/api/session/:key', (req, res) => {
  req.session[req.params.key] = req.body;
  res.json(data(req));
});
app.post('/api/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = req.body && req.body.user;
    res.json({ user: req.session.user });
  });
});
app.post('/api/logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.clearCookie(env.COOKIE_NAME || 'connect.sid').json({ ok: true })));
});

const server = app.listen(Number(env.PORT || 3001), '127.0.0.1', () => {
  console.log(`express listening on http://127.0.0.1:${server.address().port}`);
});
