//! Golden tests: each window type over out-of-order input with a watermark and late records,
//! checked against results computed independently — the late records found by a plain loop
//! over the input, the windows by plain arithmetic, the aggregates by batch SQL (DataFusion
//! over an in-memory table of the same rows).

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use lakehose_analytics::pump::LATE_RECORD;
use lakehose_analytics::{Application, Input};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BASE: i64 = 1_764_000_000_000; // a whole minute
const DELAY_MS: i64 = 2_000;

#[derive(Clone, Debug)]
struct Event {
    user: String,
    url: String,
    amount: i64,
    ts: i64,
    arrival: i64,
}

impl Event {
    fn json(&self) -> Vec<u8> {
        let t = datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(self.ts)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3f");
        format!(
            r#"{{"user_id":"{}","URL":"{}","amount":{},"event_time":"{}Z"}}"#,
            self.user, self.url, self.amount, t
        )
        .into_bytes()
    }
}

/// `n` events over about `n / 10` seconds, times jittered by up to 3 s either way (so some
/// arrive after the 2 s watermark delay has passed their window), a few far behind.
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            // Mostly a little out of order; a few records 40 s behind (late for every window).
            let jitter = if rng.random_bool(0.03) {
                -40_000
            } else {
                rng.random_range(-3_000..=3_000)
            };
            Event {
                user: format!("user_{}", rng.random_range(0..7)),
                url: format!("/page/{}", rng.random_range(0..5)),
                amount: rng.random_range(1..100),
                ts: BASE + i as i64 * 100 + jitter,
                arrival: BASE + i as i64 * 100,
            }
        })
        .collect()
}

/// Windows `[start, end)` of `ts`, by arithmetic: (kind, slide or step, size).
fn windows_of(kind: &str, slide: i64, size: i64, ts: i64) -> Vec<(i64, i64)> {
    let floor = |t: i64, m: i64| t.div_euclid(m) * m;
    match kind {
        "TUMBLE" => vec![(floor(ts, size), floor(ts, size) + size)],
        "HOP" => {
            let mut out = Vec::new();
            let mut start = floor(ts, slide);
            while start > ts - size {
                out.push((start, start + size));
                start -= slide;
            }
            out
        }
        "CUMULATE" => {
            let start = floor(ts, size);
            (1..=size / slide)
                .map(|k| (start, start + k * slide))
                .filter(|&(_, end)| end > ts)
                .collect()
        }
        _ => unreachable!(),
    }
}

/// The expected result rows (sorted text) and late record indices.
async fn expected(
    kind: &str,
    slide: i64,
    size: i64,
    input: &[Event],
    select: &str,
) -> (Vec<String>, Vec<usize>) {
    let mut watermark = i64::MIN;
    let mut max_ts = i64::MIN;
    let mut late = Vec::new();
    let mut assigned = Vec::new();
    for (i, e) in input.iter().enumerate() {
        let open: Vec<_> = windows_of(kind, slide, size, e.ts)
            .into_iter()
            .filter(|&(_, end)| watermark < end - 1)
            .collect();
        if open.is_empty() {
            late.push(i);
        }
        assigned.extend(open.into_iter().map(|(s, end)| (i, s, end)));
        max_ts = max_ts.max(e.ts);
        watermark = watermark.max(max_ts - DELAY_MS);
    }
    (batch_sql(input, &assigned, watermark, select).await, late)
}

/// Sessions by a plain simulation: per user, a list of (start, end, events); a record whose
/// own window `[ts, ts + gap)` has fired is late, otherwise it merges every session it
/// touches that has not fired yet.
async fn expected_sessions(gap: i64, input: &[Event], select: &str) -> (Vec<String>, Vec<usize>) {
    let mut watermark = i64::MIN;
    let mut max_ts = i64::MIN;
    let mut late = Vec::new();
    let mut sessions: std::collections::HashMap<String, Vec<(i64, i64, Vec<usize>)>> =
        Default::default();
    for (i, e) in input.iter().enumerate() {
        if watermark >= e.ts + gap - 1 {
            late.push(i);
        } else {
            let list = sessions.entry(e.user.clone()).or_default();
            let (mut start, mut end, mut members) = (e.ts, e.ts + gap, vec![i]);
            // Sessions that have fired take no more records.
            while let Some(pos) = list
                .iter()
                .position(|s| s.0 <= end && s.1 >= start && watermark < s.1 - 1)
            {
                let s = list.remove(pos);
                start = start.min(s.0);
                end = end.max(s.1);
                members.extend(s.2);
            }
            list.push((start, end, members));
        }
        max_ts = max_ts.max(e.ts);
        watermark = watermark.max(max_ts - DELAY_MS);
    }
    let assigned: Vec<(usize, i64, i64)> = sessions
        .values()
        .flatten()
        .flat_map(|(s, e, members)| members.iter().map(move |&i| (i, *s, *e)))
        .collect();
    (batch_sql(input, &assigned, watermark, select).await, late)
}

/// Batch SQL over the rows of `assigned` (event index, window start, window end) whose window
/// fired by the final watermark.
async fn batch_sql(
    input: &[Event],
    assigned: &[(usize, i64, i64)],
    watermark: i64,
    select: &str,
) -> Vec<String> {
    let ctx = SessionContext::new();
    ctx.register_batch("clicks", clicks_table(input, assigned, watermark))
        .unwrap();
    let rows = ctx.sql(select).await.unwrap().collect().await.unwrap();
    lines(&rows)
}

/// The rows of `assigned` whose window fired by `watermark`, with their window columns.
fn clicks_table(input: &[Event], assigned: &[(usize, i64, i64)], watermark: i64) -> RecordBatch {
    let fired: Vec<&(usize, i64, i64)> = assigned
        .iter()
        .filter(|(_, _, end)| watermark >= end - 1)
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                fired.iter().map(|a| input[a.0].user.clone()),
            )),
            Arc::new(StringArray::from_iter_values(
                fired.iter().map(|a| input[a.0].url.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(
                fired.iter().map(|a| input[a.0].amount),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                fired.iter().map(|a| a.1),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                fired.iter().map(|a| a.2),
            )),
        ],
    )
    .unwrap()
}

fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

const SELECT: &str = "SELECT user_id, window_start, window_end, COUNT(*) AS clicks, \
     SUM(amount) AS total, MIN(amount) AS least, MAX(amount) AS most, \
     COUNT(DISTINCT url) AS pages, AVG(amount) AS mean \
     FROM clicks GROUP BY user_id, window_start, window_end HAVING COUNT(*) > 1";

/// The clicks source (2 s watermark delay).
const CLICKS: &str =
    "CREATE TABLE clicks (user_id VARCHAR, url VARCHAR, amount BIGINT, event_time TIMESTAMP(3),
        WATERMARK FOR event_time AS event_time - INTERVAL '2' SECOND)
      WITH ('connector' = 'firehose', 'stream' = 'clicks');";

/// An application running [`SELECT`] over `window` (a windowing function call).
fn app_sql(window: &str) -> String {
    app_sql_with(SELECT, window)
}

/// An application running `select` (over `clicks`) with `FROM clicks` read through `window`.
fn app_sql_with(select: &str, window: &str) -> String {
    format!(
        "{CLICKS}
         CREATE TABLE out WITH ('connector' = 'firehose', 'stream' = 'out');
         INSERT INTO out {}",
        select.replace("FROM clicks", &format!("FROM TABLE({window})"))
    )
}

/// Runs the application over `input` in batches of random sizes; returns the result rows and
/// the late record indices. With `snapshot_every`, the pump is snapshotted, dropped and
/// restored into a fresh application every that many batches.
async fn run(
    sql: &str,
    input: &[Event],
    seed: u64,
    snapshot_every: Option<usize>,
) -> (Vec<String>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut app = Application::new(sql).await.unwrap();
    let mut rows = Vec::new();
    let mut late = Vec::new();
    let datas: Vec<Vec<u8>> = input.iter().map(Event::json).collect();
    let mut at = 0;
    let mut batches = 0;
    while at < input.len() {
        let n = rng.random_range(1..=300).min(input.len() - at);
        let records: Vec<Input> = (at..at + n)
            .map(|i| Input {
                data: &datas[i],
                arrival_ms: input[i].arrival,
            })
            .collect();
        let out = app.pumps[0].push(&records).await.unwrap();
        for r in &out.rejected {
            assert_eq!(r.code, LATE_RECORD, "{r:?}");
            late.push(at + r.index);
        }
        rows.extend(out.rows);
        at += n;
        batches += 1;
        if snapshot_every.is_some_and(|k| batches % k == 0) {
            let bytes = app.pumps[0].snapshot().unwrap();
            app = Application::new(sql).await.unwrap();
            app.pumps[0].restore(&bytes).unwrap();
        }
    }
    (lines(&rows), late)
}

async fn golden(kind: &str, slide_s: i64, size_s: i64, seed: u64) {
    let window = match kind {
        "TUMBLE" => {
            format!("TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '{size_s}' SECOND)")
        }
        _ => format!(
            "{kind}(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '{slide_s}' SECOND, INTERVAL '{size_s}' SECOND)"
        ),
    };
    let input = events(3_000, seed);
    let (want_rows, want_late) =
        expected(kind, slide_s * 1000, size_s * 1000, &input, SELECT).await;
    assert!(!want_late.is_empty(), "the input must hold late records");
    assert!(want_rows.len() > 20, "too few windows: {}", want_rows.len());
    let sql = app_sql(&window);
    let (rows, late) = run(&sql, &input, seed + 1, None).await;
    assert_eq!(late, want_late, "{kind}: late records");
    assert_eq!(rows, want_rows, "{kind}: results");
    // Snapshot, drop and restore every few batches: the same results.
    let (rows, late) = run(&sql, &input, seed + 2, Some(3)).await;
    assert_eq!(late, want_late, "{kind}: late records across restores");
    assert_eq!(rows, want_rows, "{kind}: results across restores");
}

#[tokio::test]
async fn tumble_matches_batch_sql() {
    golden("TUMBLE", 10, 10, 7).await;
}

#[tokio::test]
async fn hop_matches_batch_sql() {
    golden("HOP", 5, 20, 11).await;
}

#[tokio::test]
async fn cumulate_matches_batch_sql() {
    golden("CUMULATE", 5, 30, 13).await;
}

#[tokio::test]
async fn session_matches_batch_sql() {
    // Bursts of 400 events, then 5 s of silence: sessions split between bursts.
    let input: Vec<Event> = events(3_000, 17)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            let pause = (i as i64 / 400) * 5_000;
            e.ts += pause;
            e.arrival += pause;
            e
        })
        .collect();
    let (want_rows, want_late) = expected_sessions(2_000, &input, SELECT).await;
    assert!(!want_late.is_empty(), "the input must hold late records");
    assert!(
        want_rows.len() > 20,
        "too few sessions: {}",
        want_rows.len()
    );
    let sql = app_sql(
        "SESSION(TABLE clicks PARTITION BY user_id, DESCRIPTOR(event_time), INTERVAL '2' SECOND)",
    );
    let (rows, late) = run(&sql, &input, 18, None).await;
    assert_eq!(late, want_late, "SESSION: late records");
    assert_eq!(rows, want_rows, "SESSION: results");
    let (rows, late) = run(&sql, &input, 19, Some(2)).await;
    assert_eq!(late, want_late, "SESSION: late records across restores");
    assert_eq!(rows, want_rows, "SESSION: results across restores");
}

#[tokio::test]
async fn stateless_filter_and_projection() {
    let sql = "CREATE TABLE clicks (user_id VARCHAR, amount BIGINT) WITH ('stream' = 'clicks');
               CREATE TABLE big WITH ('connector' = 'http', 'url' = 'http://127.0.0.1:1/');
               INSERT INTO big SELECT user_id, amount * 2 AS doubled, rowtime FROM clicks WHERE amount > 50";
    let mut app = Application::new(sql).await.unwrap();
    let data = [
        br#"{"user_id":"a","amount":10}"#.as_slice(),
        br#"{"user_id":"b","amount":60}"#,
        br#"not json"#,
        br#"{"user_id":"c","amount":70}{"user_id":"d","amount":80}"#,
    ];
    let input: Vec<Input> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Input {
            data: d,
            arrival_ms: BASE + i as i64,
        })
        .collect();
    let out = app.pumps[0].push(&input).await.unwrap();
    let json = lakehose_analytics::to_json_records(&out.rows).unwrap();
    let text: Vec<String> = json
        .iter()
        .map(|j| String::from_utf8(j.clone()).unwrap())
        .collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].starts_with(r#"{"user_id":"b","doubled":120,"rowtime":"#),
        "{}",
        text[0]
    );
    assert!(
        text[2].starts_with(r#"{"user_id":"d","doubled":160"#),
        "{}",
        text[2]
    );
    assert!(text.iter().all(|t| t.ends_with('\n')));
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 2);
    assert_eq!(out.rejected[0].code, "DataFormatConversion.ParseError");
}

#[tokio::test]
async fn refuses_what_a_stream_cannot_do() {
    let head = "CREATE TABLE s (k VARCHAR, ts TIMESTAMP) WITH ('stream' = 's');
                CREATE TABLE o WITH ('stream' = 'o');";
    let cases = [
        (
            "INSERT INTO o SELECT k, COUNT(*) FROM s GROUP BY k",
            "needs a window",
        ),
        ("INSERT INTO o SELECT k FROM s ORDER BY k", "ORDER BY"),
        ("INSERT INTO o SELECT k FROM s LIMIT 3", "LIMIT"),
        (
            "INSERT INTO o SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k",
            "GROUP BY window_start",
        ),
        ("INSERT INTO o SELECT nope FROM s", "nope"),
        (
            "INSERT INTO o SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(k), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end",
            "must be a TIMESTAMP",
        ),
    ];
    for (pump, expected) in cases {
        let err = Application::new(&format!("{head}{pump}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{pump}: {err}");
    }
}

#[tokio::test]
async fn processing_time_windows_fire_on_the_clock() {
    let sql = r#"CREATE STREAM "SOURCE_SQL_STREAM_001" (ticker VARCHAR, price DOUBLE) WITH ('stream' = 'ticks');
                 CREATE STREAM "DESTINATION_SQL_STREAM" WITH ('stream' = 'counts');
                 CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
                 SELECT STREAM ticker, window_start AS minute, COUNT(*) AS n, MAX(price) AS high
                 FROM "SOURCE_SQL_STREAM_001"
                 GROUP BY ticker, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND)"#;
    let mut app = Application::new(sql).await.unwrap();
    let pump = &mut app.pumps[0];
    assert!(pump.uses_processing_time());
    let recs = [
        (br#"{"ticker":"AMZN","price":10}"#.as_slice(), BASE + 1_000),
        (br#"{"ticker":"AMZN","price":12}"#, BASE + 2_000),
        (br#"{"ticker":"MSFT","price":5}"#, BASE + 59_000),
        (br#"{"ticker":"AMZN","price":11}"#, BASE + 61_000),
    ];
    let input: Vec<Input> = recs
        .iter()
        .map(|(d, t)| Input {
            data: d,
            arrival_ms: *t,
        })
        .collect();
    let out = pump.push(&input).await.unwrap();
    // The fourth record moved processing time past the first minute.
    assert_eq!(out.row_count(), 2);
    let out = pump.advance_to(BASE + 119_999).await.unwrap();
    let text = pretty_format_batches(&out.rows).unwrap().to_string();
    assert!(text.contains("AMZN") && text.contains("11.0"), "{text}");
    assert_eq!(pump.open_windows(), 0);
}

/// The users reference table: user_0..user_6 in three countries (user_6 in none).
fn users_reference() -> lakehose_analytics::ReferenceTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let users: Vec<String> = (0..6).map(|i| format!("user_{i}")).collect();
    let countries: Vec<&str> = (0..6).map(|i| ["fr", "de", "jp"][i % 3]).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(users)),
            Arc::new(StringArray::from(countries)),
        ],
    )
    .unwrap();
    lakehose_analytics::ReferenceTable {
        name: "users".into(),
        schema,
        batches: vec![batch],
    }
}

#[tokio::test]
async fn join_with_a_reference_table_matches_batch_sql() {
    let sql = &format!(
        "{CLICKS}
               CREATE TABLE users WITH ('connector' = 'catalog', 'database' = 'crm', 'table' = 'users');
               CREATE TABLE out WITH ('connector' = 'firehose', 'stream' = 'out');
               INSERT INTO out
               SELECT u.country, c.window_start, COUNT(*) AS clicks, SUM(c.amount) AS total
               FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) AS c
               JOIN users AS u ON c.user_id = u.user_id
               GROUP BY u.country, c.window_start, c.window_end"
    );
    let parsed = lakehose_analytics::sql::parse(sql).unwrap();
    assert_eq!(parsed.references(), vec!["users".to_string()]);
    let reference = users_reference();
    let mut app = Application::with_references(parsed, std::slice::from_ref(&reference))
        .await
        .unwrap();
    let input = events(2_000, 23);
    let datas: Vec<Vec<u8>> = input.iter().map(Event::json).collect();
    let mut rows = Vec::new();
    let mut late = Vec::new();
    for (n, chunk) in datas.chunks(137).enumerate() {
        let records: Vec<Input> = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| Input {
                data: d,
                arrival_ms: input[n * 137 + i].arrival,
            })
            .collect();
        let out = app.pumps[0].push(&records).await.unwrap();
        late.extend(out.rejected.iter().map(|r| n * 137 + r.index));
        rows.extend(out.rows);
    }
    // Independently: tumbling windows by arithmetic, the join and aggregate by batch SQL.
    let (_, want_late) = expected("TUMBLE", 10_000, 10_000, &input, SELECT).await;
    assert_eq!(late, want_late);
    let mut assigned = Vec::new();
    let mut watermark = i64::MIN;
    let mut max_ts = i64::MIN;
    for (i, e) in input.iter().enumerate() {
        let start = e.ts.div_euclid(10_000) * 10_000;
        if watermark < start + 10_000 - 1 {
            assigned.push((i, start, start + 10_000));
        }
        max_ts = max_ts.max(e.ts);
        watermark = watermark.max(max_ts - DELAY_MS);
    }
    let ctx = SessionContext::new();
    ctx.register_batch("users", reference.batches[0].clone())
        .unwrap();
    let clicks = clicks_table(&input, &assigned, watermark);
    ctx.register_batch("clicks", clicks).unwrap();
    let want = ctx
        .sql(
            "SELECT u.country, c.window_start, COUNT(*) AS clicks, SUM(c.amount) AS total
             FROM clicks c JOIN users u ON c.user_id = u.user_id
             GROUP BY u.country, c.window_start, c.window_end",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let want = lines(&want);
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(lines(&rows), want);
}

#[tokio::test]
async fn top_n_within_each_window() {
    // ORDER BY ... LIMIT applies to each window's result on its own (no state carried over
    // between windows, e.g. a top-N threshold).
    let select = "SELECT user_id, window_start, COUNT(*) AS clicks FROM clicks \
                  GROUP BY user_id, window_start, window_end ORDER BY clicks DESC, user_id LIMIT 2";
    let full = app_sql_with(
        select,
        "TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)",
    );
    let input = events(3_000, 29);
    let (rows, _) = run(&full, &input, 30, None).await;
    let per_window = "SELECT user_id, window_start, clicks FROM (
        SELECT user_id, window_start, COUNT(*) AS clicks,
               ROW_NUMBER() OVER (PARTITION BY window_start ORDER BY COUNT(*) DESC, user_id) AS rn
        FROM clicks GROUP BY user_id, window_start, window_end) WHERE rn <= 2";
    let (want, _) = expected("TUMBLE", 10_000, 10_000, &input, per_window).await;
    assert!(want.len() >= 20);
    assert_eq!(rows, want);
}

#[tokio::test]
async fn joins_that_need_the_whole_stream_are_refused() {
    let head = "CREATE TABLE s (k VARCHAR, ts TIMESTAMP) WITH ('stream' = 's');
                CREATE TABLE t (k VARCHAR, ts TIMESTAMP) WITH ('stream' = 't');
                CREATE TABLE users WITH ('connector' = 'catalog', 'database' = 'd', 'table' = 'u');
                CREATE TABLE o WITH ('stream' = 'o');";
    let reference = users_reference();
    for (pump, expected) in [
        (
            "INSERT INTO o SELECT s.k FROM s JOIN t ON s.k = t.k",
            "joined only window by window",
        ),
        (
            "INSERT INTO o SELECT s.k, u.country FROM s FULL JOIN users u ON s.k = u.user_id",
            "join other than",
        ),
        (
            "INSERT INTO o SELECT u.country FROM users u LEFT JOIN s ON s.k = u.user_id",
            "join other than",
        ),
    ] {
        let parsed = lakehose_analytics::sql::parse(&format!("{head}{pump}"));
        let err = match parsed {
            Err(e) => e.to_string(),
            Ok(p) => Application::with_references(p, std::slice::from_ref(&reference))
                .await
                .unwrap_err()
                .to_string(),
        };
        assert!(err.contains(expected), "{pump}: {err}");
    }
    // A LEFT join keeping every stream row is fine.
    let ok = format!(
        "{head}INSERT INTO o SELECT s.k, u.country FROM s LEFT JOIN users u ON s.k = u.user_id"
    );
    let parsed = lakehose_analytics::sql::parse(&ok).unwrap();
    Application::with_references(parsed, std::slice::from_ref(&reference))
        .await
        .unwrap();
}

#[tokio::test]
async fn window_join_of_two_streams_matches_batch_sql() {
    let sql = "CREATE TABLE clicks (user_id VARCHAR, url VARCHAR, amount BIGINT, event_time TIMESTAMP(3),
                 WATERMARK FOR event_time AS event_time - INTERVAL '2' SECOND)
               WITH ('connector' = 'firehose', 'stream' = 'clicks');
               CREATE TABLE orders (user_id VARCHAR, url VARCHAR, amount BIGINT, event_time TIMESTAMP(3),
                 WATERMARK FOR event_time AS event_time - INTERVAL '2' SECOND)
               WITH ('connector' = 'firehose', 'stream' = 'orders');
               CREATE TABLE out WITH ('connector' = 'firehose', 'stream' = 'out');
               INSERT INTO out
               SELECT a.user_id, a.window_start, COUNT(*) AS pairs, SUM(b.amount) AS ordered
               FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) AS a
               JOIN TABLE(TUMBLE(TABLE orders, DESCRIPTOR(event_time), INTERVAL '10' SECOND)) AS b
                 ON a.user_id = b.user_id AND a.window_start = b.window_start
                AND a.window_end = b.window_end
               GROUP BY a.user_id, a.window_start";
    let join = "SELECT a.user_id, a.window_start, COUNT(*) AS pairs, SUM(b.amount) AS ordered
                FROM clicks a JOIN orders b
                  ON a.user_id = b.user_id AND a.window_start = b.window_start
                 AND a.window_end = b.window_end
                GROUP BY a.user_id, a.window_start";
    let sides = [events(1_500, 31), events(1_500, 37)];
    // The order records arrive in: alternating runs of random length from each stream.
    let mut rng = StdRng::seed_from_u64(41);
    let mut order: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    let mut next = [0usize, 0];
    while next[0] < 1_500 || next[1] < 1_500 {
        let side = if next[0] >= 1_500 {
            1
        } else if next[1] >= 1_500 {
            0
        } else {
            rng.random_range(0..2)
        };
        let n = rng.random_range(1..=120).min(1_500 - next[side]);
        order.push((side, next[side]..next[side] + n));
        next[side] += n;
    }

    // Expected: late records by a plain loop over that order (the watermark is the smaller
    // of the two streams'), then batch SQL over the windows that fired.
    let mut max = [i64::MIN; 2];
    let mut watermark = i64::MIN;
    let mut late = [Vec::new(), Vec::new()];
    let mut assigned = [Vec::new(), Vec::new()];
    for (side, range) in &order {
        for i in range.clone() {
            let e = &sides[*side][i];
            let start = e.ts.div_euclid(10_000) * 10_000;
            if watermark >= start + 10_000 - 1 {
                late[*side].push(i);
            } else {
                assigned[*side].push((i, start, start + 10_000));
            }
            max[*side] = max[*side].max(e.ts);
            watermark = watermark.max(max[0].min(max[1]).saturating_sub(DELAY_MS));
        }
    }
    let ctx = SessionContext::new();
    ctx.register_batch("clicks", clicks_table(&sides[0], &assigned[0], watermark))
        .unwrap();
    ctx.register_batch("orders", clicks_table(&sides[1], &assigned[1], watermark))
        .unwrap();
    let want = lines(&ctx.sql(join).await.unwrap().collect().await.unwrap());
    assert!(want.len() > 20, "{want:?}");
    assert!(!late[0].is_empty() && !late[1].is_empty());

    for snapshot_every in [None, Some(3)] {
        let mut app = Application::new(sql).await.unwrap();
        assert_eq!(
            app.pumps[0].sources().collect::<Vec<_>>(),
            ["clicks", "orders"]
        );
        let mut rows = Vec::new();
        let mut got_late = [Vec::new(), Vec::new()];
        for (n, (side, range)) in order.iter().enumerate() {
            let datas: Vec<Vec<u8>> = range.clone().map(|i| sides[*side][i].json()).collect();
            let records: Vec<Input> = datas
                .iter()
                .zip(range.clone())
                .map(|(d, i)| Input {
                    data: d,
                    arrival_ms: sides[*side][i].arrival,
                })
                .collect();
            let table = ["clicks", "orders"][*side];
            let out = app.pumps[0].push_from(table, &records).await.unwrap();
            got_late[*side].extend(out.rejected.iter().map(|r| range.start + r.index));
            rows.extend(out.rows);
            if snapshot_every.is_some_and(|k| n % k == k - 1) {
                let bytes = app.pumps[0].snapshot().unwrap();
                app = Application::new(sql).await.unwrap();
                app.pumps[0].restore(&bytes).unwrap();
            }
        }
        assert_eq!(got_late, late, "late records ({snapshot_every:?})");
        assert_eq!(lines(&rows), want, "results ({snapshot_every:?})");
    }
}

#[tokio::test]
async fn approximate_percentiles_per_window() {
    // approx_percentile_cont's t-digest depends on how rows are batched, so the streaming
    // answer is compared with batch SQL's within a tolerance (amounts are 1..99).
    let select = "SELECT user_id, window_start, approx_percentile_cont(amount, 0.5) AS p50, \
                  approx_percentile_cont(amount, 0.9) AS p90, COUNT(*) AS n \
                  FROM clicks GROUP BY user_id, window_start, window_end";
    let sql = app_sql_with(
        select,
        "TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '30' SECOND)",
    );
    let input = events(3_000, 43);
    let parse =
        |rows: Vec<String>| -> std::collections::BTreeMap<(String, String), (f64, f64, String)> {
            rows.iter()
                .map(|line| {
                    let cells: Vec<String> = line
                        .trim_matches('|')
                        .split('|')
                        .map(|c| c.trim().to_string())
                        .collect();
                    (
                        (cells[0].clone(), cells[1].clone()),
                        (
                            cells[2].parse().unwrap(),
                            cells[3].parse().unwrap(),
                            cells[4].clone(),
                        ),
                    )
                })
                .collect()
        };
    let (got, _) = run(&sql, &input, 44, Some(4)).await;
    let (want, _) = expected("TUMBLE", 30_000, 30_000, &input, select).await;
    let (got, want) = (parse(got), parse(want));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(want.len() > 20);
    for (key, (p50, p90, n)) in &want {
        let (g50, g90, gn) = &got[key];
        assert_eq!(gn, n, "{key:?}");
        assert!(
            (g50 - p50).abs() <= 5.0 && (g90 - p90).abs() <= 5.0,
            "{key:?}: {g50}/{g90} vs {p50}/{p90}"
        );
    }
}

#[tokio::test]
async fn an_idle_source_lets_the_clock_close_its_last_window() {
    let window = "TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '10' SECOND)";
    let idle = app_sql(window).replace(
        "'stream' = 'clicks');",
        "'stream' = 'clicks', 'watermark.idle-timeout' = '5 s');",
    );
    assert!(idle.contains("idle-timeout"));
    let input: Vec<Event> = (0..30)
        .map(|i| Event {
            user: format!("user_{}", i % 2),
            url: "/".into(),
            amount: 1,
            ts: BASE + 1_000 + i * 100,
            arrival: BASE + 50_000 + i,
        })
        .collect();
    let datas: Vec<Vec<u8>> = input.iter().map(Event::json).collect();
    let records: Vec<Input> = datas
        .iter()
        .zip(&input)
        .map(|(d, e)| Input {
            data: d,
            arrival_ms: e.arrival,
        })
        .collect();
    let last_arrival = BASE + 50_029;
    let max_time = BASE + 1_000 + 2_900;
    // The window [BASE, BASE + 10 s) fires once the watermark reaches its end - 1 ms: the
    // source's time (max_time - 2 s delay) plus the silence beyond 5 s.
    let fires_at = last_arrival + 5_000 + (BASE + 9_999 - (max_time - DELAY_MS));
    for (sql, closes) in [(idle, true), (app_sql(window), false)] {
        let mut app = Application::new(&sql).await.unwrap();
        let pump = &mut app.pumps[0];
        let out = pump.push(&records).await.unwrap();
        assert_eq!(out.row_count(), 0);
        assert_eq!(pump.tick(fires_at - 1).await.unwrap().row_count(), 0);
        // A snapshot carries the arrival times the idle clock counts from.
        let bytes = pump.snapshot().unwrap();
        let mut app = Application::new(&sql).await.unwrap();
        let pump = &mut app.pumps[0];
        pump.restore(&bytes).unwrap();
        let out = pump.tick(fires_at).await.unwrap();
        let text = pretty_format_batches(&out.rows).unwrap().to_string();
        if closes {
            assert_eq!(out.row_count(), 2, "{text}");
            assert!(text.contains("user_0") && text.contains("| 15 "), "{text}");
        } else {
            assert_eq!(
                out.row_count(),
                0,
                "without an idle timeout the clock closes nothing"
            );
        }
    }
    let bad = app_sql(window).replace(
        "'stream' = 'clicks');",
        "'stream' = 'clicks', 'watermark.idle-timeout' = 'soon');",
    );
    let err = Application::new(&bad).await.unwrap_err().to_string();
    assert!(err.contains("not a duration"), "{err}");
}
