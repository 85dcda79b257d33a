//! GraphiQL, served by every Shopgraph server (router and subgraphs) from
//! its own origin: the page needs no CDN and no other host, so it works
//! with no internet, and it runs subscriptions.
//!
//! The bundle is `web-demo/graphiql/` (GraphiQL 4 on CodeMirror 5, React,
//! and a fetcher that sends queries and mutations over HTTP and
//! subscriptions over `graphql-transport-ws`, the headers tab's
//! `Authorization` going in `connection_init` too). Vite builds it into
//! `web-demo/graphiql/dist/`, which is committed, compiled in here by
//! `rust-embed` (with `debug-embed`: debug builds and tests serve what a
//! release serves) and checked fresh by `web-demo/check.sh`.
//!
//! | route | answers |
//! |---|---|
//! | `GET /graphql` from a browser (the server's handler calls [`page`]) | `dist/index.html` with this server's title and paths filled in; `no-cache` |
//! | `GET /graphiql/assets/…` ([`routes`]) | the content-hashed script, styles and CodeMirror chunks; cached for a year (`immutable`) |
//!
//! Both carry [`CONTENT_SECURITY_POLICY`]. A server adds [`routes`] only
//! where GraphiQL is on (`GRAPHIQL`: on in `dev`, off in `serve` unless
//! enabled), so with it off neither the page nor its files exist.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::static_files::{self, CACHE_HASHED, CACHE_REVALIDATE};

/// The Vite build of `web-demo/graphiql/`, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "../../web-demo/graphiql/dist/"]
struct Assets;

/// Where the bundle's files are served (Vite's `base`): a prefix no API
/// route and no storefront file uses.
pub const ASSETS_PATH: &str = "/graphiql/assets/";

/// The page template, with `__GRAPHIQL_*__` placeholders.
const INDEX: &str = "index.html";

/// The policy of the page and its files: scripts, styles and connections
/// (HTTP and the websocket) to this origin only. GraphiQL's fonts are
/// inlined in its CSS as `data:` URLs; nothing else is loosened (no
/// `'unsafe-inline'`, no `'unsafe-eval'`, no workers: CodeMirror 5 needs
/// none), and the page is never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     worker-src 'none'; object-src 'none'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

/// The GraphiQL page for a browser's `GET /graphql`: `title` in the tab,
/// queries and mutations to `/graphql`, subscriptions over a websocket to
/// `subscriptions` (a path on the same origin: `/graphql` at the router,
/// `/graphql/ws` at a subgraph).
pub fn page(title: &str, subscriptions: &str) -> Response {
    let Some(template) = Assets::get(INDEX) else {
        // Only a build without web-demo/graphiql/dist gets here.
        tracing::error!("the GraphiQL bundle is not compiled in (web-demo/graphiql/dist)");
        return StatusCode::NOT_FOUND.into_response();
    };
    let html = String::from_utf8_lossy(&template.data)
        .replace("__GRAPHIQL_TITLE__", &escape(title))
        .replace("__GRAPHIQL_ENDPOINT__", "/graphql")
        .replace("__GRAPHIQL_SUBSCRIPTIONS__", &escape(subscriptions));
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_REVALIDATE),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The routes of the page's files, `GET /graphiql/assets/{file}`. Add them
/// only where GraphiQL is on.
pub fn routes() -> Router {
    Router::new().route("/graphiql/assets/{*file}", get(asset))
}

/// The paths of every file [`routes`] serves (for tests and checks).
pub fn asset_paths() -> Vec<String> {
    Assets::iter()
        .filter(|name| name.starts_with("assets/"))
        .map(|name| format!("/graphiql/{name}"))
        .collect()
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match Assets::get(&format!("assets/{file}")) {
        Some(embedded) => {
            static_files::file_response(embedded, &headers, CACHE_HASHED, CONTENT_SECURITY_POLICY)
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `text` safe in HTML text and in a quoted attribute.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    use super::*;

    /// Absolute URLs that may stand in the bundle because no browser ever
    /// fetches them: XML namespace names, and links or error-message text
    /// that point a person at documentation (GraphiQL's logo, React's
    /// minified-error pages, markdown-it's and CodeMirror's docs). A URL
    /// passes when it starts with one of these.
    const NEVER_FETCHED: [&str; 8] = [
        "http://www.w3.org/",
        "https://react.dev/errors/",
        "https://github.com/graphql/graphiql",
        "https://yarnpkg.com/en/docs/selective-version-resolutions",
        "https://en.wikipedia.org/wiki/IEEE_floating_point",
        "https://commonmark.org/",
        "https://codemirror.net/5/doc/manual.html",
        // markdown-it's linkify giving a link in a description a scheme.
        "http://${",
    ];

    fn never_fetched(url: &str) -> bool {
        // `"http://" + link`: the bare scheme, no host (markdown-it again).
        url == "http://" || NEVER_FETCHED.iter().any(|allowed| url.starts_with(allowed))
    }

    async fn get(uri: &str) -> Response {
        routes()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// Every `http://` or `https://` URL in `text`, up to a quote, a
    /// space or a bracket.
    fn absolute_urls(text: &str) -> Vec<&str> {
        let mut found = Vec::new();
        for scheme in ["http://", "https://"] {
            for (at, _) in text.match_indices(scheme) {
                let end = text[at..]
                    .find(|c: char| c.is_whitespace() || "\"'`()<>\\".contains(c))
                    .map_or(text.len(), |len| at + len);
                found.push(&text[at..end]);
            }
        }
        found
    }

    #[tokio::test]
    async fn the_page_names_this_server_and_loads_only_its_own_files() {
        let response = page("product <subgraph>", "/graphql/ws");
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_REVALIDATE);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        let html = text(response).await;
        assert!(!html.contains("__GRAPHIQL_"), "a placeholder left: {html}");
        assert!(
            html.contains("<title>product &lt;subgraph&gt;</title>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<meta name="graphiql-endpoint" content="/graphql" />"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<meta name="graphiql-subscriptions" content="/graphql/ws" />"#),
            "{html}"
        );
        // No other host at all in the page, not even in a comment.
        assert!(!html.contains("://"), "{html}");
        // Every file it loads is served, with its type and a year's cache.
        let mut loaded = 0;
        for (at, _) in html.match_indices(ASSETS_PATH) {
            let end = at + html[at..].find('"').expect("a quoted path");
            let path = &html[at..end];
            let asset = get(path).await;
            assert_eq!(asset.status(), StatusCode::OK, "{path}");
            assert_eq!(asset.headers()[header::CACHE_CONTROL], CACHE_HASHED);
            assert_eq!(
                asset.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            let expected = if path.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(asset.headers()[header::CONTENT_TYPE], expected, "{path}");
            loaded += 1;
        }
        assert_eq!(loaded, 2, "one script and one stylesheet: {html}");
    }

    #[tokio::test]
    async fn no_file_of_the_bundle_reaches_for_another_host() {
        let paths = asset_paths();
        assert!(paths.len() > 2, "{paths:?}");
        for path in paths {
            let response = get(&path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert!(
                path.ends_with(".js") || path.ends_with(".css"),
                "an unexpected kind of file: {path}"
            );
            let body = text(response).await;
            for url in absolute_urls(&body) {
                assert!(never_fetched(url), "{path} names another host: {url}");
            }
            // What would load from elsewhere at run time.
            for loader in ["importScripts(", "new Worker(", "@import url("] {
                assert!(!body.contains(loader), "{path} uses {loader}");
            }
        }
    }

    #[test]
    fn the_url_finder_finds_what_the_allow_list_must_vouch_for() {
        let text = r#"import("https://cdn.example/x.js");b=`http://${host}`;
            c="https://github.com/graphql/graphiql";d=url('http://cdn.example/w3.org/')"#;
        let found = absolute_urls(text);
        assert_eq!(
            found,
            [
                "http://${host}",
                "http://cdn.example/w3.org/",
                "https://cdn.example/x.js",
                "https://github.com/graphql/graphiql",
            ]
        );
        let passed: Vec<bool> = found.iter().map(|url| never_fetched(url)).collect();
        assert_eq!(passed, [true, false, false, true], "{found:?}");
    }

    #[tokio::test]
    async fn missing_files_are_404_and_the_template_is_not_a_file() {
        for path in [
            "/graphiql/assets/gone-1234.js",
            "/graphiql/assets/",
            "/graphiql/assets/../index.html",
            "/graphiql/index.html",
        ] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn titles_and_paths_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
