//! The newest error documents a stream wrote, for the console: their code and message only,
//! never the record.
//!
//! A flush stages the summaries of each error object it builds ([`RecentErrors::stage`]);
//! once the object is stored, [`RecentErrors::written`] moves them into the ring, stamped with
//! the write time. A flush that is never written (shutdown, replay after a crash) leaves its
//! staged entries to be pushed out by later ones.
//!
//! Invariants (bounded memory): the ring holds at most [`RECENT_ERRORS`] summaries, at most
//! [`STAGED_OBJECTS`] objects are staged with at most [`RECENT_ERRORS`] summaries each, and
//! codes and messages are cut at [`MAX_TEXT`] characters.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Summaries kept per stream.
pub const RECENT_ERRORS: usize = 200;
/// Error objects staged (built, not yet stored) per stream.
pub const STAGED_OBJECTS: usize = 16;
/// Characters kept of a code or a message.
pub const MAX_TEXT: usize = 1024;

/// One error document, summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSummary {
    /// When its object was stored (ms since the epoch, the engine's clock).
    pub time_ms: i64,
    /// The error-output folder, e.g. `processing-failed`.
    pub error_output_type: String,
    /// The key of the object holding the document, in the stream's bucket.
    pub key: String,
    pub error_code: String,
    pub error_message: String,
}

/// An error object built but not yet stored.
#[derive(Debug)]
struct Staged {
    key: String,
    error_output_type: String,
    /// (code, message) of its newest documents.
    summaries: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Inner {
    staged: VecDeque<Staged>,
    ring: VecDeque<ErrorSummary>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct RecentErrors(Mutex<Inner>);

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

/// The code and message of an error document (`errorCode`, `errorMessage`); missing fields
/// are empty. Other members (the raw data among them) are skipped, not kept.
pub fn summarize(document: &str) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "errorCode", default)]
        code: Option<String>,
        #[serde(rename = "errorMessage", default)]
        message: Option<String>,
    }
    match serde_json::from_str::<Doc>(document) {
        Ok(d) => (
            cut(&d.code.unwrap_or_default()),
            cut(&d.message.unwrap_or_default()),
        ),
        Err(_) => (String::new(), String::new()),
    }
}

impl RecentErrors {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stages the documents of the error object `key` (only the newest [`RECENT_ERRORS`]
    /// are summarised).
    pub(crate) fn stage(&self, key: &str, error_output_type: &str, documents: &[String]) {
        let skip = documents.len().saturating_sub(RECENT_ERRORS);
        let summaries = documents[skip..].iter().map(|d| summarize(d)).collect();
        let mut inner = self.lock();
        inner.staged.retain(|s| s.key != key);
        if inner.staged.len() >= STAGED_OBJECTS {
            inner.staged.pop_front();
        }
        inner.staged.push_back(Staged {
            key: key.to_string(),
            error_output_type: error_output_type.to_string(),
            summaries,
        });
    }

    /// The object `key` was stored at `time_ms`: its staged summaries join the ring.
    pub(crate) fn written(&self, key: &str, time_ms: i64) {
        let mut inner = self.lock();
        let Some(i) = inner.staged.iter().position(|s| s.key == key) else {
            return;
        };
        let Some(staged) = inner.staged.remove(i) else {
            return;
        };
        for (code, message) in staged.summaries {
            if inner.ring.len() >= RECENT_ERRORS {
                inner.ring.pop_front();
            }
            inner.ring.push_back(ErrorSummary {
                time_ms,
                error_output_type: staged.error_output_type.clone(),
                key: staged.key.clone(),
                error_code: code,
                error_message: message,
            });
        }
    }

    /// The newest `limit` summaries, newest first.
    pub fn newest(&self, limit: usize) -> Vec<ErrorSummary> {
        self.lock().ring.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize) -> String {
        format!(r#"{{"attemptsMade":1,"errorCode":"C{i}","errorMessage":"m{i}","rawData":"eA=="}}"#)
    }

    #[test]
    fn written_objects_join_a_bounded_ring() {
        let r = RecentErrors::default();
        r.stage("k1", "processing-failed", &[doc(1), doc(2)]);
        assert!(r.newest(10).is_empty(), "not stored yet");
        r.written("k1", 5);
        let got = r.newest(10);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].error_code.as_str(), got[0].error_message.as_str()),
            ("C2", "m2")
        );
        assert_eq!((got[0].key.as_str(), got[0].time_ms), ("k1", 5));
        r.written("k1", 6);
        assert_eq!(r.newest(10).len(), 2, "a key is moved once");
        let many: Vec<String> = (0..500).map(doc).collect();
        r.stage("k2", "format-conversion-failed", &many);
        r.written("k2", 7);
        let got = r.newest(1000);
        assert_eq!(got.len(), RECENT_ERRORS);
        assert_eq!(got[0].error_code, "C499");
        assert_eq!(got[RECENT_ERRORS - 1].error_code, "C300");
    }

    #[test]
    fn staging_is_bounded() {
        let r = RecentErrors::default();
        for i in 0..100 {
            r.stage(&format!("k{i}"), "processing-failed", &[doc(i)]);
        }
        assert_eq!(r.lock().staged.len(), STAGED_OBJECTS);
        r.written("k0", 1);
        assert!(r.newest(10).is_empty(), "pushed out");
        r.written("k99", 1);
        assert_eq!(r.newest(10)[0].error_code, "C99");
    }

    #[test]
    fn summaries_keep_code_and_message_only() {
        assert_eq!(summarize(&doc(3)), ("C3".into(), "m3".into()));
        assert_eq!(summarize("not json"), (String::new(), String::new()));
        let long = format!(
            r#"{{"errorCode":"x","errorMessage":"{}"}}"#,
            "a".repeat(5000)
        );
        assert_eq!(summarize(&long).1.len(), MAX_TEXT);
    }
}
