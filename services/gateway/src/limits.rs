//! Limits on what one client can ask: a request deadline, and a token bucket per client
//! address (429 with `Retry-After` when empty). Body sizes are limited by the routers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Requests per second per client, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// Buckets per client address.
#[derive(Debug)]
pub struct Buckets {
    limit: RateLimit,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients remembered at most; the idle ones go first when full.
const MAX_CLIENTS: usize = 100_000;

impl Buckets {
    pub fn new(limit: RateLimit) -> Buckets {
        Buckets {
            limit,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` to go ahead, or how long until a token is free.
    fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut clients) = self.clients.lock() else {
            return Ok(());
        };
        if clients.len() >= MAX_CLIENTS {
            let burst = self.limit.burst;
            let per_second = self.limit.per_second;
            clients.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, at) = clients.entry(client).or_insert((self.limit.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.limit.per_second)
            .min(self.limit.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) / self.limit.per_second,
            ))
        }
    }
}

pub async fn rate_limit(
    State(buckets): State<std::sync::Arc<Buckets>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match buckets.take(peer.ip(), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = ApiError {
                name: "TooManyRequestsError",
                message: format!("Too many requests from {}; slow down", peer.ip()),
            }
            .into_response();
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// Answers 503 when a request takes longer than `deadline`.
pub async fn deadline(State(deadline): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "The request took longer than {} s",
            deadline.as_secs()
        ))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_hold_the_burst() {
        let buckets = Buckets::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take(client, start).is_ok());
        }
        let wait = buckets.take(client, start).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(
            buckets
                .take(client, start + Duration::from_millis(100))
                .is_ok()
        );
        // Another client has its own bucket.
        assert!(buckets.take("10.0.0.2".parse().unwrap(), start).is_ok());
    }
}
