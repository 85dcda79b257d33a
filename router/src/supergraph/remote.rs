//! A supergraph delivered over HTTP(S), the way Hive's CDN and Apollo
//! Uplink deliver them: the router asks a URL, remembers the answer's
//! `ETag` and from then on asks with `If-None-Match`, so an unchanged
//! supergraph costs the source a `304` and the router nothing.
//!
//! Fetching is all this module does. What to do with an answer (build,
//! swap in, keep the last good one when the source is down or serves
//! something broken) is [`super::watch`]'s, as for a file.

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::SupergraphError;

/// A supergraph larger than this is refused: a misconfigured URL (a
/// download page, a log) must not fill the router's memory.
pub const MAX_SUPERGRAPH_BYTES: usize = 32 * 1024 * 1024;

/// Where a remote supergraph is and how to ask for it.
#[derive(Debug, Clone)]
pub struct SupergraphUrl {
    /// `http://` or `https://`.
    pub url: reqwest::Url,
    /// One header sent with every fetch, for sources that want a key
    /// (`X-Hive-CDN-Key: …`, `Authorization: Bearer …`); its value is
    /// marked sensitive so it never shows in logs or `Debug`.
    pub header: Option<(HeaderName, HeaderValue)>,
    /// How long the first fetch may keep failing before the router gives
    /// up starting: with no supergraph there is nothing to serve.
    pub startup_timeout: Duration,
}

/// What one fetch found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The source answered `304 Not Modified`.
    Unchanged,
    /// The source answered with a supergraph (maybe the same one, when it
    /// sends no `ETag`; the caller compares fingerprints).
    Sdl(String),
}

/// Fetches one [`SupergraphUrl`], remembering the last `ETag`.
pub struct RemoteSupergraph {
    source: SupergraphUrl,
    client: reqwest::Client,
    etag: Option<HeaderValue>,
}

impl RemoteSupergraph {
    /// A fetcher for `source` with its own HTTP client (short timeouts: a
    /// slow source delays the next poll, never a request).
    pub fn new(source: SupergraphUrl) -> Result<Self, SupergraphError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("shopgraph-router/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| SupergraphError::Fetch {
                url: source.url.to_string(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            source,
            client,
            etag: None,
        })
    }

    /// The URL, for logs.
    pub fn url(&self) -> &reqwest::Url {
        &self.source.url
    }

    /// Asks the source once. The `ETag` of an answer is remembered only
    /// once the caller [`accept`](Self::accept)s it, so a supergraph that
    /// failed to load is fetched again in full rather than answered `304`
    /// forever.
    pub async fn fetch(&self) -> Result<(Fetched, Option<HeaderValue>), SupergraphError> {
        let fail = |reason: String| SupergraphError::Fetch {
            url: self.source.url.to_string(),
            reason,
        };
        let mut request = self.client.get(self.source.url.clone());
        if let Some((name, value)) = &self.source.header {
            request = request.header(name, value);
        }
        if let Some(etag) = &self.etag {
            request = request.header(http::header::IF_NONE_MATCH, etag);
        }
        let mut response = request.send().await.map_err(|err| fail(describe(&err)))?;
        match response.status() {
            StatusCode::NOT_MODIFIED if self.etag.is_some() => {
                return Ok((Fetched::Unchanged, self.etag.clone()));
            }
            StatusCode::OK => {}
            status => return Err(fail(format!("answered {status}"))),
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_SUPERGRAPH_BYTES as u64)
        {
            return Err(fail(format!(
                "the supergraph is over {MAX_SUPERGRAPH_BYTES} bytes"
            )));
        }
        let etag = response.headers().get(http::header::ETAG).cloned();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| fail(describe(&err)))? {
            if body.len() + chunk.len() > MAX_SUPERGRAPH_BYTES {
                return Err(fail(format!(
                    "the supergraph is over {MAX_SUPERGRAPH_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let sdl = String::from_utf8(body).map_err(|_| fail("the answer is not UTF-8".into()))?;
        Ok((Fetched::Sdl(sdl), etag))
    }

    /// Remembers `etag` as the version the router now serves.
    pub fn accept(&mut self, etag: Option<HeaderValue>) {
        self.etag = etag;
    }

    /// Fetches until the source answers with a supergraph, backing off
    /// from 250 ms to 4 s between tries, for at most the startup timeout:
    /// a router starting beside its source (same deployment) should not
    /// fail because it came up a second earlier.
    pub async fn fetch_at_start(&mut self) -> Result<String, SupergraphError> {
        let deadline = tokio::time::Instant::now() + self.source.startup_timeout;
        let mut pause = Duration::from_millis(250);
        loop {
            let failure = match self.fetch().await {
                Ok((Fetched::Sdl(sdl), etag)) => {
                    self.accept(etag);
                    return Ok(sdl);
                }
                // Only possible with an ETag, which nothing set yet.
                Ok((Fetched::Unchanged, _)) => SupergraphError::Fetch {
                    url: self.source.url.to_string(),
                    reason: "answered 304 to a first request".into(),
                },
                Err(err) => err,
            };
            if tokio::time::Instant::now() + pause > deadline {
                return Err(failure);
            }
            tracing::warn!(error = %failure, retry_in = ?pause, "supergraph source not ready");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(4));
        }
    }
}

/// A transport error with its cause (reqwest's own message stops at
/// "error sending request").
fn describe(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Reads `Name: value` (`SUPERGRAPH_URL_HEADER`); the value is marked
/// sensitive. `None` when it is not a valid header line.
pub fn parse_header(line: &str) -> Option<(HeaderName, HeaderValue)> {
    let (name, value) = line.split_once(':')?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
    let mut value = HeaderValue::from_str(value.trim()).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_line_is_a_name_and_a_hidden_value() {
        let (name, value) = parse_header("X-Hive-CDN-Key: abc:def").expect("valid");
        assert_eq!(name, "x-hive-cdn-key");
        assert_eq!(value, "abc:def");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("abc"));
        assert!(parse_header("no colon").is_none());
        assert!(parse_header("bad name: x").is_none());
        assert!(parse_header("X-Key: line\nbreak").is_none());
    }
}
