//! Windows: which windows a record belongs to, and when a window fires.
//!
//! Times are milliseconds since the Unix epoch. A window is the half-open interval
//! `[start, end)`. Following Flink, a window **fires** (its result is emitted and its state
//! dropped) once the watermark reaches `end - 1`, and a record is **late** when every window
//! it belongs to has already fired; a late record changes no result (it is counted and sent
//! to the application's late-record output instead).
//!
//! - `TUMBLE(size [, offset])`: one window per record, `start = ts - (ts - offset) mod size`.
//! - `HOP(slide, size)`: `size / slide` overlapping windows per record (size must be a
//!   multiple of slide), starting every `slide`.
//! - `CUMULATE(step, size)`: windows that share the start of the `size`-long tumbling window
//!   holding the record and end every `step` after it; a record belongs to those that end
//!   after it.
//! - `SESSION(gap)`, per `PARTITION BY` key: each record opens the window `[ts, ts + gap)`,
//!   which merges with every window of its key it intersects (touching included, as Flink's
//!   `TimeWindow.intersects`) and that has not fired; a session therefore ends `gap` after its
//!   last record. A record whose own window has already fired is late. Sessions hold their rows until they fire
//!   (their boundaries are only known then); the other windows hold one state per group.

/// The windowing table functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowKind {
    Tumble,
    Hop,
    Cumulate,
    Session,
}

impl WindowKind {
    /// The function named `name` (any case).
    pub fn from_function(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "TUMBLE" => Some(WindowKind::Tumble),
            "HOP" => Some(WindowKind::Hop),
            "CUMULATE" => Some(WindowKind::Cumulate),
            "SESSION" => Some(WindowKind::Session),
            _ => None,
        }
    }

    /// How the function is called, for error messages.
    pub fn usage(self) -> &'static str {
        match self {
            WindowKind::Tumble => "TUMBLE(TABLE source, DESCRIPTOR(time_column), size [, offset])",
            WindowKind::Hop => "HOP(TABLE source, DESCRIPTOR(time_column), slide, size)",
            WindowKind::Cumulate => "CUMULATE(TABLE source, DESCRIPTOR(time_column), step, size)",
            WindowKind::Session => {
                "SESSION(TABLE source [PARTITION BY column | (columns)], DESCRIPTOR(time_column), gap)"
            }
        }
    }
}

/// One query's windowing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// The time column (a source column, or `rowtime`).
    pub time_column: String,
    /// Window length, in milliseconds.
    pub size_ms: i64,
    /// HOP's slide, CUMULATE's step; equal to `size_ms` for TUMBLE.
    pub slide_ms: i64,
    /// TUMBLE's offset.
    pub offset_ms: i64,
    /// SESSION's `PARTITION BY` columns (a session per distinct value).
    #[serde(default)]
    pub partition_by: Vec<String>,
}

impl WindowSpec {
    /// The spec of `kind` called with these interval arguments (milliseconds).
    pub fn new(kind: WindowKind, time_column: String, intervals: &[i64]) -> Result<Self, String> {
        let (size_ms, slide_ms, offset_ms) = match (kind, intervals) {
            (WindowKind::Tumble, [size]) => (*size, *size, 0),
            (WindowKind::Tumble, [size, offset]) => (*size, *size, *offset),
            (WindowKind::Hop | WindowKind::Cumulate, [slide, size]) => (*size, *slide, 0),
            (WindowKind::Session, [gap]) => (*gap, *gap, 0),
            _ => return Err("wrong number of intervals".into()),
        };
        if size_ms % slide_ms != 0 {
            return Err(format!(
                "the size ({size_ms} ms) must be a multiple of the slide/step ({slide_ms} ms)"
            ));
        }
        if offset_ms >= size_ms {
            return Err("the offset must be smaller than the size".into());
        }
        Ok(WindowSpec {
            kind,
            time_column,
            size_ms,
            slide_ms,
            offset_ms,
            partition_by: Vec::new(),
        })
    }

    /// Calls `f(start, end)` for each window holding a record of time `ts` (for SESSION: the
    /// record's own window, before merging).
    pub fn for_each_window(&self, ts: i64, mut f: impl FnMut(i64, i64)) {
        match self.kind {
            WindowKind::Tumble => {
                let start = ts - (ts - self.offset_ms).rem_euclid(self.size_ms);
                f(start, start + self.size_ms);
            }
            WindowKind::Hop => {
                let last = ts - (ts - self.offset_ms).rem_euclid(self.slide_ms);
                let count = self.size_ms / self.slide_ms;
                for k in (0..count).rev() {
                    let start = last - k * self.slide_ms;
                    f(start, start + self.size_ms);
                }
            }
            WindowKind::Session => f(ts, ts + self.size_ms),
            WindowKind::Cumulate => {
                let start = ts - (ts - self.offset_ms).rem_euclid(self.size_ms);
                let mut end = start + self.slide_ms;
                while end <= start + self.size_ms {
                    if end > ts {
                        f(start, end);
                    }
                    end += self.slide_ms;
                }
            }
        }
    }
}

/// Whether a window ending at `end` has fired once the watermark is `watermark`.
pub fn fired(end: i64, watermark: i64) -> bool {
    watermark >= end - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(spec: &WindowSpec, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        spec.for_each_window(ts, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn assignment() {
        let t = WindowSpec::new(WindowKind::Tumble, "ts".into(), &[10]).unwrap();
        assert_eq!(windows(&t, 0), [(0, 10)]);
        assert_eq!(windows(&t, 19), [(10, 20)]);
        assert_eq!(windows(&t, -1), [(-10, 0)]);
        let t = WindowSpec::new(WindowKind::Tumble, "ts".into(), &[10, 3]).unwrap();
        assert_eq!(windows(&t, 2), [(-7, 3)]);
        let h = WindowSpec::new(WindowKind::Hop, "ts".into(), &[5, 15]).unwrap();
        assert_eq!(windows(&h, 12), [(0, 15), (5, 20), (10, 25)]);
        let c = WindowSpec::new(WindowKind::Cumulate, "ts".into(), &[5, 15]).unwrap();
        assert_eq!(windows(&c, 7), [(0, 10), (0, 15)]);
        assert_eq!(windows(&c, 14), [(0, 15)]);
        assert_eq!(windows(&c, 15), [(15, 20), (15, 25), (15, 30)]);
    }

    #[test]
    fn firing() {
        assert!(!fired(10, 8));
        assert!(fired(10, 9));
    }
}
