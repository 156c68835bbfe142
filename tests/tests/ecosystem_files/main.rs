//! The deployment files of `ecosystem/` against the code they deploy.
//!
//! No container engine runs here, so what can be checked is checked: every
//! YAML file parses (yaml-rust2: maintained, pure Rust, YAML 1.2 and
//! multi-document files; `serde_yaml` is archived), nginx accepts its config
//! (`nginx -t`) and retries exactly the requests that are safe to repeat (real
//! nginx, fake instances that hang up), and the files name the binary, ports,
//! environment variables and health routes that really exist: environment
//! variables go through the service's own settings loader, which refuses
//! unknown keys, and routes are read from a running binary's `GET /api`. A
//! renamed key, route, port or binary fails here.
//!
//! - [`files`]: reading the files; every YAML file parses and every file is
//!   explained in `ecosystem/README.md`;
//! - [`settings`]: the service's own loader judges every environment;
//! - [`nginx`]: `nginx -t`, the two upstreams files, JSON error pages, and
//!   which requests nginx replays;
//! - [`routes`]: what the files probe exists in the binary;
//! - [`pm2`], [`systemd`], [`docker`] (the image and compose) and
//!   [`kubernetes`]: each deployment against the binary, ports and settings.

mod docker;
mod files;
mod kubernetes;
mod nginx;
mod pm2;
mod routes;
mod settings;
mod systemd;

/// The binary every file runs (`[[bin]]` of stream-limit-http).
const BINARY: &str = "stream-limit-http";
/// Where the images and units install it.
const INSTALLED: &str = "/usr/local/bin/stream-limit-http";
/// Liveness (no store call) and readiness (pings the store).
const LIVENESS: &str = "/health";
const READINESS: &str = "/health/ready";
