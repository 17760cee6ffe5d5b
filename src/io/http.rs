//! HTTP for metadata: STAC API pages and token endpoints. One agent with timeouts, and retries with
//! exponential backoff on what is worth retrying (5xx, 429 honouring `Retry-After`, timeouts,
//! connection resets, bodies cut short), never on 4xx answers such as 404 or 403.
//!
//! Pixels do not come through here: GDAL reads COGs itself (see `window`).

use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// No delay (nor `Retry-After`) is waited longer than this.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based), unless the server said otherwise.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1 << attempt.min(16)).min(self.max_delay)
    }
}

/// A JSON-over-HTTP client with timeouts and retries.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    retry: RetryPolicy,
}

enum Attempt {
    Done(String),
    Retry { reason: String, after: Option<Duration> },
    Fail(String),
}

impl Http {
    /// A client whose every request gives up after `timeout`.
    pub fn new(timeout: Duration, retry: RetryPolicy) -> Http {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("compound-watch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http { agent, retry }
    }

    /// GET a JSON document.
    pub fn get_json(&self, url: &str) -> Result<Value> {
        self.json(url, || self.agent.get(url).header("Accept", "application/json").call())
    }

    /// POST a JSON body and read a JSON document.
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Value> {
        self.json(url, || {
            self.agent
                .post(url)
                .header("Accept", "application/geo+json")
                .send_json(body)
        })
    }

    /// POST a JSON body and return the answer's body as text, whatever it holds (a webhook).
    pub fn post(&self, url: &str, body: &Value) -> Result<String> {
        self.with_retry(url, || self.agent.post(url).send_json(body))
    }

    fn json(
        &self,
        url: &str,
        send: impl Fn() -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let text = self.with_retry(url, send)?;
        serde_json::from_str(&text).map_err(|e| Error::Remote {
            url: url.to_owned(),
            reason: format!("answered with something that is not JSON ({e})"),
        })
    }

    fn with_retry(
        &self,
        url: &str,
        send: impl Fn() -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String> {
        let mut attempt = 0;
        loop {
            let outcome = match send() {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    if (200..300).contains(&status) {
                        match response.body_mut().with_config().limit(256 << 20).read_to_string() {
                            Ok(text) => Attempt::Done(text),
                            Err(e) => Attempt::Retry {
                                reason: format!("the body was cut short ({e})"),
                                after: None,
                            },
                        }
                    } else if status == 429 || status >= 500 {
                        Attempt::Retry {
                            reason: format!("HTTP {status}"),
                            after: retry_after,
                        }
                    } else {
                        Attempt::Fail(format!("HTTP {status}"))
                    }
                }
                Err(ureq::Error::BadUri(e)) => Attempt::Fail(format!("is not a usable URL ({e})")),
                Err(e @ ureq::Error::HostNotFound) => Attempt::Fail(e.to_string()),
                Err(e) => Attempt::Retry {
                    reason: e.to_string(),
                    after: None,
                },
            };
            match outcome {
                Attempt::Done(text) => return Ok(text),
                Attempt::Fail(reason) => {
                    return Err(Error::Remote {
                        url: url.to_owned(),
                        reason,
                    })
                }
                Attempt::Retry { reason, after } => {
                    if attempt >= self.retry.max_retries {
                        return Err(Error::Remote {
                            url: url.to_owned(),
                            reason: format!("{reason}, still after {} retries", self.retry.max_retries),
                        });
                    }
                    let wait = after
                        .unwrap_or_else(|| self.retry.backoff(attempt))
                        .min(self.retry.max_delay);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 9,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(8), Duration::from_secs(1));
    }
}
