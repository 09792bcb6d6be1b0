//! [`FileCatalog`]: the catalog as JSON files in the data dir, with an in-memory copy for reads.
//!
//! Layout under the catalog directory (`DATA_DIR/catalog/`), one file per entity, every file in
//! Glue's JSON shape:
//!
//! ```text
//! databases/<db>/database.json
//! databases/<db>/tables/<table>/versions/<n>.json        one file per kept version
//! databases/<db>/tables/<table>/partitions/<values>.json one file per partition
//! trash/<uuid>/                                           deleted databases/tables, purged at open
//! ```
//!
//! `<db>`, `<table>` and `<values>` are [`fs_key`]s of the names (bytes outside `[a-z0-9_-]`
//! percent-encoded, long keys shortened with a stable hash); the files themselves hold the real
//! names.
//!
//! Invariants:
//! - Every file is written atomically: a temp file (`.`-prefixed) in the same folder is written,
//!   fsync'd, renamed over the target, and the folder fsync'd; new folders are fsync'd with their
//!   parents. A crash leaves either the old or the new file, never a torn one.
//! - A database exists iff its `database.json` exists; a table exists iff it has at least one
//!   version file; its current version is the highest. Folders without those (a crash during a
//!   create) are removed at open, as are temp files and the trash.
//! - Deleting a database or table renames its folder into `trash/` (one atomic step) before
//!   removing it, so a crash never leaves a half-deleted entity.
//! - Mutations are serialised by one async writer lock and reach the disk (on a blocking thread)
//!   before the in-memory copy changes; reads only take the in-memory lock, never wait on I/O.
//! - A file that exists but does not parse makes [`FileCatalog::open`] fail rather than silently
//!   dropping catalog entries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Database, Partition, Table};
use crate::store::{
    self, CatalogStore, PartitionErrors, PartitionFilter, UpdateTableOptions, database_exists,
    database_not_found, normalize_name, partition_exists, partition_not_found, prepare_database,
    prepare_partition, prepare_table, table_exists, table_not_found, version_not_found,
};
use crate::{CatalogError, Result, now_epoch_seconds};

/// Longest file name key before it is shortened with a hash.
const MAX_KEY: usize = 128;

/// The durable, single-node catalog store.
pub struct FileCatalog {
    root: PathBuf,
    state: RwLock<State>,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for FileCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCatalog")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    dbs: BTreeMap<String, DbState>,
}

struct DbState {
    db: Database,
    tables: BTreeMap<String, TableState>,
}

struct TableState {
    /// Never empty; the last entry is the current version.
    versions: BTreeMap<u64, Table>,
    partitions: BTreeMap<Vec<String>, Partition>,
}

impl TableState {
    fn current(&self) -> &Table {
        self.versions
            .values()
            .next_back()
            .expect("a table has at least one version")
    }
    fn current_version(&self) -> u64 {
        self.versions.keys().next_back().copied().unwrap_or(0)
    }
}

impl State {
    fn db(&self, name: &str) -> Result<&DbState> {
        self.dbs.get(name).ok_or_else(|| database_not_found(name))
    }
    fn table(&self, db: &str, name: &str) -> Result<&TableState> {
        self.db(db)?
            .tables
            .get(name)
            .ok_or_else(|| table_not_found(name))
    }
    fn table_mut(&mut self, db: &str, name: &str) -> Result<&mut TableState> {
        self.dbs
            .get_mut(db)
            .ok_or_else(|| database_not_found(db))?
            .tables
            .get_mut(name)
            .ok_or_else(|| table_not_found(name))
    }
}

/// The file-name key of a name: `[a-z0-9_-]` kept, every other byte as `%XX`, shortened to
/// 128 bytes with a stable hash when longer. Never empty for a non-empty name, never
/// starts with `.`.
pub fn fs_key(name: &str) -> String {
    shorten(encode(name), &[name])
}

/// The file-name key of a partition's values (each encoded, joined with `,`).
pub fn partition_key(values: &[String]) -> String {
    let joined = values
        .iter()
        .map(|v| encode(v))
        .collect::<Vec<_>>()
        .join(",");
    let parts: Vec<&str> = values.iter().map(String::as_str).collect();
    shorten(joined, &parts)
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn shorten(key: String, parts: &[&str]) -> String {
    if key.len() <= MAX_KEY {
        return key;
    }
    // The key is ASCII, so any byte index is a char boundary.
    format!("{}~{:016x}", &key[..MAX_KEY - 20], store::fnv1a64(parts))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::io(path.display(), e)
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, folder fsync).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes)?;
    sync_dir(parent(path))
}

/// Like [`write_atomic`] without the folder fsync (the caller syncs the folder once per batch).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let tmp = parent(path).join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io_err(path, e))?;
    write_atomic(path, &bytes)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io_err(path, format!("corrupt catalog file: {e}")))
}

/// Runs blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CatalogError::Io(format!("catalog I/O task failed: {e}")))?
}

/// Entries of a folder (none if it does not exist).
fn entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io_err(dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir, e)),
    }
}

fn is_temp(entry: &fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with('.')
}

fn remove_all(path: &Path) -> Result<()> {
    let r = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

impl FileCatalog {
    /// Opens (creating if needed) the catalog stored in `dir` — the catalog folder itself,
    /// normally `DATA_DIR/catalog` (see [`FileCatalog::open_in_data_dir`]). Loads every entity
    /// into memory, cleaning up what an interrupted write or delete left behind.
    pub fn open(dir: &Path) -> Result<Self> {
        let root = dir.to_path_buf();
        for sub in ["databases", "trash"] {
            let d = root.join(sub);
            if !d.is_dir() {
                fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
                sync_dir(&root)?;
            }
        }
        let trash = root.join("trash");
        for entry in entries(&trash)? {
            remove_all(&entry.path())?;
        }
        let state = load(&root)?;
        let (dbs, tables) = (
            state.dbs.len(),
            state.dbs.values().map(|d| d.tables.len()).sum::<usize>(),
        );
        tracing::info!(dir = %root.display(), dbs, tables, "catalog loaded");
        Ok(Self {
            root,
            state: RwLock::new(state),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// Opens the catalog in `data_dir/catalog`.
    pub fn open_in_data_dir(data_dir: &Path) -> Result<Self> {
        Self::open(&data_dir.join("catalog"))
    }

    /// The catalog folder.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn db_dir(&self, db: &str) -> PathBuf {
        self.root.join("databases").join(fs_key(db))
    }

    fn table_dir(&self, db: &str, table: &str) -> PathBuf {
        self.db_dir(db).join("tables").join(fs_key(table))
    }

    /// Creates `dir` (and missing parents up to the root), fsyncing each new folder's parent.
    fn mkdirs(root: &Path, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut d = dir;
        while d != root {
            sync_dir(d)?;
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        sync_dir(root)
    }

    /// Moves `dir` into the trash atomically, then removes it.
    fn trash(root: &Path, dir: &Path) -> Result<()> {
        let target = root
            .join("trash")
            .join(uuid::Uuid::new_v4().simple().to_string());
        fs::rename(dir, &target).map_err(|e| io_err(dir, e))?;
        sync_dir(parent(dir))?;
        sync_dir(&root.join("trash"))?;
        if let Err(e) = fs::remove_dir_all(&target) {
            tracing::warn!(path = %target.display(), error = %e, "could not empty the catalog trash; it is emptied at the next start");
        }
        Ok(())
    }

    /// Writes partitions into `dir` (one file each, one folder fsync); per-partition results.
    fn write_partitions(
        root: PathBuf,
        dir: PathBuf,
        parts: Vec<Partition>,
    ) -> Result<Vec<(Partition, Result<()>)>> {
        Self::mkdirs(&root, &dir)?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            let path = dir.join(format!("{}.json", partition_key(&p.values)));
            let r = serde_json::to_vec_pretty(&p)
                .map_err(|e| io_err(&path, e))
                .and_then(|bytes| write_file(&path, &bytes));
            out.push((p, r));
        }
        sync_dir(&dir)?;
        Ok(out)
    }

    fn resolve(db: &str, table: &str) -> Result<(String, String)> {
        Ok((
            normalize_name(db, "databaseName")?,
            normalize_name(table, "tableName")?,
        ))
    }
}

/// Loads the whole catalog from `root`, removing leftovers of interrupted writes.
fn load(root: &Path) -> Result<State> {
    let mut state = State::default();
    for db_entry in entries(&root.join("databases"))? {
        let db_path = db_entry.path();
        if is_temp(&db_entry) {
            remove_all(&db_path)?;
            continue;
        }
        if !db_path.is_dir() {
            tracing::warn!(path = %db_path.display(), "ignoring an unexpected file in the catalog");
            continue;
        }
        let db_file = db_path.join("database.json");
        if !db_file.is_file() {
            tracing::warn!(path = %db_path.display(), "removing an incomplete catalog database folder");
            remove_all(&db_path)?;
            continue;
        }
        let db: Database = read_json(&db_file)?;
        let mut tables = BTreeMap::new();
        for t_entry in entries(&db_path.join("tables"))? {
            let t_path = t_entry.path();
            if is_temp(&t_entry) {
                remove_all(&t_path)?;
                continue;
            }
            if !t_path.is_dir() {
                tracing::warn!(path = %t_path.display(), "ignoring an unexpected file in the catalog");
                continue;
            }
            let mut versions = BTreeMap::new();
            for v_entry in entries(&t_path.join("versions"))? {
                let v_path = v_entry.path();
                if is_temp(&v_entry) {
                    remove_all(&v_path)?;
                    continue;
                }
                let name = v_entry.file_name().to_string_lossy().into_owned();
                let Some(n) = name
                    .strip_suffix(".json")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    tracing::warn!(path = %v_path.display(), "ignoring an unexpected file in the catalog");
                    continue;
                };
                let table: Table = read_json(&v_path)?;
                versions.insert(n, table);
            }
            if versions.is_empty() {
                tracing::warn!(path = %t_path.display(), "removing an incomplete catalog table folder");
                remove_all(&t_path)?;
                continue;
            }
            let mut partitions = BTreeMap::new();
            for p_entry in entries(&t_path.join("partitions"))? {
                let p_path = p_entry.path();
                if is_temp(&p_entry) {
                    remove_all(&p_path)?;
                    continue;
                }
                if p_path.extension().is_none_or(|e| e != "json") {
                    tracing::warn!(path = %p_path.display(), "ignoring an unexpected file in the catalog");
                    continue;
                }
                let p: Partition = read_json(&p_path)?;
                partitions.insert(p.values.clone(), p);
            }
            let ts = TableState {
                versions,
                partitions,
            };
            tables.insert(ts.current().name.clone(), ts);
        }
        state.dbs.insert(db.name.clone(), DbState { db, tables });
    }
    Ok(state)
}

#[async_trait]
impl CatalogStore for FileCatalog {
    async fn create_database(&self, db: Database) -> Result<()> {
        let mut db = prepare_database(db)?;
        let _w = self.writer.lock().await;
        if self.read().dbs.contains_key(&db.name) {
            return Err(database_exists());
        }
        db.create_time = Some(now_epoch_seconds());
        let dir = self.db_dir(&db.name);
        let root = self.root.clone();
        let stored = db.clone();
        blocking(move || {
            Self::mkdirs(&root, &dir)?;
            write_json(&dir.join("database.json"), &stored)
        })
        .await?;
        self.write().dbs.insert(
            db.name.clone(),
            DbState {
                db,
                tables: BTreeMap::new(),
            },
        );
        Ok(())
    }

    async fn get_database(&self, name: &str) -> Result<Database> {
        let name = normalize_name(name, "name")?;
        Ok(self.read().db(&name)?.db.clone())
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        Ok(self.read().dbs.values().map(|d| d.db.clone()).collect())
    }

    async fn update_database(&self, name: &str, db: Database) -> Result<()> {
        let name = normalize_name(name, "name")?;
        let mut db = prepare_database(db)?;
        if db.name != name {
            return Err(CatalogError::InvalidInput(
                "Renaming a database is not supported.".to_string(),
            ));
        }
        let _w = self.writer.lock().await;
        db.create_time = self.read().db(&name)?.db.create_time;
        let path = self.db_dir(&name).join("database.json");
        let stored = db.clone();
        blocking(move || write_json(&path, &stored)).await?;
        if let Some(d) = self.write().dbs.get_mut(&name) {
            d.db = db;
        }
        Ok(())
    }

    async fn delete_database(&self, name: &str) -> Result<()> {
        let name = normalize_name(name, "name")?;
        let _w = self.writer.lock().await;
        self.read().db(&name)?;
        let (root, dir) = (self.root.clone(), self.db_dir(&name));
        blocking(move || Self::trash(&root, &dir)).await?;
        self.write().dbs.remove(&name);
        Ok(())
    }

    async fn create_table(&self, db: &str, table: Table) -> Result<()> {
        let db = normalize_name(db, "databaseName")?;
        let mut table = prepare_table(&db, table)?;
        let _w = self.writer.lock().await;
        if self.read().db(&db)?.tables.contains_key(&table.name) {
            return Err(table_exists());
        }
        let now = now_epoch_seconds();
        table.create_time = Some(now);
        table.update_time = Some(now);
        table.version_id = Some("0".to_string());
        let dir = self.table_dir(&db, &table.name);
        let root = self.root.clone();
        let stored = table.clone();
        blocking(move || {
            // A leftover folder (no version file, so no table) must not leak old partitions.
            if dir.exists() {
                remove_all(&dir)?;
            }
            let versions = dir.join("versions");
            Self::mkdirs(&root, &versions)?;
            write_json(&versions.join("0.json"), &stored)
        })
        .await?;
        let mut state = self.write();
        if let Some(d) = state.dbs.get_mut(&db) {
            d.tables.insert(
                table.name.clone(),
                TableState {
                    versions: BTreeMap::from([(0, table)]),
                    partitions: BTreeMap::new(),
                },
            );
        }
        Ok(())
    }

    async fn get_table(&self, db: &str, name: &str) -> Result<Table> {
        let (db, name) = Self::resolve(db, name)?;
        Ok(self.read().table(&db, &name)?.current().clone())
    }

    async fn list_tables(&self, db: &str) -> Result<Vec<Table>> {
        let db = normalize_name(db, "databaseName")?;
        Ok(self
            .read()
            .db(&db)?
            .tables
            .values()
            .map(|t| t.current().clone())
            .collect())
    }

    async fn update_table_with(
        &self,
        db: &str,
        table: Table,
        options: UpdateTableOptions,
    ) -> Result<Table> {
        let db = normalize_name(db, "databaseName")?;
        let mut table = prepare_table(&db, table)?;
        let _w = self.writer.lock().await;
        let (prev, create_time) = {
            let state = self.read();
            let ts = state.table(&db, &table.name)?;
            let cur = ts.current();
            let prev = ts.current_version();
            if let Some(expected) = &options.expected_version
                && expected.trim() != prev.to_string()
            {
                return Err(store::version_mismatch(
                    &table.name,
                    expected,
                    &prev.to_string(),
                ));
            }
            (prev, cur.create_time)
        };
        let next = prev + 1;
        table.create_time = create_time;
        table.update_time = Some(now_epoch_seconds());
        table.version_id = Some(next.to_string());
        let versions = self.table_dir(&db, &table.name).join("versions");
        let stored = table.clone();
        let skip_archive = options.skip_archive;
        blocking(move || {
            write_file(
                &versions.join(format!("{next}.json")),
                &serde_json::to_vec_pretty(&stored).map_err(|e| io_err(&versions, e))?,
            )?;
            if skip_archive {
                remove_all(&versions.join(format!("{prev}.json")))?;
            }
            sync_dir(&versions)
        })
        .await?;
        let mut state = self.write();
        let ts = state.table_mut(&db, &table.name)?;
        if skip_archive {
            ts.versions.remove(&prev);
        }
        ts.versions.insert(next, table.clone());
        Ok(table)
    }

    async fn delete_table(&self, db: &str, name: &str) -> Result<()> {
        let (db, name) = Self::resolve(db, name)?;
        let _w = self.writer.lock().await;
        self.read().table(&db, &name)?;
        let (root, dir) = (self.root.clone(), self.table_dir(&db, &name));
        blocking(move || Self::trash(&root, &dir)).await?;
        if let Some(d) = self.write().dbs.get_mut(&db) {
            d.tables.remove(&name);
        }
        Ok(())
    }

    async fn get_table_version(&self, db: &str, name: &str, version: &str) -> Result<Table> {
        let (db, name) = Self::resolve(db, name)?;
        let state = self.read();
        let ts = state.table(&db, &name)?;
        let n: u64 = version.trim().parse().map_err(|_| {
            CatalogError::InvalidInput(format!("Invalid VersionId '{version}': not a number."))
        })?;
        ts.versions
            .get(&n)
            .cloned()
            .ok_or_else(|| version_not_found(&name, version))
    }

    async fn list_table_versions(&self, db: &str, name: &str) -> Result<Vec<Table>> {
        let (db, name) = Self::resolve(db, name)?;
        Ok(self
            .read()
            .table(&db, &name)?
            .versions
            .values()
            .cloned()
            .collect())
    }

    async fn create_partitions(
        &self,
        db: &str,
        table: &str,
        parts: Vec<Partition>,
    ) -> Result<PartitionErrors> {
        let (db, table) = Self::resolve(db, table)?;
        let _w = self.writer.lock().await;
        let mut errors = Vec::new();
        let mut to_write = Vec::new();
        {
            let state = self.read();
            let ts = state.table(&db, &table)?;
            let now = now_epoch_seconds();
            let mut batch = std::collections::HashSet::new();
            for p in parts {
                let values = p.values.clone();
                match prepare_partition(&db, ts.current(), p) {
                    Err(e) => errors.push((values, e)),
                    Ok(_)
                        if ts.partitions.contains_key(&values) || !batch.insert(values.clone()) =>
                    {
                        errors.push((values, partition_exists()));
                    }
                    Ok(mut p) => {
                        p.creation_time = Some(now);
                        to_write.push(p);
                    }
                }
            }
        }
        if to_write.is_empty() {
            return Ok(errors);
        }
        let (root, dir) = (
            self.root.clone(),
            self.table_dir(&db, &table).join("partitions"),
        );
        let written = blocking(move || Self::write_partitions(root, dir, to_write)).await?;
        let mut state = self.write();
        let ts = state.table_mut(&db, &table)?;
        for (p, r) in written {
            match r {
                Ok(()) => {
                    ts.partitions.insert(p.values.clone(), p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing a catalog partition failed");
                    errors.push((p.values, e));
                }
            }
        }
        Ok(errors)
    }

    async fn get_partition(&self, db: &str, table: &str, values: &[String]) -> Result<Partition> {
        let (db, table) = Self::resolve(db, table)?;
        let state = self.read();
        let ts = state.table(&db, &table)?;
        store::check_values(ts.current(), values)?;
        ts.partitions
            .get(values)
            .cloned()
            .ok_or_else(partition_not_found)
    }

    async fn list_partitions(&self, db: &str, table: &str) -> Result<Vec<Partition>> {
        let (db, table) = Self::resolve(db, table)?;
        Ok(self
            .read()
            .table(&db, &table)?
            .partitions
            .values()
            .cloned()
            .collect())
    }

    async fn scan_partitions(
        &self,
        db: &str,
        table: &str,
        after: Option<&[String]>,
        limit: usize,
        filter: PartitionFilter<'_>,
    ) -> Result<Vec<Partition>> {
        use std::ops::Bound;
        let (db, table) = Self::resolve(db, table)?;
        let state = self.read();
        let parts = &state.table(&db, &table)?.partitions;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(parts
            .range((lower, Bound::Unbounded))
            .map(|(_, p)| p)
            .filter(|p| filter(p))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update_partition(
        &self,
        db: &str,
        table: &str,
        values: &[String],
        part: Partition,
    ) -> Result<()> {
        let (db, table) = Self::resolve(db, table)?;
        let _w = self.writer.lock().await;
        let mut part = {
            let state = self.read();
            let ts = state.table(&db, &table)?;
            let old = ts.partitions.get(values).ok_or_else(partition_not_found)?;
            let mut part = prepare_partition(&db, ts.current(), part)?;
            if part.values != values && ts.partitions.contains_key(&part.values) {
                return Err(partition_exists());
            }
            part.creation_time = old.creation_time;
            part
        };
        part.creation_time = part.creation_time.or(Some(now_epoch_seconds()));
        let dir = self.table_dir(&db, &table).join("partitions");
        let old_path = dir.join(format!("{}.json", partition_key(values)));
        let new_path = dir.join(format!("{}.json", partition_key(&part.values)));
        let stored = part.clone();
        blocking(move || {
            write_file(
                &new_path,
                &serde_json::to_vec_pretty(&stored).map_err(|e| io_err(&new_path, e))?,
            )?;
            if old_path != new_path {
                remove_all(&old_path)?;
            }
            sync_dir(&dir)
        })
        .await?;
        let mut state = self.write();
        let ts = state.table_mut(&db, &table)?;
        ts.partitions.remove(values);
        ts.partitions.insert(part.values.clone(), part);
        Ok(())
    }

    async fn delete_partitions(
        &self,
        db: &str,
        table: &str,
        values: Vec<Vec<String>>,
    ) -> Result<PartitionErrors> {
        let (db, table) = Self::resolve(db, table)?;
        let _w = self.writer.lock().await;
        let mut errors = Vec::new();
        let mut to_delete = Vec::new();
        {
            let state = self.read();
            let ts = state.table(&db, &table)?;
            for v in values {
                if ts.partitions.contains_key(&v) && !to_delete.contains(&v) {
                    to_delete.push(v);
                } else {
                    errors.push((v, partition_not_found()));
                }
            }
        }
        if to_delete.is_empty() {
            return Ok(errors);
        }
        let dir = self.table_dir(&db, &table).join("partitions");
        let keys: Vec<String> = to_delete.iter().map(|v| partition_key(v)).collect();
        let results = blocking(move || {
            let results: Vec<Result<()>> = keys
                .iter()
                .map(|k| remove_all(&dir.join(format!("{k}.json"))))
                .collect();
            sync_dir(&dir)?;
            Ok(results)
        })
        .await?;
        let mut state = self.write();
        let ts = state.table_mut(&db, &table)?;
        for (v, r) in to_delete.into_iter().zip(results) {
            match r {
                Ok(()) => {
                    ts.partitions.remove(&v);
                }
                Err(e) => errors.push((v, e)),
            }
        }
        Ok(errors)
    }

    async fn ensure_partition(&self, db: &str, table: &str, part: Partition) -> Result<()> {
        let (dbn, tn) = Self::resolve(db, table)?;
        if self
            .read()
            .table(&dbn, &tn)?
            .partitions
            .contains_key(&part.values)
        {
            return Ok(());
        }
        let errors = self.create_partitions(db, table, vec![part]).await?;
        match errors.into_iter().next() {
            None => Ok(()),
            Some((_, CatalogError::AlreadyExists(_))) => Ok(()),
            Some((_, e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Column;

    #[test]
    fn keys_are_safe_file_names() {
        assert_eq!(fs_key("sales_db-1"), "sales_db-1");
        assert_eq!(fs_key("a.b/c"), "a%2Eb%2Fc");
        assert_eq!(fs_key(".."), "%2E%2E");
        assert_eq!(fs_key("Ab"), "%41b");
        let long = fs_key(&"é".repeat(200));
        assert!(long.len() <= MAX_KEY);
        assert_ne!(long, fs_key(&"é".repeat(201)));
        assert_eq!(partition_key(&["2024".into(), "a,b".into()]), "2024,a%2Cb");
        assert_ne!(
            partition_key(&["a".into(), "b".into()]),
            partition_key(&["a,b".into()])
        );
    }

    fn table() -> Table {
        Table::new(
            "Events",
            vec![Column::new("id", "bigint"), Column::new("msg", "string")],
            vec![Column::new("year", "int"), Column::new("month", "string")],
            Some("s3://bucket/events/".into()),
        )
    }

    fn part(y: &str, m: &str) -> Partition {
        Partition::new(
            vec![y.into(), m.into()],
            Some(format!("s3://bucket/events/year={y}/month={m}/")),
        )
    }

    #[tokio::test]
    async fn databases_tables_and_partitions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = FileCatalog::open_in_data_dir(dir.path()).unwrap();
            c.create_database(Database::new("Sales")).await.unwrap();
            c.create_database(Database::new("other")).await.unwrap();
            c.create_table("SALES", table()).await.unwrap();
            let errs = c
                .create_partitions(
                    "sales",
                    "events",
                    vec![part("2024", "01"), part("2024", "02")],
                )
                .await
                .unwrap();
            assert!(errs.is_empty());
            let mut t = table();
            t.description = Some("v1".into());
            let v1 = c.update_table("sales", t).await.unwrap();
            assert_eq!(v1.version_id.as_deref(), Some("1"));
            c.delete_database("other").await.unwrap();
        }
        let c = FileCatalog::open(&dir.path().join("catalog")).unwrap();
        let names: Vec<_> = c
            .list_databases()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["sales"]);
        let db = c.get_database("sales").await.unwrap();
        assert!(db.create_time.is_some());
        assert_eq!(db.catalog_id.as_deref(), Some(crate::CATALOG_ID));
        let t = c.get_table("sales", "EVENTS").await.unwrap();
        assert_eq!(t.version_id.as_deref(), Some("1"));
        assert_eq!(t.description.as_deref(), Some("v1"));
        assert_eq!(t.database_name.as_deref(), Some("sales"));
        let v0 = c.get_table_version("sales", "events", "0").await.unwrap();
        assert_eq!(v0.description, None);
        assert_eq!(v0.create_time, t.create_time);
        let parts = c.list_partitions("sales", "events").await.unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].values, ["2024", "01"]);
        assert_eq!(parts[0].table_name.as_deref(), Some("events"));
        assert!(parts[0].creation_time.is_some());
        // The next version continues after a restart.
        let v2 = c.update_table("sales", table()).await.unwrap();
        assert_eq!(v2.version_id.as_deref(), Some("2"));
        assert_eq!(
            c.list_table_versions("sales", "events")
                .await
                .unwrap()
                .len(),
            3
        );
        // Nothing but the expected folders remain (trash emptied).
        assert_eq!(entries(&dir.path().join("catalog/trash")).unwrap().len(), 0);
        assert_eq!(
            entries(&dir.path().join("catalog/databases"))
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn errors_are_glue_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCatalog::open(dir.path()).unwrap();
        assert_eq!(
            c.get_database("nope").await.unwrap_err(),
            CatalogError::EntityNotFound("Database nope not found.".into())
        );
        c.create_database(Database::new("db")).await.unwrap();
        assert_eq!(
            c.create_database(Database::new("DB")).await.unwrap_err(),
            CatalogError::AlreadyExists("Database already exists.".into())
        );
        assert!(matches!(
            c.create_table("nope", table()).await,
            Err(CatalogError::EntityNotFound(m)) if m == "Database nope not found."
        ));
        c.create_table("db", table()).await.unwrap();
        assert!(matches!(
            c.create_table("db", table()).await,
            Err(CatalogError::AlreadyExists(_))
        ));
        assert_eq!(
            c.get_table("db", "missing").await.unwrap_err(),
            CatalogError::EntityNotFound("Table missing not found.".into())
        );
        assert!(matches!(
            c.update_table("db", Table::new("missing", vec![], vec![], None))
                .await,
            Err(CatalogError::EntityNotFound(_))
        ));
        assert!(matches!(
            c.delete_table("db", "missing").await,
            Err(CatalogError::EntityNotFound(_))
        ));
        assert!(matches!(
            c.delete_database("missing").await,
            Err(CatalogError::EntityNotFound(_))
        ));
        assert!(matches!(
            c.get_table_version("db", "events", "7").await,
            Err(CatalogError::EntityNotFound(_))
        ));
        assert!(matches!(
            c.get_table_version("db", "events", "x").await,
            Err(CatalogError::InvalidInput(_))
        ));
        let mut bad = table();
        bad.name = "bad".into();
        bad.storage_descriptor.as_mut().unwrap().columns[0].r#type = "strin".into();
        assert!(matches!(
            c.create_table("db", bad).await,
            Err(CatalogError::InvalidInput(_))
        ));
        assert!(matches!(
            c.get_partition("db", "events", &["2024".into(), "01".into()]).await,
            Err(CatalogError::EntityNotFound(m)) if m == "Cannot find partition."
        ));
        assert!(matches!(
            c.create_partitions("db", "missing", vec![part("1", "2")])
                .await,
            Err(CatalogError::EntityNotFound(_))
        ));
        // A failed create left nothing behind.
        assert_eq!(c.list_tables("db").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn versions_are_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCatalog::open(dir.path()).unwrap();
        c.create_database(Database::new("db")).await.unwrap();
        c.create_table("db", table()).await.unwrap();
        let v0 = c.get_table("db", "events").await.unwrap();
        assert_eq!(v0.version_id.as_deref(), Some("0"));
        assert_eq!(v0.create_time, v0.update_time);
        for i in 1..=3u64 {
            let mut t = table();
            t.parameters.insert("rev".into(), i.to_string());
            let v = c.update_table("db", t).await.unwrap();
            assert_eq!(v.version(), i);
            assert_eq!(v.create_time, v0.create_time);
        }
        let versions = c.list_table_versions("db", "events").await.unwrap();
        let ids: Vec<_> = versions.iter().map(Table::version).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(
            c.get_table_version("db", "events", "2")
                .await
                .unwrap()
                .parameters["rev"],
            "2"
        );
        // Optimistic concurrency on VersionId.
        let stale = UpdateTableOptions {
            expected_version: Some("1".into()),
            skip_archive: false,
        };
        assert!(matches!(
            c.update_table_with("db", table(), stale).await,
            Err(CatalogError::ConcurrentModification(_))
        ));
        let current = UpdateTableOptions {
            expected_version: Some("3".into()),
            skip_archive: true,
        };
        let v4 = c.update_table_with("db", table(), current).await.unwrap();
        assert_eq!(v4.version(), 4);
        let ids: Vec<_> = c
            .list_table_versions("db", "events")
            .await
            .unwrap()
            .iter()
            .map(Table::version)
            .collect();
        assert_eq!(ids, [0, 1, 2, 4]);
        // Delete and re-create starts over at version 0 with no partitions.
        c.create_partitions("db", "events", vec![part("1", "1")])
            .await
            .unwrap();
        c.delete_table("db", "events").await.unwrap();
        c.create_table("db", table()).await.unwrap();
        assert_eq!(c.get_table("db", "events").await.unwrap().version(), 0);
        assert!(c.list_partitions("db", "events").await.unwrap().is_empty());
        drop(c);
        let c = FileCatalog::open(dir.path()).unwrap();
        assert_eq!(
            c.list_table_versions("db", "events").await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn partitions() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCatalog::open(dir.path()).unwrap();
        c.create_database(Database::new("db")).await.unwrap();
        c.create_table("db", table()).await.unwrap();
        let errs = c
            .create_partitions(
                "db",
                "events",
                vec![
                    part("2024", "01"),
                    part("2024", "01"),
                    Partition::new(vec!["2024".into()], None),
                    part("2023", "12"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].0, ["2024", "01"]);
        assert_eq!(errs[0].1.error_code(), "AlreadyExistsException");
        assert_eq!(errs[1].1.error_code(), "InvalidInputException");
        let errs = c
            .create_partitions("db", "events", vec![part("2024", "01")])
            .await
            .unwrap();
        assert_eq!(errs[0].1, partition_exists());

        // ensure_partition is idempotent and does not overwrite.
        c.ensure_partition("db", "events", part("2024", "02"))
            .await
            .unwrap();
        let mut other = part("2024", "02");
        other.parameters.insert("x".into(), "y".into());
        c.ensure_partition("DB", "Events", other).await.unwrap();
        let p = c
            .get_partition("db", "events", &["2024".into(), "02".into()])
            .await
            .unwrap();
        assert!(p.parameters.is_empty());
        assert_eq!(p.location(), Some("s3://bucket/events/year=2024/month=02/"));
        assert!(matches!(
            c.ensure_partition("db", "events", Partition::new(vec![], None))
                .await,
            Err(CatalogError::InvalidInput(_))
        ));

        let all: Vec<_> = c
            .list_partitions("db", "events")
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.values.join("/"))
            .collect();
        assert_eq!(all, ["2023/12", "2024/01", "2024/02"]);

        let after = ["2023".to_string(), "12".to_string()];
        let page = c
            .scan_partitions("db", "events", Some(&after), 1, &|_| true)
            .await
            .unwrap();
        assert_eq!(page[0].values, ["2024", "01"]);
        let only_02 = c
            .scan_partitions("db", "events", None, 10, &|p| p.values[1] == "02")
            .await
            .unwrap();
        assert_eq!(only_02.len(), 1);

        // Update (move) a partition, keeping its creation time.
        let created = c
            .get_partition("db", "events", &["2023".into(), "12".into()])
            .await
            .unwrap()
            .creation_time;
        c.update_partition(
            "db",
            "events",
            &["2023".into(), "12".into()],
            part("2023", "11"),
        )
        .await
        .unwrap();
        let moved = c
            .get_partition("db", "events", &["2023".into(), "11".into()])
            .await
            .unwrap();
        assert_eq!(moved.creation_time, created);
        assert!(
            c.update_partition(
                "db",
                "events",
                &["2023".into(), "11".into()],
                part("2024", "01")
            )
            .await
            .is_err()
        );

        let errs = c
            .delete_partitions(
                "db",
                "events",
                vec![
                    vec!["2024".into(), "01".into()],
                    vec!["1999".into(), "01".into()],
                ],
            )
            .await
            .unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, ["1999", "01"]);
        assert_eq!(errs[0].1.error_code(), "EntityNotFoundException");
        drop(c);

        let c = FileCatalog::open(dir.path()).unwrap();
        let all: Vec<_> = c
            .list_partitions("db", "events")
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.values.join("/"))
            .collect();
        assert_eq!(all, ["2023/11", "2024/02"]);
    }

    #[tokio::test]
    async fn open_cleans_up_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = FileCatalog::open(dir.path()).unwrap();
            c.create_database(Database::new("db")).await.unwrap();
            c.create_table("db", table()).await.unwrap();
        }
        let dbs = dir.path().join("databases");
        // A database folder without database.json, a table folder without versions, temp files
        // and a trash entry: what a crash mid-write or mid-delete can leave.
        fs::create_dir_all(dbs.join("half")).unwrap();
        fs::create_dir_all(dbs.join("db/tables/half/partitions")).unwrap();
        fs::write(dbs.join("db/tables/events/versions/.1.json.tmp-x"), b"{").unwrap();
        fs::write(dbs.join("db/.database.json.tmp-y"), b"{").unwrap();
        fs::create_dir_all(dir.path().join("trash/abc/tables")).unwrap();
        let c = FileCatalog::open(dir.path()).unwrap();
        assert_eq!(c.list_databases().await.unwrap().len(), 1);
        assert_eq!(c.list_tables("db").await.unwrap().len(), 1);
        assert!(!dbs.join("half").exists());
        assert!(!dbs.join("db/tables/half").exists());
        assert!(!dbs.join("db/tables/events/versions/.1.json.tmp-x").exists());
        assert!(!dir.path().join("trash/abc").exists());
        assert_eq!(c.get_table("db", "events").await.unwrap().version(), 0);

        // A corrupt file refuses to open instead of dropping the table.
        fs::write(dbs.join("db/tables/events/versions/0.json"), b"{oops").unwrap();
        assert!(matches!(
            FileCatalog::open(dir.path()),
            Err(CatalogError::Io(m)) if m.contains("corrupt")
        ));
    }

    #[tokio::test]
    async fn odd_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCatalog::open(dir.path()).unwrap();
        let db = "weird/..db é";
        c.create_database(Database::new(db)).await.unwrap();
        let mut t = table();
        t.name = "x".repeat(255);
        c.create_table(db, t).await.unwrap();
        let long_value = "v/".repeat(500);
        c.create_partitions(db, &"x".repeat(255), vec![part(&long_value, "..")])
            .await
            .unwrap();
        drop(c);
        let c = FileCatalog::open(dir.path()).unwrap();
        assert_eq!(c.list_databases().await.unwrap()[0].name, db);
        let p = c.list_partitions(db, &"x".repeat(255)).await.unwrap();
        assert_eq!(p[0].values, [long_value.as_str(), ".."]);
    }
}
