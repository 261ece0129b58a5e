//! Sharing Trigger.dev's rate limit with the application (issue 13 item 3): one token bucket per
//! environment, spent by the bridge's client and by the application's own calls with the same
//! key. The fake API's bucket is Trigger.dev's scaled down (60 tokens, +20 every second instead
//! of 750, +250 every 10 s), so a few seconds show several refill windows.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fake_api::{FakeApi, RateLimit, SECRET_KEY};
use support::generate;
use tokio::time::Instant;
use trigger_otel_bridge::config::TriggerConfig;
use trigger_otel_bridge::telemetry::Metrics;
use trigger_otel_bridge::trigger::{ClientTuning, RateLimitTuning, TriggerClient};

const BUCKET: RateLimit = RateLimit {
    max_tokens: 60,
    refill: 20,
    interval: Duration::from_secs(1),
};
/// Of 60 tokens, 0.33 keeps 20 for the application.
const RESERVE: u64 = 20;
const RUN: &str = "run_budget0001";

fn bridge(api: &FakeApi) -> (TriggerClient, Arc<Metrics>) {
    let config = TriggerConfig {
        api_url: api.url(),
        secret_key: SECRET_KEY.into(),
        // Far above the bucket: only the server's budget and the reserve hold the bridge back.
        requests_per_minute: 60_000,
        rate_limit_reserve: 0.33,
        ..TriggerConfig::default()
    };
    let tuning = ClientTuning {
        // Trigger.dev's windows are 10 s and the jitter up to 1 s; scaled down with the bucket.
        rate_limit: RateLimitTuning {
            jitter: Duration::from_millis(50),
            ..RateLimitTuning::default()
        },
        ..ClientTuning::default()
    };
    let client = TriggerClient::with_tuning(&config, tuning).expect("client");
    let metrics = Arc::new(Metrics::new());
    client.set_metrics(metrics.clone());
    (client, metrics)
}

/// The bridge as the daemon drives it: `concurrency` polls at a time, each starting as soon as the
/// last one ended, until `stop`. Returns the requests that succeeded.
fn keep_polling(
    client: &TriggerClient,
    concurrency: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                while !stop.load(Ordering::Relaxed) {
                    if client.events(RUN).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect()
}

/// The application's own calls with the same key: `burst` calls at once every `every`, counting
/// each status.
fn application(
    api: &FakeApi,
    burst: u32,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<BTreeMap<u16, u64>>>) {
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let url = format!("{}/api/v3/runs/{RUN}", api.url());
    let counted = statuses.clone();
    let task = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut calls = tokio::task::JoinSet::new();
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            // Each call on its own, as a backend's requests are: a slow one does not delay the next.
            for _ in 0..burst {
                let (http, url, counted) = (http.clone(), url.clone(), counted.clone());
                calls.spawn(async move {
                    let status = match http.get(&url).bearer_auth(SECRET_KEY).send().await {
                        Ok(response) => response.status().as_u16(),
                        Err(_) => 0,
                    };
                    *counted.lock().unwrap().entry(status).or_insert(0) += 1;
                });
            }
        }
        while calls.join_next().await.is_some() {}
    });
    (task, statuses)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

/// The target, scaled down: an application spending 8 of the 20 tokens refilled each
/// second gets no 429 while the bridge keeps asking as fast as it may, and the bridge still gets
/// most of the other 12.
#[tokio::test]
async fn an_application_beside_the_bridge_never_gets_a_429() {
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let api = FakeApi::start([generate::fake_run(RUN, "t", 3, true)]).await;
    api.rate_limit(BUCKET);
    let (client, metrics) = bridge(&api);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let (app, statuses) = application(&api, 1, Duration::from_millis(125), stop.clone());
    let pollers = keep_polling(&client, 8, stop.clone());
    let run_for = Duration::from_secs(6);
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    let mut bridge_ok = 0;
    for poller in pollers {
        bridge_ok += poller.await.expect("poller");
    }
    app.await.expect("application");
    let elapsed = started.elapsed().as_secs_f64();

    let statuses = statuses.lock().unwrap().clone();
    let app_total: u64 = statuses.values().sum();
    assert!(app_total >= 40, "the application made its calls: {statuses:?}");
    // Not "nearly": the reserve (20) is more than the application spends in a window (8), so any
    // 429 means the bridge dipped into it.
    assert_eq!(statuses.get(&429), None, "the application met 429s: {statuses:?}");
    assert_eq!(statuses.get(&200).copied(), Some(app_total), "{statuses:?}");

    // What the bridge may have: the first bucket down to the reserve (60 − 20), then what each
    // refill leaves after the application (20 − 8 a second). Holding at the reserve until the
    // refill (plus jitter) and the responses' lag cost some of it; at least 60 % must be used.
    let windows = elapsed.floor();
    eprintln!("bridge: {bridge_ok} in {elapsed:.1} s; application: {statuses:?}");
    let available = (60 - RESERVE) as f64 + (20.0 - 8.0) * windows;
    assert!(
        bridge_ok as f64 >= 0.6 * available,
        "the bridge got {bridge_ok} of about {available} left to it in {elapsed:.1} s"
    );
    // And it never took more than the bucket gave (which would have shown as 429s above).
    let bridge_429s = api.rate_limited().len();
    assert_eq!(bridge_429s, 0, "the bridge met 429s");

    let text = metrics.encode_prometheus();
    assert_eq!(metric(&text, "trigger_otel_bridge_api_rate_limit_limit"), 60.0);
    assert_eq!(
        metric(&text, "trigger_otel_bridge_api_rate_limit_reserve"),
        RESERVE as f64
    );
    assert!(
        metric(&text, "trigger_otel_bridge_api_holds_total{reason=\"reserve\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "trigger_otel_bridge_api_holds_total{reason=\"rate_limited\"}"),
        0.0
    );
    let remaining = metric(&text, "trigger_otel_bridge_api_rate_limit_remaining");
    assert!(remaining <= 60.0, "{text}");
    api.stop().await;
}

/// What the reserve is for: an application whose calls come in bursts (15 at once, each second)
/// finds them in the bucket, because the bridge never spends the last 20 tokens, even just before
/// a refill. (Spreading alone is not enough: it runs the bucket down to nothing at each refill.)
#[tokio::test]
async fn the_reserve_absorbs_the_applications_bursts() {
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let api = FakeApi::start([generate::fake_run(RUN, "t", 3, true)]).await;
    api.rate_limit(BUCKET);
    let (client, _metrics) = bridge(&api);
    let stop = Arc::new(AtomicBool::new(false));
    let pollers = keep_polling(&client, 8, stop.clone());
    // Out of step with the refill, so bursts land anywhere in a window.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (app, statuses) = application(&api, 15, Duration::from_millis(1100), stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let mut bridge_ok = 0;
    for poller in pollers {
        bridge_ok += poller.await.expect("poller");
    }
    app.await.expect("application");
    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.values().sum::<u64>() >= 60, "{statuses:?}");
    assert_eq!(statuses.get(&429), None, "the application met 429s: {statuses:?}");
    assert!(bridge_ok >= 40, "the bridge got only {bridge_ok}");
    api.stop().await;
}

/// An application that empties the bucket in one burst: the bridge, pacing itself on what it
/// last saw, meets a 429. It then holds until the reset, halves its pace, and gets it back over
/// the clean windows that follow.
#[tokio::test]
async fn a_429_slows_the_bridge_further_and_clean_windows_restore_it() {
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let api = FakeApi::start([generate::fake_run(RUN, "t", 3, true)]).await;
    api.rate_limit(BUCKET);
    let (client, metrics) = bridge(&api);
    let stop = Arc::new(AtomicBool::new(false));
    let pollers = keep_polling(&client, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(client.rate_limiter().slowdown(), 1.0, "no 429 yet");

    // The application's burst: 60 at once, more than any bucket holds.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v3/runs/{RUN}", api.url());
    let burst: Vec<_> = (0..60)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { http.get(&url).bearer_auth(SECRET_KEY).send().await.map(|r| r.status()) })
        })
        .collect();
    for call in burst {
        let _ = call.await.expect("call");
    }
    let slowed = Arc::new(AtomicU64::new(1000));
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let now = (client.rate_limiter().slowdown() * 1000.0) as u64;
        slowed.fetch_min(now, Ordering::Relaxed);
        if now < 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lowest = slowed.load(Ordering::Relaxed);
    assert!(lowest <= 500, "a 429 halves the pace; slowdown stayed at {lowest}/1000");
    let text = metrics.encode_prometheus();
    assert!(
        metric(&text, "trigger_otel_bridge_api_holds_total{reason=\"rate_limited\"}") >= 1.0,
        "{text}"
    );

    // Clean windows (1 s each here) give back an eighth each.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Four are enough to get from a half back to the full pace.
    let restored = client.rate_limiter().slowdown();
    assert!(restored >= 0.875, "not restored: {restored}");
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        poller.await.expect("poller");
    }
    api.stop().await;
}

/// `trigger.rate_limit_reserve` applies on reload without a restart: the daemon's reserve gauge
/// moves from 0.33 to 0.5 of the bucket, and the daemon keeps polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_reserve_applies_at_once() {
    let fakes = support::daemon::Fakes::start([generate::fake_run(RUN, "t", 3, true)]).await;
    fakes.api.rate_limit(BUCKET);
    let mut config = fakes.config(&[RUN]);
    config.runs.poll_interval = Duration::from_millis(100);
    config.runs.max_poll_interval = Duration::from_millis(100);
    let path = support::process::write_config(fakes.dir.path(), "bridge.toml", &config);
    let options = trigger_otel_bridge::daemon::DaemonOptions {
        config_path: Some(path.clone()),
        ..support::daemon::fast_options()
    };
    let daemon = support::daemon::Running::start(config.clone(), options);
    let reserve = |stats: &Metrics| {
        let text = stats.encode_prometheus();
        text.lines().find_map(|line| {
            line.strip_prefix("trigger_otel_bridge_api_rate_limit_reserve ")?
                .parse::<f64>()
                .ok()
        })
    };
    daemon
        .wait_for("the reserve of a known limit", Duration::from_secs(10), |s| {
            reserve(s) == Some(RESERVE as f64)
        })
        .await;
    config.trigger.rate_limit_reserve = 0.5;
    support::process::write_config(fakes.dir.path(), "bridge.toml", &config);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    daemon
        .wait_for("the reloaded reserve", Duration::from_secs(15), |s| {
            reserve(s) == Some(30.0)
        })
        .await;
    fakes.stop_with(daemon).await;
}
