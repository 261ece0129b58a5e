//! The pacing decision, pure: from what the limiter knows at one instant (the server's last
//! budget, the reserve, what is in flight, the slowdown after 429s) to hold, probe or a rate.

use tokio::time::Instant;

/// Everything the pacing decision reads: the limiter's state at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaceInput {
    pub now: Instant,
    /// The client-side budget's steady rate.
    pub client_per_second: f64,
    /// `x-ratelimit-limit`, once a response said it.
    pub limit: Option<u64>,
    /// The lowest `x-ratelimit-remaining` seen in the current refill window.
    pub remaining: Option<u64>,
    /// The end of that window (the next refill); `remaining` means nothing after it.
    pub reset_at: Option<Instant>,
    /// Requests of this client sent or about to be sent that `remaining` may not count yet.
    pub outstanding: u64,
    pub reserve_fraction: f64,
    pub reserve_min: u64,
    /// Replicas drawing on the same bucket; each spends its share of what is above the reserve.
    pub sharers: u32,
    /// 1, or less after 429s.
    pub slowdown: f64,
    pub spread: bool,
    /// A request sent after the refill is waiting for its answer.
    pub probe_out: bool,
}

/// The pacing decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// At or below the reserve: nothing leaves before the refill.
    Hold { until: Instant },
    /// Requests may leave at this rate (never above the client budget's).
    Rate { per_second: f64 },
    /// The refill is due: this request may leave (at this rate) and find out what it brought.
    Probe { per_second: f64 },
    /// The refill is due and a request is finding out what it brought: wait for its answer.
    AwaitProbe,
}

impl Pace {
    /// The pace as requests a minute (0 while holding), for the metric.
    pub fn per_minute(self) -> f64 {
        match self {
            Pace::Hold { .. } | Pace::AwaitProbe => 0.0,
            Pace::Rate { per_second } | Pace::Probe { per_second } => per_second * 60.0,
        }
    }
}

/// The reserve in tokens: `fraction` of the bucket's size, rounded up; `reserve_min` while the
/// size is unknown.
pub fn reserve_tokens(limit: Option<u64>, fraction: f64, reserve_min: u64) -> u64 {
    match limit {
        Some(limit) => (limit as f64 * fraction).ceil() as u64,
        None => reserve_min,
    }
}

/// The pacing decision, pure: hold at or below the reserve, otherwise the rate that spreads this
/// replica's share of what is above the reserve until the refill, capped by the client budget;
/// both slowed after 429s. Without headers only the client budget applies; once the refill is due
/// one request at a time asks what is left.
pub fn pace(input: &PaceInput) -> Pace {
    let client = input.client_per_second * input.slowdown;
    let (Some(remaining), Some(reset_at)) = (input.remaining, input.reset_at) else {
        return Pace::Rate { per_second: client };
    };
    if reset_at <= input.now {
        // Sending at the full rate now could spend the reserve: the refill may have brought
        // little (the application may have emptied the bucket just before), or be late.
        return match input.probe_out {
            true => Pace::AwaitProbe,
            false => Pace::Probe { per_second: client },
        };
    }
    let reserve = reserve_tokens(input.limit, input.reserve_fraction, input.reserve_min);
    let above = remaining as f64 - reserve as f64 - input.outstanding as f64;
    if above <= 0.0 {
        return Pace::Hold { until: reset_at };
    }
    if !input.spread {
        return Pace::Rate { per_second: client };
    }
    let share = above / f64::from(input.sharers.max(1));
    let spread = share / (reset_at - input.now).as_secs_f64();
    Pace::Rate {
        per_second: spread.min(input.client_per_second) * input.slowdown,
    }
}
