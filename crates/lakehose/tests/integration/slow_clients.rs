//! Slow clients and HTTP/2 floods against the real binary, with the `[server]` timeouts set
//! to 2 s: slowloris connections (headers one byte a second), silent connections, idle
//! kept-alive connections and slow bodies are all closed (or answered 408) within the
//! configured time; an h2c rapid-reset flood and a flood of streams beyond the concurrency
//! limit leave the server up. Meanwhile a normal client's PutRecord p99 stays within 2x the
//! p99 it had just before the attack.
//!
//! The figures are printed (`--no-capture`, or shown by nextest when a test fails).
//! Latency comparisons on a shared 2-core CI machine are noisy: each comparison is measured
//! up to three times (baseline, then attack) and passes when one round is within bounds, and
//! a baseline under 2 ms is compared with a 2 ms floor (scheduler granularity).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bad_input::{Proc, create_body, ms, must_ok, percentile, post, put_record};

const TIMEOUT_SECS: f64 = 2.0;

fn config() -> String {
    format!(
        "[server]\nheader_read_timeout_secs = {TIMEOUT_SECS}\nidle_timeout_secs = {TIMEOUT_SECS}\n\
         body_read_timeout_secs = {TIMEOUT_SECS}\nh2_max_concurrent_streams = 64\n"
    )
}

fn start() -> Proc {
    let p = Proc::start(&config());
    let body = create_body(
        "s",
        "s",
        json!({"BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60}}),
    );
    must_ok(
        &p,
        &post(
            "Firehose_20150804.CreateDeliveryStream",
            &serde_json::to_vec(&body).unwrap(),
        ),
    );
    p
}

/// `n` PutRecords on one kept-alive connection, `gap` apart: their latencies, and how many
/// were refused (503 `ServiceUnavailableException`, which clients retry).
fn put_latencies(p: &Proc, n: usize, gap: Duration) -> (Vec<Duration>, usize) {
    let mut conn = p.conn();
    let mut out = Vec::with_capacity(n);
    let mut refused = 0;
    for i in 0..n {
        let raw = put_record("s", format!("{{\"i\":{i}}}\n").as_bytes());
        let started = Instant::now();
        let resp = conn.roundtrip(&raw).expect("normal client's put");
        out.push(started.elapsed());
        match resp.status {
            200 => {}
            503 => refused += 1,
            other => panic!(
                "normal client's put {i}: {other} {}",
                String::from_utf8_lossy(&resp.body)
            ),
        }
        std::thread::sleep(gap);
    }
    (out, refused)
}

/// How long after an attack until 20 PutRecords in a row (50 ms apart) are accepted, and how
/// many were refused before that.
fn recovery(p: &Proc, limit: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let (mut streak, mut refused) = (0, 0);
    let mut last_ok_run_start = Instant::now();
    while streak < 20 {
        let resp = p
            .conn()
            .roundtrip(&put_record("s", b"probe\n"))
            .expect("probe put");
        if resp.status == 200 {
            if streak == 0 {
                last_ok_run_start = Instant::now();
            }
            streak += 1;
        } else {
            assert_eq!(resp.status, 503, "{}", String::from_utf8_lossy(&resp.body));
            streak = 0;
            refused += 1;
        }
        assert!(
            started.elapsed() < limit,
            "the server still refuses puts {:?} after the attack ({refused} refused)",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (last_ok_run_start - started, refused)
}

/// Baseline p99, then p99 while `attack` runs (it gets a stop flag and returns its own
/// report); up to five rounds until the attack p99 is within 2x the baseline (2 ms floor). The
/// p99 of 300 samples is their third-worst: on this 2-core machine, where the attacker keeps
/// one core busy, a scheduler hiccup alone can move it by 2 ms, so one round is not a verdict;
/// a server that really starves other clients fails every round.
fn compare_under_attack<R: Send + 'static>(
    p: &Proc,
    label: &str,
    attack: impl Fn(SocketAddr, Arc<AtomicBool>) -> R + Send + Sync + Clone + 'static,
    check: impl Fn(&R),
) {
    const SAMPLES: usize = 300;
    const GAP: Duration = Duration::from_millis(5);
    let mut rounds = Vec::new();
    for round in 1..=5 {
        // Warm-up, then the baseline just before the attack.
        put_latencies(p, 30, Duration::ZERO);
        let (mut base, base_refused) = put_latencies(p, SAMPLES, GAP);
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, flag, attack) = (p.addr, stop.clone(), attack.clone());
        let attacker = std::thread::spawn(move || attack(addr, flag));
        // Let the attack get going before measuring.
        std::thread::sleep(Duration::from_millis(500));
        let (mut under, under_refused) = put_latencies(p, SAMPLES, GAP);
        stop.store(true, Ordering::SeqCst);
        let report = attacker.join().expect("attacker thread");
        check(&report);
        // Nobody else is refused for the attacker's sake: not during the attack, and not
        // for long after it (a short tail of work queued by the attack is tolerated).
        assert_eq!(
            (base_refused, under_refused),
            (0, 0),
            "{label} round {round}: the normal client's puts were refused"
        );
        let (recovered, refused) = recovery(p, Duration::from_secs(10));
        println!(
            "{label} round {round}: refused puts: {base_refused} in the baseline, {under_refused} under attack, {refused} after it (accepted again {:.0} ms after it stopped)",
            ms(recovered)
        );
        let (b99, a99) = (percentile(&mut base, 99.0), percentile(&mut under, 99.0));
        let (b50, a50) = (percentile(&mut base, 50.0), percentile(&mut under, 50.0));
        println!(
            "{label} round {round}: normal PutRecord p50/p99 baseline {:.2}/{:.2} ms, under attack {:.2}/{:.2} ms ({SAMPLES} samples each)",
            ms(b50),
            ms(b99),
            ms(a50),
            ms(a99)
        );
        let bound = (b99 * 2).max(Duration::from_millis(2));
        rounds.push((b99, a99));
        if a99 <= bound {
            return;
        }
    }
    panic!("{label}: p99 under attack over 2x the baseline in every round: {rounds:?}");
}

/// Opens `n` connections that send a request head one byte a second, until the server has
/// closed them all (or `limit` + 10 s); returns how long each one stayed open (`None`: never
/// closed).
fn slowloris(addr: SocketAddr, n: usize, limit: Duration) -> Vec<Option<Duration>> {
    let head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Firehose_20150804.ListDeliveryStreams\r\nX-Padding: ";
    // Connections are opened 1 ms apart (about 200 ms for a wave), as a real attacker's would
    // trickle in; each gets its own clock.
    let mut conns: Vec<(TcpStream, Instant, Option<Duration>)> = (0..n)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("slowloris connect");
            s.set_nonblocking(true).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            (s, Instant::now(), None)
        })
        .collect();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit + Duration::from_secs(10) {
        // One byte a second: byte k goes out at k seconds.
        let byte_now = sent <= started.elapsed().as_secs() as usize;
        for (s, opened, closed) in &mut conns {
            if closed.is_some() {
                continue;
            }
            if byte_now {
                let b = head.get(sent).copied().unwrap_or(b'a');
                if s.write(&[b]).is_err() {
                    *closed = Some(opened.elapsed());
                    continue;
                }
            }
            match s.read(&mut buf) {
                Ok(_) => *closed = Some(opened.elapsed()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => *closed = Some(opened.elapsed()),
            }
        }
        if byte_now {
            sent += 1;
        }
        if conns.iter().all(|c| c.2.is_some()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    conns.into_iter().map(|c| c.2).collect()
}

#[test]
fn slowloris_idle_and_slow_body_clients_are_cut_off() {
    let mut p = start();
    let limit = Duration::from_secs_f64(TIMEOUT_SECS);
    // The close must come within the timeout plus one second (one byte a second, and the
    // check runs every 50 ms).
    let deadline = limit + Duration::from_secs(1);

    // 200 slowloris connections, while a normal client keeps putting.
    let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = closed.clone();
    compare_under_attack(
        &p,
        "slowloris x200",
        move |addr, stop| {
            // Waves of 200 for as long as the normal client measures.
            let mut waves = 0;
            while !stop.load(Ordering::SeqCst) {
                let times = slowloris(addr, 200, limit);
                waves += 1;
                sink.lock().unwrap().extend(times);
            }
            waves
        },
        |waves| assert!(*waves >= 1),
    );
    let times = closed.lock().unwrap().clone();
    let open: usize = times.iter().filter(|t| t.is_none()).count();
    let mut closed_after: Vec<Duration> = times.iter().flatten().copied().collect();
    let (min, p50, max) = (
        percentile(&mut closed_after, 0.0),
        percentile(&mut closed_after, 50.0),
        percentile(&mut closed_after, 100.0),
    );
    println!(
        "slowloris: {} connections, closed after min {:.0} / p50 {:.0} / max {:.0} ms (timeout {:.0} ms), {open} never closed",
        times.len(),
        ms(min),
        ms(p50),
        ms(max),
        ms(limit)
    );
    assert_eq!(open, 0, "slowloris connections left open");
    assert!(max <= deadline, "a slowloris connection lasted {max:?}");
    assert!(
        min >= limit - Duration::from_millis(100),
        "closed before the timeout: {min:?}"
    );

    // A connection that never sends a byte (the protocol is not even known yet).
    let mut silent = TcpStream::connect(p.addr).unwrap();
    silent.set_read_timeout(Some(limit * 5)).unwrap();
    let started = Instant::now();
    let n = silent.read(&mut [0u8; 64]).unwrap_or(0);
    let silent_closed = started.elapsed();
    println!("silent connection closed after {:.0} ms", ms(silent_closed));
    assert_eq!(n, 0);
    assert!(silent_closed <= deadline && silent_closed >= limit - Duration::from_millis(100));

    // An idle kept-alive connection is closed between requests.
    let mut conn = p.conn();
    let resp = conn
        .roundtrip(&post("Firehose_20150804.ListDeliveryStreams", b"{}"))
        .unwrap();
    assert_eq!(resp.status, 200);
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = conn.stream.read(&mut byte).unwrap_or(0);
    let idle_closed = started.elapsed();
    println!(
        "idle kept-alive connection closed after {:.0} ms",
        ms(idle_closed)
    );
    assert_eq!(n, 0);
    assert!(idle_closed <= deadline && idle_closed >= limit - Duration::from_millis(100));

    // A slow body: the head at once, then one byte a second: 408 at the body timeout.
    let body = br#"{"DeliveryStreamName":"s","Record":{"Data":"aGk="}}"#;
    let mut slow = p.conn();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Firehose_20150804.PutRecord\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let dripper = {
        let mut w = slow.stream.try_clone().unwrap();
        let body = body.to_vec();
        std::thread::spawn(move || {
            for b in body {
                if w.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let resp = slow.read_response().expect("an answer to the slow body");
    let body_cut = started.elapsed();
    println!(
        "slow body answered {} after {:.0} ms",
        resp.status,
        ms(body_cut)
    );
    assert_eq!(resp.status, 408);
    assert_eq!(resp.json()["__type"], "RequestTimeoutException");
    assert!(body_cut <= deadline && body_cut >= limit - Duration::from_millis(100));
    let _ = slow.stream.shutdown(std::net::Shutdown::Both);
    let _ = dripper.join();

    // Stalled bodies of unknown length (chunked) hold only what they sent of the request
    // budget: four of them (each could be 8 MiB; the budget is 16 MiB) shed nobody else, and
    // each is answered 408 at the body timeout.
    let mut stalled: Vec<_> = (0..4)
        .map(|_| {
            let mut c = p.conn();
            c.stream
                .write_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Firehose_20150804.PutRecord\r\n\
                      Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
                )
                .unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let resp = p.conn().roundtrip(&put_record("s", b"beside\n")).unwrap();
    assert_eq!(
        resp.status,
        200,
        "a put beside stalled chunked bodies: {}",
        String::from_utf8_lossy(&resp.body)
    );
    for c in &mut stalled {
        let resp = c
            .read_response()
            .expect("an answer to the stalled chunked body");
        assert_eq!(resp.status, 408);
    }
    println!(
        "stalled chunked bodies answered 408 after {:.0} ms",
        ms(started.elapsed())
    );
    assert!(started.elapsed() <= deadline);

    // The server is fine.
    must_ok(&p, &put_record("s", b"after\n"));
    p.assert_healthy();
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/2 (h2c, prior knowledge) frame writer: enough to open and reset streams.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: `POST http://x/` with an `x-amz-target`, literals without indexing (no Huffman).
fn request_headers(target: &str) -> Vec<u8> {
    let mut h = vec![0x83, 0x86, 0x84]; // :method POST, :scheme http, :path /
    h.push(0x01); // :authority, literal value
    h.push(1);
    h.push(b'x');
    for (name, value) in [
        ("x-amz-target", target),
        ("content-type", "application/x-amz-json-1.1"),
    ] {
        h.push(0x00);
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(value.len() as u8);
        h.extend_from_slice(value.as_bytes());
    }
    h
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What the server sent back on the flood connections.
#[derive(Debug, Default)]
struct FloodReport {
    connections: u64,
    streams_opened: u64,
    resets_sent: u64,
    goaways: u64,
    last_goaway_code: Option<u32>,
    headers_received: u64,
    resets_received: u64,
}

/// An h2c connection: preface and settings sent, the server's settings acknowledged, and a
/// thread counting the frames the server sends.
fn h2_connect(addr: SocketAddr, counters: Arc<[AtomicU64; 4]>) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.write_all(PREFACE)?;
    s.write_all(&frame(SETTINGS, 0, 0, &[]))?;
    s.write_all(&frame(SETTINGS, 1, 0, &[]))?;
    let mut r = s.try_clone()?;
    std::thread::spawn(move || {
        let mut head = [0u8; 9];
        let mut payload = vec![0u8; 1 << 16];
        while r.read_exact(&mut head).is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            payload.resize(len, 0);
            if r.read_exact(&mut payload[..len]).is_err() {
                break;
            }
            match head[3] {
                HEADERS => counters[0].fetch_add(1, Ordering::Relaxed),
                RST_STREAM => counters[1].fetch_add(1, Ordering::Relaxed),
                GOAWAY => {
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    counters[3].store(code as u64, Ordering::Relaxed);
                    counters[2].fetch_add(1, Ordering::Relaxed)
                }
                _ => 0,
            };
        }
    });
    Ok(s)
}

/// Rapid reset (CVE-2023-44487): HEADERS then RST_STREAM(CANCEL), as fast as the socket takes
/// them, reconnecting whenever the server hangs up.
fn rapid_reset(addr: SocketAddr, stop: Arc<AtomicBool>) -> FloodReport {
    let counters = Arc::new([(); 4].map(|_| AtomicU64::new(0)));
    let mut report = FloodReport::default();
    let headers = request_headers("Firehose_20150804.ListDeliveryStreams");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(mut s) = h2_connect(addr, counters.clone()) else {
            continue;
        };
        report.connections += 1;
        let mut id = 1u32;
        let mut batch = Vec::with_capacity(64 * 64);
        'conn: while !stop.load(Ordering::SeqCst) && id < 1 << 30 {
            batch.clear();
            for _ in 0..32 {
                batch.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &headers));
                batch.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
                id += 2;
            }
            if s.write_all(&batch).is_err() {
                break 'conn;
            }
            report.streams_opened += 32;
            report.resets_sent += 32;
            // The attacker shares the machine's two cores with the server and the measured
            // client: about 30,000 streams a second, not a busy loop.
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    report.headers_received = counters[0].load(Ordering::Relaxed);
    report.resets_received = counters[1].load(Ordering::Relaxed);
    report.goaways = counters[2].load(Ordering::Relaxed);
    report.last_goaway_code =
        (report.goaways > 0).then(|| counters[3].load(Ordering::Relaxed) as u32);
    report
}

/// Streams beyond the concurrency limit: 1,000 requests whose bodies never come, on each
/// connection, reconnecting whenever the server hangs up.
fn stream_flood(addr: SocketAddr, stop: Arc<AtomicBool>) -> FloodReport {
    let counters = Arc::new([(); 4].map(|_| AtomicU64::new(0)));
    let mut report = FloodReport::default();
    let headers = request_headers("Firehose_20150804.PutRecord");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = Vec::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(mut s) = h2_connect(addr, counters.clone()) else {
            continue;
        };
        report.connections += 1;
        let mut batch = Vec::new();
        for i in 0..1000u32 {
            batch.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &headers));
        }
        if s.write_all(&batch).is_ok() {
            report.streams_opened += 1000;
        }
        open.push(s);
        // A new connection every 250 ms, each left hanging: with the 2 s body timeout about
        // 500 accepted streams wait for bodies at any time, and 4,000 HEADERS a second
        // beyond the limit are refused.
        std::thread::sleep(Duration::from_millis(250));
    }
    // Leave them open a while: the body timeout must end the accepted streams.
    std::thread::sleep(Duration::from_secs_f64(TIMEOUT_SECS + 1.0));
    report.headers_received = counters[0].load(Ordering::Relaxed);
    report.resets_received = counters[1].load(Ordering::Relaxed);
    report.goaways = counters[2].load(Ordering::Relaxed);
    report.last_goaway_code =
        (report.goaways > 0).then(|| counters[3].load(Ordering::Relaxed) as u32);
    drop(open);
    report
}

#[test]
fn h2_rapid_reset_and_stream_floods_leave_others_served() {
    let mut p = start();
    // h2c works at all: one complete request.
    {
        let counters = Arc::new([(); 4].map(|_| AtomicU64::new(0)));
        let mut s = h2_connect(p.addr, counters.clone()).unwrap();
        s.write_all(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &request_headers("Firehose_20150804.ListDeliveryStreams"),
        ))
        .unwrap();
        let started = Instant::now();
        while counters[0].load(Ordering::Relaxed) == 0 && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(counters[0].load(Ordering::Relaxed), 1, "no h2 response");
    }

    compare_under_attack(&p, "h2 rapid reset", rapid_reset, |r: &FloodReport| {
        println!("h2 rapid reset: {r:?}");
        assert!(
            r.streams_opened >= 1000,
            "the flood did not get going: {r:?}"
        );
    });
    p.assert_healthy();

    compare_under_attack(
        &p,
        "h2 streams beyond the limit",
        stream_flood,
        |r: &FloodReport| {
            println!("h2 stream flood: {r:?}");
            assert!(
                r.streams_opened >= 1000,
                "the flood did not get going: {r:?}"
            );
            // Every accepted stream was ended by the body timeout (a 408 HEADERS frame), the
            // others refused (RST_STREAM) or the connection sent away.
            assert!(r.headers_received > 0 || r.goaways > 0, "{r:?}");
        },
    );

    must_ok(&p, &put_record("s", b"after\n"));
    p.assert_healthy();
}

/// Sends `GET /health` on a kept-alive connection and reads its answer (`ok`, 2 bytes).
fn health(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.write_all(b"GET /health HTTP/1.1\r\nhost: lakehose\r\n\r\n")?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok") {
        match conn.read(&mut buf)? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    Ok(())
}

/// At the connection cap, a new client is not locked out by kept-alive connections sitting
/// idle: those idle for a second or more are closed to make room, while one just used stays.
/// Before, the new client waited in the accept queue until the idle ones' header timeout
/// (30 s here).
#[test]
fn at_the_connection_cap_idle_connections_make_room() {
    let p = Proc::start(
        "[server]\nmax_connections = 2\nheader_read_timeout_secs = 30\nidle_timeout_secs = 30\n",
    );
    let open = || {
        let mut conn = TcpStream::connect(p.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        health(&mut conn).unwrap();
        conn
    };
    let mut idle = open();
    let mut busy = open();
    std::thread::sleep(Duration::from_millis(1500));
    health(&mut busy).unwrap();
    // Both slots are taken; the new connection waits in the accept queue for one.
    let started = Instant::now();
    let mut newcomer = TcpStream::connect(p.addr).unwrap();
    newcomer
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    health(&mut newcomer).unwrap();
    let waited = started.elapsed();
    println!(
        "at the cap: a new client was answered after {:.1} ms",
        ms(waited)
    );
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // The idle one was closed, the one just used was not.
    let mut byte = [0u8; 1];
    assert_eq!(
        idle.read(&mut byte).unwrap_or(0),
        0,
        "the idle connection is closed"
    );
    health(&mut busy).expect("the connection used just before stays open");
    health(&mut newcomer).unwrap();
}
