//! The support console: one static page on the admin listener, at
//! `GET /admin/console`, that calls the admin JSON routes from the browser.
//!
//! The page and its two assets are the only admin paths served without a key
//! ([`is_public`], checked by `admin::require_api_key`): a browser cannot send
//! a header when it navigates, and the files hold no data. The operator types
//! the key into the page, which keeps it in memory and sends it only as the
//! `X-API-Key` header of its `fetch` calls, never in a URL.
//!
//! The files live in `console/` beside this module and are compiled into the
//! binary: no build step, nothing read from disk at run time. They are served
//! with a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline code, no framing, no form submission), so that a value
//! shown on the page (a device id, a Session-Id) can never run as code even if
//! the page's own escaping were wrong.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpResponse};

use super::{read, resource, GET};

/// The page's path.
pub(crate) const PAGE: &str = "/admin/console";
/// The page's script.
const SCRIPT: &str = "/admin/console/console.js";
/// The page's stylesheet.
const STYLE: &str = "/admin/console/console.css";

/// What the browser may do with the console. `connect-src 'self'`: the page
/// talks to this listener only; `form-action 'none'`: no form ever navigates
/// (the page submits with `fetch`, so a form without its script cannot put
/// what was typed into a URL either).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` (as the request spelled it, before any decoding) is one of
/// the console's files, the only admin paths served without `X-API-Key`. An
/// exact match: `/admin/console/`, another spelling or a sibling still needs
/// the key.
pub(crate) fn is_public(path: &str) -> bool {
    [PAGE, SCRIPT, STYLE].contains(&path)
}

/// Registers the page and its assets.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(PAGE, GET).route(read().to(page)))
        .service(resource(SCRIPT, GET).route(read().to(script)))
        .service(resource(STYLE, GET).route(read().to(style)));
}

/// The support console (HTML): look a viewer up, revoke streams, set a limit.
///
/// Served without `X-API-Key`: the page holds no data, and asks for the key
/// to call the routes above. Its script and stylesheet are
/// `/admin/console/console.js` and `/admin/console/console.css`.
#[utoipa::path(get, path = "/admin/console", tag = "admin", operation_id = "adminConsole",
    security(()),
    responses((status = 200, description = "The page", content_type = "text/html",
        body = String,
        headers(("Content-Security-Policy" = String,
            description = "Scripts, styles and requests to this origin only; no inline code, no framing")))))]
pub(crate) async fn page() -> HttpResponse {
    file(
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    )
}

async fn script() -> HttpResponse {
    file(
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    )
}

async fn style() -> HttpResponse {
    file(
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    )
}

/// One of the files, with the headers every one of them carries.
fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        // The declared type only: a script is never sniffed into anything else.
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        // A new release's page replaces the old one at once, and no shared
        // cache keeps a copy of an admin page.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_files_are_public() {
        for path in [PAGE, SCRIPT, STYLE] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/admin/console/",
            "/admin/console/nope.js",
            "/admin/%63onsole",
            "/admin/consoles",
            "/admin/console/../viewers/user:1/streams",
            "/admin/viewers/user:1/streams",
            "/admin/openapi.json",
            "/",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }

    #[test]
    fn the_page_loads_no_inline_code_and_names_only_its_own_assets() {
        let html = include_str!("console/index.html");
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.split_whitespace().find(|word| {
            word.strip_prefix("on")
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(event, _)| event.bytes().all(|b| b.is_ascii_lowercase()))
        });
        assert_eq!(handler, None, "inline event handler");
        assert!(html.contains(&format!("src=\"{SCRIPT}\"")));
        assert!(html.contains(&format!("href=\"{STYLE}\"")));
    }

    #[test]
    fn the_script_never_writes_html_from_strings() {
        let script = include_str!("console/console.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(sink), "{sink}");
        }
    }
}
