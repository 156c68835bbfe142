// pm2: N instances of stream-limit-http on consecutive ports, behind
// ecosystem/nginx (which expects 3 instances on 8081-8083).
//
//   DATABASE_URL=postgres://... pm2 start ecosystem/pm2/ecosystem.config.js --env production
//
// Environment of this file (read once, when pm2 loads it):
//   DATABASE_URL              required: the Postgres every instance shares
//   STREAM_LIMIT_INSTANCES    how many instances (default 3)
//   STREAM_LIMIT_BASE_PORT    port of the first one (default 8081)
//   STREAM_LIMIT_BIN          the binary (default target/release/stream-limit-http
//                             of this checkout)
//
// Every other setting is an environment variable of the service itself:
// STREAM_LIMIT__<SECTION>__<KEY> (see stream-limit-http/src/settings.rs).

'use strict';

const path = require('path');

const root = path.resolve(__dirname, '..', '..');

// Without a database each instance would keep its own in-memory limit, and a
// viewer could hold N times the limit across the fleet: refuse to start.
if (!process.env.DATABASE_URL) {
  throw new Error(
    'stream-limit: set DATABASE_URL before `pm2 start`: every instance of a fleet must share one Postgres'
  );
}

const instances = Number(process.env.STREAM_LIMIT_INSTANCES || 3);
const basePort = Number(process.env.STREAM_LIMIT_BASE_PORT || 8081);
if (!Number.isInteger(instances) || instances < 1 || !Number.isInteger(basePort)) {
  throw new Error('stream-limit: STREAM_LIMIT_INSTANCES and STREAM_LIMIT_BASE_PORT must be integers');
}
const script = process.env.STREAM_LIMIT_BIN || path.join(root, 'target', 'release', 'stream-limit-http');

// server.shutdown_timeout_secs: how long in-flight requests may finish after the
// first SIGTERM or SIGINT (a second one stops the instance at once).
const SHUTDOWN_TIMEOUT_SECS = 30;

const app = (index) => ({
  name: `stream-limit-${index + 1}`,
  script,
  args: [],
  cwd: root,
  // A native binary: no Node interpreter, fork mode (cluster mode is for Node apps).
  interpreter: 'none',
  exec_mode: 'fork',
  instances: 1,
  autorestart: true,
  max_restarts: 10,
  min_uptime: '10s',
  exp_backoff_restart_delay: 200,
  // pm2 stops every app with its daemon's PM2_KILL_SIGNAL (SIGINT unless
  // set; pm2 7 has no per-app kill_signal), and stream-limit-http drains on
  // SIGINT as on SIGTERM (tests/tests/pm2_fleet.rs stops it so). pm2 sends
  // SIGKILL after kill_timeout: leave the drain its full shutdown timeout,
  // plus 5 s.
  kill_timeout: (SHUTDOWN_TIMEOUT_SECS + 5) * 1000,
  time: true,
  env: {
    PORT: String(basePort + index),
    DATABASE_URL: process.env.DATABASE_URL,
    STREAM_LIMIT__SERVER__HOST: '127.0.0.1',
    STREAM_LIMIT__SERVER__SHUTDOWN_TIMEOUT_SECS: String(SHUTDOWN_TIMEOUT_SECS),
    STREAM_LIMIT__STORE__POOL_SIZE: '16',
    STREAM_LIMIT__LOG__FORMAT: 'text',
    STREAM_LIMIT__LOG__LEVEL: 'info',
  },
  env_production: {
    STREAM_LIMIT__LOG__FORMAT: 'json',
    STREAM_LIMIT__LOG__LEVEL: 'info',
  },
  env_development: {
    STREAM_LIMIT__LOG__LEVEL: 'debug',
  },
});

module.exports = {
  apps: Array.from({ length: instances }, (_, index) => app(index)),
};
