//! The console's saved dashboards, stored as one JSON file, `<data_dir>/console/dashboards.json`.
//!
//! Invariants:
//! - Every stored dashboard passed [`validate`]: id `[A-Za-z0-9_-]{1,64}`, name 1..=128
//!   characters, at most [`MAX_PANELS`] panels with unique ids, SQL of at most [`MAX_SQL_BYTES`]
//!   bytes, a known chart type, grid positions integers in `0..=100`.
//! - At most [`MAX_DASHBOARDS`] dashboards and [`MAX_FILE_BYTES`] of JSON: the store never
//!   grows past them (`LimitExceededException`).
//! - A change is answered only after the whole file was written to a temporary file, fsync'd,
//!   renamed over the old one and the folder fsync'd: a crash leaves the old file or the new
//!   one, never a mix. Changes are serialised by one lock; the in-memory copy is replaced only
//!   after the write succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lakehose_api::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};

/// Most dashboards stored.
pub const MAX_DASHBOARDS: usize = 200;
/// Most panels per dashboard.
pub const MAX_PANELS: usize = 50;
/// Most bytes of SQL per panel.
pub const MAX_SQL_BYTES: usize = 100 * 1024;
/// Most bytes of the whole file.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Largest grid coordinate or size.
pub const MAX_GRID: u64 = 100;
/// Longest auto-refresh period (one day); 0 turns refresh off.
pub const MAX_REFRESH_S: u64 = 86_400;

/// A chart's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Vec<String>,
}

/// One panel: a query and how to draw it, at a place of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub sql: String,
    pub chart: Chart,
    pub x: u64,
    pub y: u64,
    pub w: u64,
    pub h: u64,
}

/// A stored dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub id: String,
    pub name: String,
    pub refresh_s: u64,
    pub panels: Vec<Panel>,
    pub updated_ms: i64,
}

/// The body of `PUT /console/api/dashboards/{id}` (other members are ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct DashboardInput {
    pub name: Option<String>,
    #[serde(default)]
    pub refresh_s: Option<u64>,
    #[serde(default)]
    pub panels: Vec<Panel>,
}

const CHART_TYPES: [&str; 4] = ["bar", "line", "pie", "table"];

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a dashboard id against `[A-Za-z0-9_-]{1,64}`.
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(invalid(format!(
            "Dashboard id '{}' must be 1 to 64 characters among A-Z, a-z, 0-9, '_' and '-'.",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// Validates a `PUT` body for dashboard `id`, giving the dashboard to store.
pub fn validate(id: &str, input: DashboardInput, now_ms: i64) -> Result<Dashboard, ApiError> {
    validate_id(id)?;
    let name = input
        .name
        .ok_or_else(|| invalid("Dashboard 'name' is required.".into()))?;
    let name_len = name.chars().count();
    if name_len == 0 || name_len > 128 || name.trim().is_empty() {
        return Err(invalid(format!(
            "Dashboard 'name' must be 1 to 128 characters (got {name_len}) and not blank."
        )));
    }
    let refresh_s = input.refresh_s.unwrap_or(0);
    if refresh_s > MAX_REFRESH_S {
        return Err(invalid(format!(
            "'refresh_s' must be between 0 (off) and {MAX_REFRESH_S} (got {refresh_s})."
        )));
    }
    if input.panels.len() > MAX_PANELS {
        return Err(invalid(format!(
            "A dashboard has at most {MAX_PANELS} panels (got {}).",
            input.panels.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in input.panels.iter().enumerate() {
        let at = format!("panels[{i}]");
        if !valid_id(&p.id) {
            return Err(invalid(format!(
                "{at}.id must be 1 to 64 characters among A-Z, a-z, 0-9, '_' and '-'."
            )));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(invalid(format!("{at}.id '{}' is used twice.", p.id)));
        }
        if p.title.chars().count() > 256 {
            return Err(invalid(format!(
                "{at}.title is longer than 256 characters."
            )));
        }
        if p.sql.len() > MAX_SQL_BYTES {
            return Err(invalid(format!(
                "{at}.sql is {} bytes; at most {MAX_SQL_BYTES} are allowed.",
                p.sql.len()
            )));
        }
        if !CHART_TYPES.contains(&p.chart.kind.as_str()) {
            return Err(invalid(format!(
                "{at}.chart.type '{}' is not one of bar, line, pie, table.",
                p.chart.kind.chars().take(40).collect::<String>()
            )));
        }
        let columns = p.chart.x.iter().chain(p.chart.y.iter());
        if p.chart.y.len() > 32 || columns.clone().any(|c| c.chars().count() > 256) {
            return Err(invalid(format!(
                "{at}.chart names at most 32 'y' columns of at most 256 characters each."
            )));
        }
        for (field, v) in [("x", p.x), ("y", p.y), ("w", p.w), ("h", p.h)] {
            if v > MAX_GRID {
                return Err(invalid(format!(
                    "{at}.{field} must be an integer between 0 and {MAX_GRID} (got {v})."
                )));
            }
        }
    }
    Ok(Dashboard {
        id: id.to_string(),
        name,
        refresh_s,
        panels: input.panels,
        updated_ms: now_ms,
    })
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    dashboards: Vec<Dashboard>,
}

/// The dashboards of one data dir.
#[derive(Debug)]
pub struct Dashboards {
    path: PathBuf,
    /// By id; changed only after the file was written.
    current: tokio::sync::Mutex<BTreeMap<String, Dashboard>>,
}

impl Dashboards {
    /// Opens (or starts) `<data_dir>/console/dashboards.json`. A file that cannot be parsed
    /// stops the start rather than being overwritten.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("console");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("dashboards.json");
        let current = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: File = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
                file.dashboards
                    .into_iter()
                    .map(|d| (d.id.clone(), d))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            current: tokio::sync::Mutex::new(current),
        })
    }

    /// Every dashboard, by id.
    pub async fn list(&self) -> Vec<Dashboard> {
        self.current.lock().await.values().cloned().collect()
    }

    /// Stores (creates or replaces) a validated dashboard.
    pub async fn put(&self, dashboard: Dashboard) -> Result<Dashboard, ApiError> {
        let mut current = self.current.lock().await;
        if !current.contains_key(&dashboard.id) && current.len() >= MAX_DASHBOARDS {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!("At most {MAX_DASHBOARDS} dashboards can be stored; delete one first."),
            ));
        }
        let mut next = current.clone();
        next.insert(dashboard.id.clone(), dashboard.clone());
        self.write(&next).await?;
        *current = next;
        Ok(dashboard)
    }

    /// Deletes dashboard `id` (`ResourceNotFoundException` when there is none).
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let mut current = self.current.lock().await;
        if !current.contains_key(id) {
            return Err(not_found(id));
        }
        let mut next = current.clone();
        next.remove(id);
        self.write(&next).await?;
        *current = next;
        Ok(())
    }

    async fn write(&self, dashboards: &BTreeMap<String, Dashboard>) -> Result<(), ApiError> {
        let file = File {
            dashboards: dashboards.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(ApiError::internal)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(ApiError::new(
                ErrorKind::LimitExceeded,
                format!("The dashboards would take more than {MAX_FILE_BYTES} bytes."),
            ));
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }
}

/// `ResourceNotFoundException` for dashboard `id`.
pub fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!("Dashboard {id} not found."),
    )
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> DashboardInput {
        serde_json::from_value(v).unwrap()
    }

    fn panel(id: &str) -> serde_json::Value {
        json!({"id": id, "title": "t", "sql": "SELECT 1", "chart": {"type": "bar", "x": "a", "y": ["b"]},
               "x": 0, "y": 0, "w": 6, "h": 4})
    }

    fn error_of(id: &str, v: serde_json::Value) -> String {
        let e = validate(id, input(v), 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        e.message
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = validate(
            "ops_1",
            input(json!({"name": "Ops", "refresh_s": 30, "panels": [panel("p1")]})),
            7,
        )
        .unwrap();
        assert_eq!(ok.updated_ms, 7);
        assert_eq!(ok.panels[0].chart.y, ["b"]);
        assert!(error_of("bad id!", json!({"name": "x"})).contains("Dashboard id"));
        assert!(error_of(&"a".repeat(65), json!({"name": "x"})).contains("1 to 64"));
        assert!(error_of("d", json!({})).contains("'name' is required"));
        assert!(error_of("d", json!({"name": ""})).contains("1 to 128"));
        assert!(error_of("d", json!({"name": "n".repeat(129)})).contains("(got 129)"));
        let many: Vec<_> = (0..51).map(|i| panel(&format!("p{i}"))).collect();
        assert!(error_of("d", json!({"name": "n", "panels": many})).contains("at most 50"));
        let mut big = panel("p");
        big["sql"] = json!("x".repeat(MAX_SQL_BYTES + 1));
        assert!(error_of("d", json!({"name": "n", "panels": [big]})).contains("panels[0].sql"));
        let mut chart = panel("p");
        chart["chart"]["type"] = json!("donut");
        assert!(
            error_of("d", json!({"name": "n", "panels": [chart]})).contains("chart.type 'donut'")
        );
        let mut far = panel("p");
        far["w"] = json!(101);
        assert!(error_of("d", json!({"name": "n", "panels": [far]})).contains("panels[0].w"));
        assert!(
            error_of(
                "d",
                json!({"name": "n", "panels": [panel("p"), panel("p")]})
            )
            .contains("used twice")
        );
        assert!(error_of("d", json!({"name": "n", "refresh_s": 100000})).contains("refresh_s"));
        // Negative or fractional positions are not even parsed.
        let mut neg = panel("p");
        neg["x"] = json!(-1);
        assert!(
            serde_json::from_value::<DashboardInput>(json!({"name": "n", "panels": [neg]}))
                .is_err()
        );
    }

    #[tokio::test]
    async fn changes_survive_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Dashboards::open(tmp.path()).unwrap();
        let d = validate("a", input(json!({"name": "A", "panels": [panel("p")]})), 1).unwrap();
        store.put(d.clone()).await.unwrap();
        let b = validate("b", input(json!({"name": "B"})), 2).unwrap();
        store.put(b).await.unwrap();
        store.delete("b").await.unwrap();
        assert_eq!(
            store.delete("b").await.unwrap_err().kind,
            ErrorKind::ResourceNotFound
        );
        drop(store);
        let reopened = Dashboards::open(tmp.path()).unwrap();
        assert_eq!(reopened.list().await, vec![d]);
        assert!(!tmp.path().join("console/dashboards.json.tmp").exists());
    }

    #[tokio::test]
    async fn the_number_of_dashboards_is_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Dashboards::open(tmp.path()).unwrap();
        for i in 0..MAX_DASHBOARDS {
            let d = validate(&format!("d{i}"), input(json!({"name": "n"})), 1).unwrap();
            store.put(d).await.unwrap();
        }
        let extra = validate("extra", input(json!({"name": "n"})), 1).unwrap();
        assert_eq!(
            store.put(extra).await.unwrap_err().kind,
            ErrorKind::LimitExceeded
        );
        // Replacing one still works at the cap.
        let again = validate("d0", input(json!({"name": "renamed"})), 2).unwrap();
        assert_eq!(store.put(again).await.unwrap().name, "renamed");
        assert_eq!(store.list().await.len(), MAX_DASHBOARDS);
    }

    #[test]
    fn a_corrupt_file_stops_the_open() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("console")).unwrap();
        std::fs::write(tmp.path().join("console/dashboards.json"), b"{nope").unwrap();
        assert!(Dashboards::open(tmp.path()).is_err());
    }
}
