//! What a case sends: a probe and the instance it goes to.

use std::fmt::{self, Write as _};

use proptest::prelude::*;
use proptest::sample::select;
use reqwest::{Method, StatusCode};

use super::instances::Policy;
use super::raw::raw_probe;
use super::requests::{http_probe, percent_decoded};
use super::INTERNAL_TEXT;

/// Bytes shown escaped, cut after a few hundred.
pub(super) struct Shown<'a>(pub(super) &'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 300;
        let cut = self.0.len().min(SHOWN);
        write!(f, "\"{}\"", self.0[..cut].escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "…({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}
/// One case: a probe and the instance (by its policy) it is sent to.
#[derive(Clone)]
pub(super) struct Case {
    pub(super) policy: Policy,
    pub(super) probe: Probe,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on the {:?} instance: {:?}", self.policy, self.probe)
    }
}

/// A well-formed request, or raw bytes on a fresh connection.
#[derive(Clone)]
pub(super) enum Probe {
    Http(HttpProbe),
    Raw(RawProbe),
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(http) => fmt::Debug::fmt(http, f),
            Self::Raw(raw) => fmt::Debug::fmt(raw, f),
        }
    }
}

impl Probe {
    /// Everything the case sends, as text, raw and percent-decoded, lowercased.
    fn input_text(&self) -> String {
        let raw = match self {
            Self::Http(http) => {
                let mut text = format!("{} {}", http.method, http.target);
                for (name, value) in &http.headers {
                    let _ = write!(text, "\n{name}: {}", String::from_utf8_lossy(value));
                }
                if let Some(body) = &http.body {
                    text.push('\n');
                    text.push_str(&String::from_utf8_lossy(&body.0));
                }
                text
            }
            Self::Raw(raw) => String::from_utf8_lossy(&raw.0).into_owned(),
        };
        format!("{raw}\n{}", percent_decoded(&raw)).to_lowercase()
    }

    /// Whether the case mentions a word of [`INTERNAL_TEXT`], which an echo
    /// could then carry into a body: such cases are not generated.
    fn mentions_internal_text(&self) -> bool {
        let text = self.input_text();
        INTERNAL_TEXT.iter().any(|word| text.contains(word))
    }
}

/// A request reqwest can send: method, path with query, headers, body.
#[derive(Clone)]
pub(super) struct HttpProbe {
    pub(super) method: Method,
    /// Path and query, already in URL form (`%`-encoded where needed).
    pub(super) target: String,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) body: Option<Body>,
}

impl HttpProbe {
    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// `GET /metrics` answers Prometheus text, the one body that is not JSON.
    pub(super) fn is_metrics(&self, status: StatusCode) -> bool {
        status == StatusCode::OK
            && (self.method == Method::GET || self.method == Method::HEAD)
            && self.target.split('?').next() == Some("/metrics")
    }
}

impl fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, Shown(self.target.as_bytes()))?;
        for (name, value) in &self.headers {
            write!(f, " -H {name}:{}", Shown(value))?;
        }
        match &self.body {
            Some(body) => write!(f, " body {}", Shown(&body.0)),
            None => write!(f, " (no body)"),
        }
    }
}

/// A request body (shown cut in failure messages).
#[derive(Clone)]
pub(super) struct Body(pub(super) Vec<u8>);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Shown(&self.0), f)
    }
}

/// Bytes written as they are to a fresh connection, then half-closed.
#[derive(Clone)]
pub(super) struct RawProbe(pub(super) Vec<u8>);

impl fmt::Debug for RawProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raw {}", Shown(&self.0))
    }
}
pub(super) fn case() -> impl Strategy<Value = Case> {
    (select(&[Policy::Reject, Policy::EvictOldest][..]), probe())
        .prop_map(|(policy, probe)| Case { policy, probe })
}

fn probe() -> impl Strategy<Value = Probe> {
    prop_oneof![
        4 => http_probe().prop_map(Probe::Http),
        1 => raw_probe().prop_map(Probe::Raw),
    ]
    .prop_filter("input must not spell internal words", |p| {
        !p.mentions_internal_text()
    })
}
