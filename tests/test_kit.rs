//! The test kit's own behaviour where it models Trigger.dev rather than replays it: the fake API's
//! rate limit, a token bucket per environment as Trigger.dev's (750 tokens, 250 more every 10 s,
//! in steps), its 429 and `x-ratelimit-*` headers, and the bridge's client living with it.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::fake_api::{FakeApi, RateLimit, TokenBucket, SECRET_KEY};
use support::generate;
use trigger_otel_bridge::config::TriggerConfig;
use trigger_otel_bridge::trigger::{ClientTuning, RateLimitTuning, TriggerClient};

#[test]
fn the_bucket_holds_750_and_refills_250_every_10_s_in_steps() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut bucket = TokenBucket::new(RateLimit::TRIGGER_DEV, t0);
    for spent in 1..=750 {
        let taken = bucket.take(at(0));
        assert!(taken.allowed, "token {spent} of a full bucket");
        assert_eq!(taken.remaining, 750 - spent);
        assert_eq!(taken.reset_at, at(10_000), "the next refill step");
    }
    let refused = bucket.take(at(0));
    assert!(!refused.allowed, "the 751st request is refused");
    assert_eq!((refused.remaining, refused.reset_at), (0, at(10_000)));
    // Not refilled continuously: nothing until the step.
    assert!(!bucket.take(at(9_999)).allowed);
    let refilled = bucket.take(at(10_000));
    assert!(refilled.allowed);
    assert_eq!((refilled.remaining, refilled.reset_at), (249, at(20_000)));
    // Five steps later it is full again, never fuller.
    let full = bucket.take(at(60_000));
    assert_eq!((full.allowed, full.remaining, full.reset_at), (true, 749, at(70_000)));
    // Steps count from the last one, not from the last request.
    let between = bucket.take(at(65_000));
    assert_eq!((between.remaining, between.reset_at), (748, at(70_000)));
    let next = bucket.take(at(70_000));
    assert_eq!(next.remaining, 749, "one step: +250, capped at 750, one taken");
}

/// A small bucket (3 tokens, 2 more a second) so that the test is quick.
const SMALL: RateLimit = RateLimit {
    max_tokens: 3,
    refill: 2,
    interval: Duration::from_secs(1),
};

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn the_fake_api_limits_each_key_with_trigger_devs_headers_and_429() {
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let api = FakeApi::start([generate::fake_run("run_limited01", "t", 3, false)]).await;
    let client = reqwest::Client::new();
    let get = |key: &str| {
        client
            .get(format!("{}/api/v3/runs/run_limited01", api.url()))
            .bearer_auth(key)
            .send()
    };
    let header = |response: &reqwest::Response, name: &str| -> Option<u64> {
        response.headers().get(name)?.to_str().ok()?.parse().ok()
    };

    // Off unless asked for: no limit, no headers.
    let response = get(SECRET_KEY).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-ratelimit-limit"), None);

    api.rate_limit(SMALL);
    for remaining in [2, 1, 0] {
        let response = get(SECRET_KEY).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(3));
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining));
        let reset = header(&response, "x-ratelimit-reset").expect("a reset in unix ms");
        assert!((unix_ms_now()..=unix_ms_now() + 1_000).contains(&reset), "{reset}");
    }
    let refused = get(SECRET_KEY).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert!(refused.headers().get("retry-after").is_none(), "Trigger.dev sends none");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    let reset = header(&refused, "x-ratelimit-reset").unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["status"], 429);
    assert_eq!((body["limit"].as_u64(), body["remaining"].as_u64()), (Some(3), Some(0)));
    assert_eq!(body["reset"].as_u64(), Some(reset));
    let seconds = body["secondsUntilReset"].as_f64().expect("secondsUntilReset");
    assert!((0.0..=1.0).contains(&seconds), "{seconds}");
    assert_eq!(api.rate_limited().len(), 1);

    // Another environment (another key) has a bucket of its own; the key check comes after it.
    let other = get("tr_dev_OTHERenvironment").await.unwrap();
    assert_eq!(other.status(), 401);
    assert_eq!(header(&other, "x-ratelimit-remaining"), Some(2));

    // The next step adds 2.
    tokio::time::sleep(Duration::from_millis(reset.saturating_sub(unix_ms_now()) + 50)).await;
    let refilled = get(SECRET_KEY).await.unwrap();
    assert_eq!(refilled.status(), 200);
    assert_eq!(header(&refilled, "x-ratelimit-remaining"), Some(1));
    api.stop().await;
}

/// The bridge's client against the bucket: another caller of the environment empties it, the
/// client meets the 429, holds until the announced reset and goes on; no request arrives before
/// the reset.
#[tokio::test]
async fn the_bridge_client_waits_out_an_empty_bucket() {
    let api = FakeApi::start([generate::fake_run("run_limited02", "t", 3, false)]).await;
    api.rate_limit(SMALL);
    let config = TriggerConfig {
        api_url: api.url(),
        secret_key: SECRET_KEY.into(),
        requests_per_minute: 60_000,
        rate_limit_reserve: 0.0,
        ..TriggerConfig::default()
    };
    // No reserve and no spreading: the client must meet the 429.
    let tuning = ClientTuning {
        rate_limit: RateLimitTuning {
            reserve_min: 0,
            spread: false,
            jitter: Duration::from_millis(20),
            ..RateLimitTuning::default()
        },
        ..ClientTuning::default()
    };
    let client = TriggerClient::with_tuning(&config, tuning).unwrap();
    // The application spends the whole bucket first: the client, knowing nothing of it yet, meets
    // the 429 (once it knows the bucket is empty it waits without asking).
    let http = reqwest::Client::new();
    for _ in 0..SMALL.max_tokens {
        let response = http
            .get(format!("{}/api/v3/runs/run_limited02", api.url()))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let started = Instant::now();
    for _ in 0..5 {
        let events = client.events("run_limited02").await.expect("served after the reset");
        assert_eq!(events.events().len(), 3);
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "the bucket held it");
    assert!(!api.rate_limited().is_empty(), "the client met the 429");
    let early = api.requests_before_a_reset();
    assert!(early.is_empty(), "requests before the 429's reset: {early:?}");
    api.stop().await;
}
