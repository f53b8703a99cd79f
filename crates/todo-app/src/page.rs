//! The user-facing todo page: HTML, JS and CSS compiled into the binary (no build step), served
//! with a strict Content-Security-Policy, plus `/config.json` telling the page how to sign in.
//!
//! The page only talks to this origin (`/api/database/records/todos`, and `/dev/*` in dev
//! sign-in mode), so the policy allows `'self'` and nothing else: no inline script or style,
//! no `eval`, no frames, no plugins, and Trusted Types required, so an accidental `innerHTML`
//! with data throws instead of parsing it.
//!
//! With a Clerk publishable key the page loads clerk-js from the key's Frontend API (as
//! Clerk's script-tag quickstart does), and the policy adds what Clerk documents it needs:
//! that origin for scripts and XHR, `img.clerk.com`, Cloudflare's bot check, `blob:` workers
//! and inline styles (Clerk's CSS-in-JS). Trusted Types are not required then: clerk-js
//! writes HTML itself. That path needs the internet and is not tested here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::json;

/// The page, its script and its styles, as shipped in `static/`.
pub const INDEX_HTML: &str = include_str!("../static/index.html");
pub const APP_JS: &str = include_str!("../static/app.js");
pub const APP_CSS: &str = include_str!("../static/app.css");
pub const FAVICON_SVG: &str = include_str!("../static/favicon.svg");

/// The clerk-js major version the page loads: the one Clerk's script-tag quickstart uses,
/// whose bundle includes the sign-in UI.
pub const CLERK_JS_MAJOR: u32 = 5;

/// A Clerk instance, as its publishable key names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkFrontend {
    publishable_key: String,
    frontend_api: String,
}

impl ClerkFrontend {
    /// Reads the Frontend API host out of a publishable key: `pk_test_` or `pk_live_`, then
    /// base64 of `<host>$`. The host must be a plain DNS name, since it goes into a header
    /// (the CSP) and a script URL.
    pub fn from_publishable_key(key: &str) -> Result<Self, &'static str> {
        let encoded = key
            .strip_prefix("pk_test_")
            .or_else(|| key.strip_prefix("pk_live_"))
            .ok_or("a Clerk publishable key starts with pk_test_ or pk_live_")?;
        // Clerk encodes with `btoa` (standard alphabet); keys are seen with and without padding.
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(encoded)
            .map_err(|_| "the part after pk_test_/pk_live_ is not base64")?;
        let text = String::from_utf8(decoded).map_err(|_| "the key does not decode to text")?;
        let host = text
            .strip_suffix('$')
            .ok_or("the key does not decode to a Clerk Frontend API host")?;
        let plain_dns_name = !host.is_empty()
            && host.len() <= 253
            && host.contains('.')
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !plain_dns_name {
            return Err("the key does not decode to a Clerk Frontend API host");
        }
        Ok(Self {
            publishable_key: key.to_owned(),
            frontend_api: host.to_ascii_lowercase(),
        })
    }

    /// The Frontend API host, e.g. `clerk.example.com` or `name-12.clerk.accounts.dev`.
    #[cfg(test)]
    pub fn frontend_api(&self) -> &str {
        &self.frontend_api
    }

    /// `https://<frontend api>`: where clerk-js comes from and what it calls.
    pub fn origin(&self) -> String {
        format!("https://{}", self.frontend_api)
    }

    /// clerk-js from the instance's own Frontend API, as Clerk's quickstart loads it.
    pub fn script_url(&self) -> String {
        format!(
            "{}/npm/@clerk/clerk-js@{CLERK_JS_MAJOR}/dist/clerk.browser.js",
            self.origin()
        )
    }
}

/// How the page offers sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Nothing configured: the page says how to turn a mode on.
    None,
    /// `--dev-sign-in`: a picker of local test users, tokens minted by `/dev/token`.
    Dev,
    /// `--clerk-publishable-key`: Clerk's sign-in, `insforge` template tokens.
    Clerk(ClerkFrontend),
}

/// What `/` and `/config.json` answer, computed once at start.
#[derive(Debug, Clone)]
pub struct Page {
    csp: HeaderValue,
    config_json: Arc<str>,
}

impl Page {
    pub fn new(sign_in: &SignIn) -> Self {
        let config = match sign_in {
            SignIn::None => json!({ "signIn": "none" }),
            SignIn::Dev => json!({ "signIn": "dev" }),
            SignIn::Clerk(clerk) => json!({
                "signIn": "clerk",
                "clerk": {
                    "publishableKey": clerk.publishable_key,
                    "scriptUrl": clerk.script_url(),
                },
            }),
        };
        let csp = content_security_policy(match sign_in {
            SignIn::Clerk(clerk) => Some(clerk),
            _ => None,
        });
        Self {
            // Built only from fixed text and a host checked to be a plain DNS name.
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
            config_json: config.to_string().into(),
        }
    }

    /// The `Content-Security-Policy` the page is served with.
    pub fn csp(&self) -> &HeaderValue {
        &self.csp
    }
}

/// The policy for the page. Every directive the page does not use is `'none'` through
/// `default-src`.
pub fn content_security_policy(clerk: Option<&ClerkFrontend>) -> String {
    let mut directives: Vec<String> = vec!["default-src 'none'".into()];
    match clerk {
        None => directives.extend(
            [
                "script-src 'self'",
                "style-src 'self'",
                "img-src 'self'",
                "connect-src 'self'",
                "require-trusted-types-for 'script'",
                "trusted-types 'none'",
            ]
            .map(String::from),
        ),
        Some(clerk) => {
            let origin = clerk.origin();
            directives.extend([
                format!("script-src 'self' {origin} https://challenges.cloudflare.com"),
                "style-src 'self' 'unsafe-inline'".into(),
                "img-src 'self' https://img.clerk.com".into(),
                format!("connect-src 'self' {origin}"),
                "worker-src 'self' blob:".into(),
                "frame-src https://challenges.cloudflare.com".into(),
            ]);
        }
    }
    directives.extend(
        [
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
        .map(String::from),
    );
    directives.join("; ")
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // No ETag to revalidate against: always fetch, so a rebuilt binary's page is used.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page, with its policy.
pub async fn index(State(page): State<Arc<Page>>) -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, page.csp().clone());
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /app.js`
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /app.css`
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /favicon.svg`
pub async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}

/// `GET /config.json`: which sign-in the page offers (and Clerk's key and script, if any).
pub async fn config(State(page): State<Arc<Page>>) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        page.config_json.to_string(),
    )
        .into_response();
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: &str, host: &str) -> String {
        format!(
            "{prefix}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{host}$"))
        )
    }

    #[test]
    fn publishable_keys_name_their_frontend_api() {
        let dev = ClerkFrontend::from_publishable_key(&key(
            "pk_test_",
            "golden-doberman-30.clerk.accounts.dev",
        ))
        .unwrap();
        assert_eq!(dev.frontend_api(), "golden-doberman-30.clerk.accounts.dev");
        assert_eq!(
            dev.script_url(),
            "https://golden-doberman-30.clerk.accounts.dev/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
        );
        let padded = format!(
            "pk_live_{}",
            base64::engine::general_purpose::STANDARD.encode("clerk.example.com$")
        );
        assert_eq!(
            ClerkFrontend::from_publishable_key(&padded)
                .unwrap()
                .origin(),
            "https://clerk.example.com"
        );
    }

    #[test]
    fn keys_that_name_no_plain_host_are_refused() {
        for bad in [
            "".to_owned(),
            "sk_test_abc".to_owned(),
            "pk_test_!!!".to_owned(),
            format!(
                "pk_test_{}",
                base64::engine::general_purpose::STANDARD.encode("clerk.example.com")
            ),
            key("pk_test_", "localhost"),
            key("pk_test_", "evil.com; script-src *"),
            key("pk_test_", "evil.com/path"),
            key("pk_test_", "a..b"),
            key("pk_test_", "a$b.com"),
            key("pk_test_", "-a.com"),
        ] {
            assert!(ClerkFrontend::from_publishable_key(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_is_strict_without_clerk() {
        let csp = content_security_policy(None);
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert!(csp.contains("require-trusted-types-for 'script'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("https:"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn clerk_adds_its_own_origins_only() {
        let clerk =
            ClerkFrontend::from_publishable_key(&key("pk_test_", "name-12.clerk.accounts.dev"))
                .unwrap();
        let csp = content_security_policy(Some(&clerk));
        assert!(
            csp.contains("script-src 'self' https://name-12.clerk.accounts.dev https://challenges.cloudflare.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' https://name-12.clerk.accounts.dev;"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert!(!csp.contains('*'), "{csp}");
    }

    #[test]
    fn the_script_never_parses_html() {
        // The CSP makes it throw at run time; this catches it before a browser does.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline script in index.html"
        );
        assert!(!INDEX_HTML.contains("style="), "inline style in index.html");
    }
}
