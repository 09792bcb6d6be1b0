//! Metric history for the console's charts: per-stream ring buffers fed by a sampler that
//! reads the same registry `/metrics` serves (its Prometheus text).
//!
//! - [`parse_prometheus`] takes the counter and gauge samples that carry a `stream="..."`
//!   label and whose name (with `_` mapped back to `.`, e.g. `DeliveryToS3_Records` ->
//!   `DeliveryToS3.Records`) is one the console charts ([`charted`]). Histograms and summaries
//!   are skipped.
//! - [`History::record`] stores, for every live stream, the cumulative counter values and the
//!   gauge values of one sampling tick. Counters are stored cumulative and differenced when
//!   read, so any step that is a multiple of the sampling interval is exact.
//! - Reading: `5m` is 30 steps of one interval from the fine ring, `1h` is 60 steps of six
//!   intervals from the fine ring, `24h` is 144 steps of 60 intervals from the coarse ring
//!   (plus the newest fine sample as a last, partial step). Counters read as the increase over
//!   each step; gauges as their last value in it.
//!
//! Invariants (bounded memory):
//! - The fine ring holds at most [`FINE_SAMPLES`] samples (360 steps: 1 h at the default
//!   10 s interval), the coarse ring at most [`COARSE_SAMPLES`] (144 steps: 24 h at one sample
//!   every 60 intervals); a stream keeps at most [`MAX_METRICS`] metric names.
//! - Only live streams have a history: a stream that is no longer live is dropped at the next
//!   tick; its last cumulative values are kept in a bounded table ([`MAX_TOMBSTONES`]) so a
//!   stream re-created under the same name (whose registry counters continue) does not show
//!   the old incarnation's totals as one step's increase.
//! - A counter absent from an older sample counted 0 then (registry counters start at 0 when
//!   first touched); a counter that went down (never expected) reads as its new value.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Samples kept at full resolution: 360 steps plus the one before the first.
pub const FINE_SAMPLES: usize = 361;
/// Samples kept at coarse resolution: 144 steps plus the one before the first.
pub const COARSE_SAMPLES: usize = 145;
/// Fine samples per coarse sample (10 min at the default 10 s interval).
pub const COARSE_EVERY: u64 = 60;
/// Metric names kept per stream; more are ignored.
pub const MAX_METRICS: usize = 32;
/// Deleted streams whose last values are remembered.
pub const MAX_TOMBSTONES: usize = 256;

/// Whether a metric is a counter (charted as its increase) or a gauge (charted as is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One sample of the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub stream: String,
    /// The CloudWatch name, e.g. `DeliveryToS3.Records`.
    pub name: String,
    pub kind: Kind,
    pub value: f64,
}

/// A chart range of the metrics endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    FiveMinutes,
    Hour,
    Day,
}

impl Range {
    /// Parses `5m`, `1h` or `24h`.
    pub fn parse(s: &str) -> Option<Range> {
        match s {
            "5m" => Some(Range::FiveMinutes),
            "1h" => Some(Range::Hour),
            "24h" => Some(Range::Day),
            _ => None,
        }
    }

    /// The range as written in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::FiveMinutes => "5m",
            Range::Hour => "1h",
            Range::Day => "24h",
        }
    }

    /// Sampling intervals per step.
    pub fn intervals_per_step(self) -> u64 {
        match self {
            Range::FiveMinutes => 1,
            Range::Hour => 6,
            Range::Day => COARSE_EVERY,
        }
    }

    /// Steps (points) in the range.
    pub fn steps(self) -> usize {
        match self {
            Range::FiveMinutes => 30,
            Range::Hour => 60,
            Range::Day => 144,
        }
    }
}

/// One chart point: the step's end time and a value per metric.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Point {
    pub t: i64,
    pub values: BTreeMap<String, f64>,
}

/// Whether the console charts the metric `name` (CloudWatch spelling).
pub fn charted(name: &str) -> bool {
    matches!(
        name,
        "IncomingRecords" | "IncomingBytes" | "IncomingPutRequests" | "ThrottledRecords"
    ) || name.starts_with("DeliveryTo")
        || name.starts_with("BackupToS3.")
        || name.starts_with("ExecuteProcessing.")
        || name.ends_with("Processing.Records")
        || name.ends_with("Conversion.Records")
}

/// The CloudWatch name of a Prometheus metric name: the first `_` is the `.` the exporter
/// replaced (CloudWatch names here have at most one `.` and no `_`); a `_total` suffix a
/// counter may carry is dropped.
pub fn cloudwatch_name(prometheus: &str, kind: Kind) -> String {
    let base = match kind {
        Kind::Counter => prometheus.strip_suffix("_total").unwrap_or(prometheus),
        Kind::Gauge => prometheus,
    };
    base.replacen('_', ".", 1)
}

/// The value of label `name` in a `{a="x",b="y"}` label block (escapes `\\`, `\"`, `\n`
/// decoded).
fn label_value(labels: &str, name: &str) -> Option<String> {
    let mut rest = labels;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        rest = rest[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        rest = &rest[end + 1..];
        if key == name {
            return Some(value);
        }
    }
}

/// The charted counter and gauge samples with a `stream` label in Prometheus text.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut kinds: HashMap<&str, Kind> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                match kind {
                    "counter" => kinds.insert(name, Kind::Counter),
                    "gauge" => kinds.insert(name, Kind::Gauge),
                    _ => None,
                };
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(open) = line.find('{') else { continue };
        let Some(close) = line.rfind('}') else {
            continue;
        };
        if close < open {
            continue;
        }
        let name = &line[..open];
        let Some(&kind) = kinds.get(name) else {
            continue;
        };
        let Some(stream) = label_value(&line[open + 1..close], "stream") else {
            continue;
        };
        let Some(value) = line[close + 1..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
        else {
            continue;
        };
        let name = cloudwatch_name(name, kind);
        if charted(&name) {
            out.push(Sample {
                stream,
                name,
                kind,
                value,
            });
        }
    }
    out
}

/// One tick's values, by the stream's metric index (shorter than the metric list when a
/// metric appeared later; `NaN` where absent).
#[derive(Clone, Debug)]
struct Snapshot {
    t: i64,
    values: Box<[f64]>,
}

impl Snapshot {
    fn get(&self, i: usize) -> Option<f64> {
        self.values.get(i).copied().filter(|v| !v.is_nan())
    }
}

/// A stream's metric list and cumulative values, carried over to a re-created stream.
type Base = (Vec<(String, Kind)>, Box<[f64]>);

#[derive(Debug)]
struct StreamHistory {
    metrics: Vec<(String, Kind)>,
    fine: VecDeque<Snapshot>,
    coarse: VecDeque<Snapshot>,
    ticks: u64,
}

fn push_bounded(ring: &mut VecDeque<Snapshot>, s: Snapshot, cap: usize) {
    if ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(s);
}

impl StreamHistory {
    /// A history whose first step starts at `t` from `base` (the cumulative values of a
    /// previous incarnation, or nothing: every counter at 0).
    fn new(t: i64, base: Option<Base>) -> Self {
        let (metrics, values) = base.unwrap_or_default();
        let start = Snapshot { t, values };
        Self {
            metrics,
            fine: VecDeque::from([start.clone()]),
            coarse: VecDeque::from([start]),
            ticks: 0,
        }
    }

    fn index(&mut self, name: &str, kind: Kind) -> Option<usize> {
        if let Some(i) = self.metrics.iter().position(|(n, _)| n == name) {
            return Some(i);
        }
        if self.metrics.len() >= MAX_METRICS {
            return None;
        }
        self.metrics.push((name.to_string(), kind));
        Some(self.metrics.len() - 1)
    }

    fn record(&mut self, t: i64, samples: &[&Sample]) {
        let mut values = vec![f64::NAN; self.metrics.len()];
        for s in samples {
            let Some(i) = self.index(&s.name, s.kind) else {
                continue;
            };
            if values.len() <= i {
                values.resize(i + 1, f64::NAN);
            }
            // Several series of one name (other labels): their sum.
            values[i] = if values[i].is_nan() {
                s.value
            } else {
                values[i] + s.value
            };
        }
        let snapshot = Snapshot {
            t,
            values: values.into_boxed_slice(),
        };
        self.ticks += 1;
        if self.ticks.is_multiple_of(COARSE_EVERY) {
            push_bounded(&mut self.coarse, snapshot.clone(), COARSE_SAMPLES);
        }
        push_bounded(&mut self.fine, snapshot, FINE_SAMPLES);
    }

    /// The values of the step from `older` to `newer`.
    fn step(&self, older: &Snapshot, newer: &Snapshot) -> BTreeMap<String, f64> {
        let mut values = BTreeMap::new();
        for (i, (name, kind)) in self.metrics.iter().enumerate() {
            let Some(now) = newer.get(i) else { continue };
            let v = match kind {
                Kind::Gauge => now,
                Kind::Counter => {
                    let before = older.get(i).unwrap_or(0.0);
                    if now >= before { now - before } else { now }
                }
            };
            values.insert(name.clone(), v);
        }
        values
    }

    fn series(&self, range: Range) -> Vec<Point> {
        let steps = range.steps();
        let picked: Vec<&Snapshot> = match range {
            Range::FiveMinutes | Range::Hour => {
                let stride = range.intervals_per_step() as usize;
                let mut picked: Vec<&Snapshot> = self
                    .fine
                    .iter()
                    .rev()
                    .step_by(stride)
                    .take(steps + 1)
                    .collect();
                picked.reverse();
                picked
            }
            Range::Day => {
                let mut picked: Vec<&Snapshot> = self.coarse.iter().collect();
                // The newest fine sample closes a last, partial step.
                if let Some(last) = self.fine.back()
                    && picked.last().is_none_or(|c| c.t < last.t)
                {
                    picked.push(last);
                }
                let skip = picked.len().saturating_sub(steps + 1);
                picked.split_off(skip)
            }
        };
        picked
            .windows(2)
            .map(|w| Point {
                t: w[1].t,
                values: self.step(w[0], w[1]),
            })
            .collect()
    }

    fn latest(&self) -> BTreeMap<String, f64> {
        let n = self.fine.len();
        if n < 2 {
            return BTreeMap::new();
        }
        self.step(&self.fine[n - 2], &self.fine[n - 1])
    }

    fn last_values(&self) -> Base {
        let mut values: Vec<f64> = self
            .fine
            .back()
            .map(|s| s.values.to_vec())
            .unwrap_or_default();
        // Gauges start afresh; only counters carry over.
        for (i, (_, kind)) in self.metrics.iter().enumerate() {
            if *kind == Kind::Gauge && i < values.len() {
                values[i] = f64::NAN;
            }
        }
        (self.metrics.clone(), values.into_boxed_slice())
    }
}

/// Per-stream metric history (see the module docs).
#[derive(Debug)]
pub struct History {
    interval: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<String, StreamHistory>,
    tombstones: VecDeque<(String, Base)>,
}

impl History {
    /// An empty history sampled every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            inner: Mutex::default(),
        }
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one tick at `now_ms`: `samples` for the streams in `live`; streams no longer
    /// live are dropped.
    pub fn record(&self, now_ms: i64, samples: &[Sample], live: &[String]) {
        let mut by_stream: HashMap<&str, Vec<&Sample>> = HashMap::new();
        for s in samples {
            by_stream.entry(s.stream.as_str()).or_default().push(s);
        }
        let mut inner = self.lock();
        let Inner {
            streams,
            tombstones,
        } = &mut *inner;
        let gone: Vec<String> = streams
            .keys()
            .filter(|name| !live.contains(name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(h) = streams.remove(&name) {
                tombstones.retain(|(n, _)| *n != name);
                if tombstones.len() >= MAX_TOMBSTONES {
                    tombstones.pop_front();
                }
                tombstones.push_back((name, h.last_values()));
            }
        }
        let start = now_ms - self.interval.as_millis() as i64;
        for name in live {
            let history = streams.entry(name.clone()).or_insert_with(|| {
                let base = tombstones
                    .iter()
                    .position(|(n, _)| n == name)
                    .and_then(|i| tombstones.remove(i))
                    .map(|(_, base)| base);
                StreamHistory::new(start, base)
            });
            history.record(
                now_ms,
                by_stream
                    .get(name.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
    }

    /// The points of `stream` over `range`, oldest first (`None`: no history for it). Fewer
    /// than the range's steps while the history is younger than the range.
    pub fn series(&self, stream: &str, range: Range) -> Option<Vec<Point>> {
        self.lock().streams.get(stream).map(|h| h.series(range))
    }

    /// The last step of `stream` (empty before its second sample).
    pub fn latest(&self, stream: &str) -> BTreeMap<String, f64> {
        self.lock()
            .streams
            .get(stream)
            .map(StreamHistory::latest)
            .unwrap_or_default()
    }

    /// The metric names recorded for any stream, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let inner = self.lock();
        let mut names: Vec<String> = inner
            .streams
            .values()
            .flat_map(|h| h.metrics.iter().map(|(n, _)| n.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The step of `range` in seconds.
    pub fn step_s(&self, range: Range) -> f64 {
        self.interval.as_secs_f64() * range.intervals_per_step() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE IncomingRecords counter\n\
        IncomingRecords{stream=\"a\"} 5\n\
        IncomingRecords{stream=\"b\"} 7\n\
        # TYPE DeliveryToS3_Records counter\n\
        DeliveryToS3_Records{stream=\"a\"} 3\n\
        # TYPE DeliveryToS3_DataFreshness gauge\n\
        DeliveryToS3_DataFreshness{stream=\"a\"} 1.5\n\
        # TYPE LogRecovery_Records gauge\n\
        LogRecovery_Records{stream=\"a\"} 9\n\
        # TYPE DeliveryToSplunk_DataAckLatency summary\n\
        DeliveryToSplunk_DataAckLatency{stream=\"a\",quantile=\"0.5\"} 2\n\
        # TYPE ShedRequests counter\n\
        ShedRequests 4\n\
        # TYPE DeliveryToHttpEndpoint_Success counter\n\
        DeliveryToHttpEndpoint_Success{x=\"q\\\"uo,te\",stream=\"c.d-e\"} 2\n";

    fn sample(stream: &str, name: &str, kind: Kind, value: f64) -> Sample {
        Sample {
            stream: stream.into(),
            name: name.into(),
            kind,
            value,
        }
    }

    #[test]
    fn parses_stream_samples_of_charted_metrics() {
        let got = parse_prometheus(TEXT);
        assert_eq!(
            got,
            vec![
                sample("a", "IncomingRecords", Kind::Counter, 5.0),
                sample("b", "IncomingRecords", Kind::Counter, 7.0),
                sample("a", "DeliveryToS3.Records", Kind::Counter, 3.0),
                sample("a", "DeliveryToS3.DataFreshness", Kind::Gauge, 1.5),
                sample(
                    "c.d-e",
                    "DeliveryToHttpEndpoint.Success",
                    Kind::Counter,
                    2.0
                ),
            ]
        );
        assert_eq!(
            cloudwatch_name("DeliveryToS3_Records_total", Kind::Counter),
            "DeliveryToS3.Records"
        );
        assert_eq!(
            label_value(r#"a="x\\y",stream="s\"t""#, "stream").as_deref(),
            Some("s\"t")
        );
        assert_eq!(label_value(r#"a="x""#, "stream"), None);
        assert_eq!(label_value(r#"stream="unterminated"#, "stream"), None);
    }

    fn tick(h: &History, t: i64, incoming: f64, freshness: f64) {
        h.record(
            t,
            &[
                sample("s", "IncomingRecords", Kind::Counter, incoming),
                sample("s", "DeliveryToS3.DataFreshness", Kind::Gauge, freshness),
            ],
            &["s".to_string()],
        );
    }

    #[test]
    fn counters_read_as_increases_and_gauges_as_last_values() {
        let h = History::new(Duration::from_secs(10));
        tick(&h, 10_000, 4.0, 1.0);
        tick(&h, 20_000, 10.0, 2.0);
        tick(&h, 30_000, 10.0, 0.0);
        let points = h.series("s", Range::FiveMinutes).unwrap();
        let incoming: Vec<f64> = points.iter().map(|p| p.values["IncomingRecords"]).collect();
        // The first step starts from 0: the counter began with the stream.
        assert_eq!(incoming, [4.0, 6.0, 0.0]);
        let fresh: Vec<f64> = points
            .iter()
            .map(|p| p.values["DeliveryToS3.DataFreshness"])
            .collect();
        assert_eq!(fresh, [1.0, 2.0, 0.0]);
        assert_eq!(
            points.iter().map(|p| p.t).collect::<Vec<_>>(),
            [10_000, 20_000, 30_000]
        );
        assert_eq!(h.latest("s")["IncomingRecords"], 0.0);
        assert_eq!(h.step_s(Range::Hour), 60.0);
        assert!(h.series("other", Range::FiveMinutes).is_none());
        assert_eq!(
            h.metric_names(),
            ["DeliveryToS3.DataFreshness", "IncomingRecords"]
        );
    }

    #[test]
    fn rings_are_bounded_and_downsample() {
        let h = History::new(Duration::from_secs(10));
        // 25 hours of ticks, one record per tick.
        let ticks = 25 * 360;
        for i in 1..=ticks {
            tick(&h, i * 10_000, i as f64, (i % 7) as f64);
        }
        let five = h.series("s", Range::FiveMinutes).unwrap();
        assert_eq!(five.len(), 30);
        assert!(five.iter().all(|p| p.values["IncomingRecords"] == 1.0));
        assert_eq!(five.last().unwrap().t, ticks * 10_000);
        let hour = h.series("s", Range::Hour).unwrap();
        assert_eq!(hour.len(), 60);
        assert!(hour.iter().all(|p| p.values["IncomingRecords"] == 6.0));
        assert!(hour.windows(2).all(|w| w[1].t - w[0].t == 60_000));
        // Gauges are the value at the step's end.
        let last = ticks;
        assert_eq!(
            hour.last().unwrap().values["DeliveryToS3.DataFreshness"],
            (last % 7) as f64
        );
        let day = h.series("s", Range::Day).unwrap();
        assert_eq!(day.len(), 144);
        assert!(day.iter().all(|p| p.values["IncomingRecords"] == 60.0));
        assert!(day.windows(2).all(|w| w[1].t - w[0].t == 600_000));
        let inner = h.lock();
        let s = &inner.streams["s"];
        assert_eq!(s.fine.len(), FINE_SAMPLES);
        assert_eq!(s.coarse.len(), COARSE_SAMPLES);
    }

    #[test]
    fn day_range_ends_with_a_partial_step() {
        let h = History::new(Duration::from_secs(10));
        for i in 1..=65 {
            tick(&h, i * 10_000, (2 * i) as f64, 0.0);
        }
        let day = h.series("s", Range::Day).unwrap();
        // Start -> tick 60 (coarse), tick 60 -> tick 65 (the newest fine sample).
        let incoming: Vec<f64> = day.iter().map(|p| p.values["IncomingRecords"]).collect();
        assert_eq!(incoming, [120.0, 10.0]);
        assert_eq!(day.last().unwrap().t, 650_000);
    }

    #[test]
    fn deleted_streams_are_dropped_and_recreated_ones_continue() {
        let h = History::new(Duration::from_secs(10));
        tick(&h, 10_000, 100.0, 0.0);
        h.record(20_000, &[], &[]);
        assert!(h.series("s", Range::FiveMinutes).is_none());
        assert!(h.metric_names().is_empty());
        // Same name again: the registry counter went on from 100.
        tick(&h, 30_000, 103.0, 0.0);
        let points = h.series("s", Range::FiveMinutes).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].values["IncomingRecords"], 3.0);
        // A gauge does not carry over.
        assert_eq!(points[0].values["DeliveryToS3.DataFreshness"], 0.0);
    }

    #[test]
    fn metrics_per_stream_are_capped() {
        let h = History::new(Duration::from_secs(10));
        let samples: Vec<Sample> = (0..100)
            .map(|i| sample("s", &format!("DeliveryTo{i}.Records"), Kind::Counter, 1.0))
            .collect();
        h.record(10_000, &samples, &["s".to_string()]);
        assert_eq!(h.metric_names().len(), MAX_METRICS);
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(Range::parse("1h"), Some(Range::Hour));
        assert_eq!(Range::parse("24h").map(Range::as_str), Some("24h"));
        assert_eq!(Range::parse("2h"), None);
    }
}
