//! End-to-end tests of the HTTP contract: each test spawns its own
//! [`stream_limit_http::Application`] on a random port and talks to it over a
//! real socket. Time is a `ManualClock`, never a sleep.

mod admin;
mod concurrency;
mod errors;
mod health;
mod helpers;
mod lifecycle;
mod metrics;
mod policies;
mod seed;
mod take_over;
mod users;
mod watch;
