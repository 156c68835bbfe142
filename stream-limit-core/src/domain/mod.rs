//! The domain: identities, the limit policy, leases and the rule that governs them.
//! Nothing here knows about HTTP, SQL or async runtimes.

pub mod ids;
pub mod lease;
pub mod outcome;
pub mod policy;
pub mod request;
pub mod rules;
