// PM2 process file for Fabio (see README, "Running as a service").
//
//   pm2 start deploy/ecosystem.config.js --only fabio-enhanced   # the agent (+ its dashboard)
//   pm2 logs fabio-enhanced
//   pm2 start deploy/ecosystem.config.js --only fabio-dashboard  # optional: a separate viewer
//
// Settings come from `.env` in the project folder, which Fabio reads itself (pydantic-settings):
// they are deliberately not copied into PM2's environment, so `pm2 show` / `pm2 env` never
// display OPENAI_API_KEY, TOPSTEP_* or DASHBOARD_TOKEN. PM2 stops an app with SIGINT by
// default; Fabio wants SIGTERM (stop new entries, keep the venue-side stops, journal, exit 0),
// and `kill_timeout` gives it time to finish before PM2 escalates to SIGKILL.
"use strict";

const path = require("path");

const root = path.resolve(__dirname, "..");
const fabio = path.join(root, ".venv", "bin", "fabio");
const logs = path.join(root, "logs");

const common = {
  cwd: root,
  interpreter: "none",
  autorestart: true,
  min_uptime: "60s", // a start that dies sooner counts as unstable
  max_restarts: 10, // then PM2 gives up: a trading bot in a crash loop needs a human
  restart_delay: 5000,
  exp_backoff_restart_delay: 2000,
  kill_timeout: 30000,
  shutdown_with_message: false,
  treekill: true,
  merge_logs: true,
  time: true,
  env: { PYTHONUNBUFFERED: "1" },
};

module.exports = {
  apps: [
    {
      ...common,
      name: "fabio-enhanced",
      script: fabio,
      args: ["run", "--quiet", "--dashboard"],
      out_file: path.join(logs, "pm2-fabio-enhanced.out.log"),
      error_file: path.join(logs, "pm2-fabio-enhanced.err.log"),
      kill_signal: "SIGTERM",
    },
    {
      ...common,
      name: "fabio-dashboard",
      script: fabio,
      // A viewer over the journals that outlives agent restarts (port 8766; the agent's own
      // dashboard is on DASHBOARD_PORT, 8765 by default).
      args: ["serve", "--port", "8766"],
      out_file: path.join(logs, "pm2-fabio-dashboard.out.log"),
      error_file: path.join(logs, "pm2-fabio-dashboard.err.log"),
      kill_signal: "SIGTERM",
      max_restarts: 50,
    },
  ],
};
