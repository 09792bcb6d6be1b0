//! A running pump: JSON records in, result rows out, window state in between.
//!
//! [`Pump::push`] takes records in log order. Each record is decoded against the source's
//! columns (the OpenX JSON SerDe Firehose's format conversion uses: keys match columns
//! case-insensitively; a record that does not fit is *failed*, with Firehose's
//! `DataFormatConversion.*` code). Then, for a windowed query, each row is assigned to its
//! windows ([`crate::window`]) and its aggregate inputs are folded into that window's state:
//! a DataFusion [`GroupValues`] (the group keys) plus one DataFusion `GroupsAccumulator` per
//! aggregate — the very accumulators a batch `GROUP BY` uses, so results are those of batch
//! SQL over the same rows.
//!
//! # Invariants
//!
//! - **Per-record semantics.** Whether a row is late is decided against the watermark as it
//!   was just before that row (the watermark is the largest time seen minus the source's
//!   `WATERMARK` delay), so results do not depend on how records are batched.
//! - **Deterministic.** The same records in the same order give the same results, the same
//!   late records and the same state, whatever the batching; so replaying the log from a
//!   snapshot's position after a crash reproduces exactly what was lost.
//! - **Bounded state.** Only windows that have not fired hold state; a window's state is one
//!   entry per group (not per row).
//! - **Snapshots round-trip.** [`Pump::snapshot`] serialises every open window (group keys
//!   and accumulator states, Arrow IPC) and rebuilds the live state from those bytes, the
//!   same path [`Pump::restore`] takes after a restart.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::compute::take;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use datafusion::physical_plan::collect;
use lakehose_formats::convert::{ConversionConfig, InputSerde, OutputFormat, decode_counted};

use crate::plan::{
    Compiled, ReferenceTable, Stage, WindowedPlan, compile, output_schema, query_schema,
};
use crate::sql::{PumpDef, ROWTIME, TableDef};
use crate::window::{WindowKind, WindowSpec, fired};
use crate::{Error, Result};

/// One input record.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub data: &'a [u8],
    /// Arrival time, milliseconds since the Unix epoch.
    pub arrival_ms: i64,
}

/// A record that changed no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index in the records given to [`Pump::push`].
    pub index: usize,
    /// `Lakehose.LateRecord`, `Lakehose.MissingEventTime`, or Firehose's
    /// `DataFormatConversion.ParseError` / `DataFormatConversion.MalformedData`.
    pub code: String,
    pub message: String,
}

/// Code of a record whose windows had all fired when it arrived.
pub const LATE_RECORD: &str = "Lakehose.LateRecord";
/// Code of a record without a value in the window's time column.
pub const MISSING_EVENT_TIME: &str = "Lakehose.MissingEventTime";

/// What one [`Pump::push`] (or [`Pump::advance_to`]) produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Result rows, in emission order (windows in order of their end).
    pub rows: Vec<RecordBatch>,
    /// Records that changed no result: late, without event time, or not decodable.
    pub rejected: Vec<Rejected>,
}

impl Outcome {
    /// Number of result rows.
    pub fn row_count(&self) -> usize {
        self.rows.iter().map(|b| b.num_rows()).sum()
    }
}

/// Counters of one pump since it started (restored from snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PumpStats {
    pub input_records: u64,
    pub output_rows: u64,
    pub late_records: u64,
    pub failed_records: u64,
}

/// One window's state: group keys and accumulators.
struct WindowState {
    groups: Box<dyn GroupValues>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    ids: Vec<usize>,
}

impl WindowState {
    fn new(plan: &WindowedPlan) -> Result<Self> {
        let groups =
            new_group_values(Arc::clone(&plan.group_schema), &GroupOrdering::None).map_err(exec)?;
        let accumulators = plan
            .aggregates
            .iter()
            .map(|a| {
                if a.groups_accumulator_supported() {
                    a.create_groups_accumulator()
                } else {
                    let a = Arc::clone(a);
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                        a.create_accumulator()
                    })) as Box<dyn GroupsAccumulator>)
                }
            })
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(exec)?;
        Ok(WindowState {
            groups,
            accumulators,
            ids: Vec::new(),
        })
    }

    fn update(
        &mut self,
        keys: &[ArrayRef],
        arguments: &[Vec<ArrayRef>],
        filters: &[Option<ArrayRef>],
    ) -> Result<()> {
        self.groups.intern(keys, &mut self.ids).map_err(exec)?;
        let total = self.groups.len();
        for ((acc, args), filter) in self.accumulators.iter_mut().zip(arguments).zip(filters) {
            let filter = filter.as_ref().map(|f| f.as_boolean());
            acc.update_batch(args, &self.ids, filter, total)
                .map_err(exec)?;
        }
        Ok(())
    }

    /// The group keys and each accumulator's state; empties the window.
    fn take_state(&mut self) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>)> {
        let keys = self.groups.emit(EmitTo::All).map_err(exec)?;
        let states = self
            .accumulators
            .iter_mut()
            .map(|a| a.state(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()
            .map_err(exec)?;
        Ok((keys, states))
    }

    fn restore(plan: &WindowedPlan, keys: &[ArrayRef], states: &[Vec<ArrayRef>]) -> Result<Self> {
        let mut w = WindowState::new(plan)?;
        w.groups.intern(keys, &mut w.ids).map_err(exec)?;
        let total = w.groups.len();
        for (acc, state) in w.accumulators.iter_mut().zip(states) {
            acc.merge_batch(state, &w.ids, total).map_err(exec)?;
        }
        Ok(w)
    }

    /// The aggregate's output rows for this window.
    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns = self.groups.emit(EmitTo::All).map_err(exec)?;
        for acc in &mut self.accumulators {
            columns.push(acc.evaluate(EmitTo::All).map_err(exec)?);
        }
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map_err(|e| Error::Execution(e.to_string()))
    }
}

fn exec(e: datafusion::error::DataFusionError) -> Error {
    Error::Execution(e.strip_backtrace())
}

/// How a pump's time column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeSource {
    /// A declared TIMESTAMP column (event time).
    Event,
    /// The arrival time (`rowtime` or a `PROCTIME()` column).
    Processing,
}

/// One source of a pump: how its records are decoded and timed.
struct SourceInput {
    def: TableDef,
    /// The declared columns that come from the record (PROCTIME() ones excluded).
    record_schema: SchemaRef,
    conversion: ConversionConfig,
    time: TimeSource,
    /// The window's time column in this source (`rowtime` for processing time).
    time_column: String,
    delay_ms: i64,
    /// The largest time seen in this source.
    max_time: i64,
    /// The latest arrival time seen (the clock when the source last had a record).
    max_arrival: i64,
    /// `'watermark.idle-timeout'`: after this long without records, the source's event time is
    /// taken to advance with the clock.
    idle_timeout_ms: Option<i64>,
}

impl SourceInput {
    fn new(pump: &PumpDef, def: TableDef, window: Option<&WindowSpec>) -> Result<Self> {
        let time_column = window.map(|w| {
            pump.time_columns
                .get(&def.name)
                .cloned()
                .unwrap_or_else(|| w.time_column.clone())
        });
        let (time, delay_ms) = match &time_column {
            None => (TimeSource::Processing, 0),
            Some(c) if c == ROWTIME || def.proctime_columns.contains(c) => {
                (TimeSource::Processing, 0)
            }
            Some(c) => {
                match def.columns.iter().find(|f| f.name() == c) {
                    Some(f) if matches!(f.data_type(), DataType::Timestamp(..)) => {}
                    Some(f) => {
                        return Err(Error::Plan(format!(
                            "pump `{}`: the window's time column `{c}` is {}; it must be a TIMESTAMP",
                            pump.name,
                            f.data_type()
                        )));
                    }
                    None => {
                        return Err(Error::Plan(format!(
                            "pump `{}`: the window's time column `{c}` is not a column of `{}`",
                            pump.name, def.name
                        )));
                    }
                }
                let delay = match &def.watermark {
                    Some(wm) if &wm.column == c => wm.delay_ms,
                    _ => 0,
                };
                (TimeSource::Event, delay)
            }
        };
        let record_schema = Arc::new(Schema::new(
            def.columns
                .iter()
                .filter(|f| !def.proctime_columns.contains(f.name()))
                .cloned()
                .collect::<Vec<Field>>(),
        ));
        let input = match def.options.get("json.timestamp-format") {
            Some(format) => InputSerde::Hive {
                timestamp_formats: vec![format.clone()],
            },
            None => InputSerde::default(),
        };
        let conversion =
            ConversionConfig::new("analytics", &def.name, input, OutputFormat::default());
        let time_column = match time {
            TimeSource::Event => time_column.unwrap_or_default(),
            TimeSource::Processing => ROWTIME.to_string(),
        };
        let idle_timeout_ms = def
            .options
            .get(crate::sql::IDLE_TIMEOUT_OPTION)
            .and_then(|v| crate::sql::parse_duration_ms(v));
        Ok(SourceInput {
            def,
            record_schema,
            conversion,
            time,
            time_column,
            delay_ms,
            max_time: i64::MIN,
            max_arrival: i64::MIN,
            idle_timeout_ms,
        })
    }

    /// This source's contribution to the watermark at clock `now_ms`: its largest time minus
    /// its delay, plus, once it has been silent longer than its idle timeout, the time since.
    fn watermark_at(&self, now_ms: Option<i64>) -> i64 {
        let mut max = self.max_time;
        if let (Some(now), Some(timeout)) = (now_ms, self.idle_timeout_ms)
            && max != i64::MIN
            && self.max_arrival != i64::MIN
        {
            max = max.saturating_add((now - self.max_arrival - timeout).max(0));
        }
        max.saturating_sub(self.delay_ms)
    }
}

/// A continuous query over one source (or, for a window join, several).
pub struct Pump {
    def: PumpDef,
    /// The sources, in the order of [`PumpDef::sources`].
    inputs: Vec<SourceInput>,
    compiled: Compiled,
    task: Arc<TaskContext>,
    watermark: i64,
    /// Open windows by (end, start).
    windows: BTreeMap<(i64, i64), WindowState>,
    /// A window join's open windows: each source's rows (with window columns).
    joined: BTreeMap<(i64, i64), Vec<Vec<RecordBatch>>>,
    /// Open SESSION windows.
    sessions: Sessions,
    stats: PumpStats,
}

/// The open sessions of a SESSION pump, by `PARTITION BY` value (`None` without one).
#[derive(Default)]
struct Sessions {
    converter: Option<RowConverter>,
    by_key: HashMap<Option<OwnedRow>, Vec<Session>>,
    count: usize,
}

/// One open session: its bounds and its rows (source rows, without window columns).
struct Session {
    start: i64,
    end: i64,
    batches: Vec<RecordBatch>,
    /// Rows of the batch being processed (indices), moved to `batches` at its end.
    pending: Vec<u32>,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("name", &self.def.name)
            .field("watermark", &self.watermark)
            .field("open_windows", &self.windows.len())
            .finish_non_exhaustive()
    }
}

impl Pump {
    /// Plans `def` over its `sources` (one, or the sides of a window join, in the order of
    /// [`PumpDef::sources`]), with `references` to join with.
    pub async fn new(
        def: PumpDef,
        sources: Vec<TableDef>,
        references: &[ReferenceTable],
    ) -> Result<Self> {
        let inputs = sources
            .into_iter()
            .map(|t| SourceInput::new(&def, t, def.window.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let Some(primary) = inputs.first() else {
            return Err(Error::Plan(format!("pump `{}` reads no source", def.name)));
        };
        let source = primary.def.clone();
        let tables: Vec<&TableDef> = inputs.iter().map(|i| &i.def).collect();
        let (compiled, task) = compile(&def, &tables, references).await?;
        let mut sessions = Sessions::default();
        if let Some(w) = def
            .window
            .as_ref()
            .filter(|w| w.kind == WindowKind::Session)
            && !w.partition_by.is_empty()
        {
            let fields = w
                .partition_by
                .iter()
                .map(|name| {
                    source
                        .columns
                        .iter()
                        .find(|f| f.name() == name)
                        .map(|f| SortField::new(f.data_type().clone()))
                        .ok_or_else(|| {
                            Error::Plan(format!(
                                "pump `{}`: PARTITION BY {name}: not a column of `{}`",
                                def.name, source.name
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            sessions.converter =
                Some(RowConverter::new(fields).map_err(|e| Error::Plan(e.to_string()))?);
        }
        Ok(Pump {
            def,
            inputs,
            compiled,
            task,
            watermark: i64::MIN,
            windows: BTreeMap::new(),
            joined: BTreeMap::new(),
            sessions,
            stats: PumpStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn definition(&self) -> &PumpDef {
        &self.def
    }

    /// The schema of the result rows.
    pub fn output_schema(&self) -> SchemaRef {
        output_schema(&self.compiled)
    }

    /// The current watermark (milliseconds), `None` before the first timed row.
    pub fn watermark(&self) -> Option<i64> {
        (self.watermark != i64::MIN).then_some(self.watermark)
    }

    /// Whether windows are driven by arrival time (so the clock may close them).
    pub fn uses_processing_time(&self) -> bool {
        self.def.window.is_some() && self.inputs[0].time == TimeSource::Processing
    }

    pub fn open_windows(&self) -> usize {
        self.windows.len() + self.sessions.count + self.joined.len()
    }

    pub fn stats(&self) -> PumpStats {
        self.stats
    }

    /// Processes `records` (in log order) of the pump's (first) source.
    pub async fn push(&mut self, records: &[Input<'_>]) -> Result<Outcome> {
        self.push_input(0, records).await
    }

    /// Processes `records` (in log order) of the source `table` (a window join reads
    /// several).
    pub async fn push_from(&mut self, table: &str, records: &[Input<'_>]) -> Result<Outcome> {
        let index = self
            .inputs
            .iter()
            .position(|i| i.def.name == table)
            .ok_or_else(|| {
                Error::Execution(format!("pump `{}` does not read `{table}`", self.def.name))
            })?;
        self.push_input(index, records).await
    }

    /// The sources this pump reads.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|i| i.def.name.as_str())
    }

    async fn push_input(&mut self, index: usize, records: &[Input<'_>]) -> Result<Outcome> {
        let mut out = Outcome::default();
        self.stats.input_records += records.len() as u64;
        let datas: Vec<&[u8]> = records.iter().map(|r| r.data).collect();
        let input = &self.inputs[index];
        let decoded = decode_counted(&datas, &input.record_schema, &input.conversion)
            .map_err(|e| Error::Execution(e.to_string()))?;
        for f in decoded.failed {
            out.rejected.push(Rejected {
                index: f.index,
                code: f.error_code,
                message: f.error_message,
            });
        }
        // Which record each decoded row came from.
        let mut row_record: Vec<u32> = Vec::new();
        for (i, n) in decoded.rows_per_record.iter().enumerate() {
            row_record.extend(std::iter::repeat_n(i as u32, *n as usize));
        }
        let mut offset = 0;
        for batch in decoded.batches {
            let rows = &row_record[offset..offset + batch.num_rows()];
            offset += batch.num_rows();
            let arrival: Vec<i64> = rows
                .iter()
                .map(|&r| records[r as usize].arrival_ms)
                .collect();
            if let Some(&latest) = arrival.iter().max() {
                let input = &mut self.inputs[index];
                input.max_arrival = input.max_arrival.max(latest);
            }
            let batch = self.with_arrival_columns(index, batch, arrival)?;
            self.process(index, batch, rows, &mut out).await?;
        }
        out.rows.extend(self.fire().await?);
        self.account(&out);
        Ok(out)
    }

    /// Advances a processing-time pump's watermark to `now_ms` (the clock, minus whatever
    /// grace the caller allows), firing the windows that ends. No effect on event-time pumps.
    pub async fn advance_to(&mut self, now_ms: i64) -> Result<Outcome> {
        let mut out = Outcome::default();
        if self.uses_processing_time() && now_ms > self.watermark {
            self.watermark = now_ms;
            out.rows = self.fire().await?;
            self.account(&out);
        }
        Ok(out)
    }

    fn account(&mut self, out: &Outcome) {
        self.stats.output_rows += out.row_count() as u64;
        for r in &out.rejected {
            if r.code == LATE_RECORD {
                self.stats.late_records += 1;
            } else {
                self.stats.failed_records += 1;
            }
        }
    }

    /// The decoded columns in the query's order, with PROCTIME() columns and `rowtime`.
    fn with_arrival_columns(
        &self,
        index: usize,
        batch: RecordBatch,
        arrival: Vec<i64>,
    ) -> Result<RecordBatch> {
        let source = &self.inputs[index].def;
        let arrival: ArrayRef = Arc::new(TimestampMillisecondArray::from(arrival));
        let mut columns = Vec::with_capacity(source.columns.len() + 1);
        let mut fields = Vec::with_capacity(source.columns.len() + 1);
        for f in &source.columns {
            if source.proctime_columns.contains(f.name()) {
                columns.push(Arc::clone(&arrival));
            } else {
                let column = batch.column_by_name(f.name()).ok_or_else(|| {
                    Error::Execution(format!("decoded rows lack column {}", f.name()))
                })?;
                columns.push(Arc::clone(column));
            }
            fields.push(f.clone());
        }
        let schema = query_schema(source, false);
        columns.push(arrival);
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Execution(e.to_string()))
    }

    /// One decoded batch (`rows[i]` = the record of row `i`).
    async fn process(
        &mut self,
        index: usize,
        batch: RecordBatch,
        rows: &[u32],
        out: &mut Outcome,
    ) -> Result<()> {
        let Some(window) = self.def.window.clone() else {
            let Compiled::Stateless(stage) = &self.compiled else {
                unreachable!("an aggregate without a window is refused when planning")
            };
            out.rows.extend(run(stage, vec![batch], &self.task).await?);
            return Ok(());
        };
        let times = self.times(index, &batch)?;
        if window.kind == WindowKind::Session {
            return self.assign_sessions(&batch, &times, rows, &window, out);
        }
        // Assign rows to windows, per-record against the watermark before the row.
        let mut per_window: BTreeMap<(i64, i64), Vec<u32>> = BTreeMap::new();
        let mut last_rejected = None;
        for (row, &ts) in times.iter().enumerate() {
            let record = rows[row] as usize;
            let Some(ts) = ts else {
                if last_rejected != Some(record) {
                    out.rejected.push(Rejected {
                        index: record,
                        code: MISSING_EVENT_TIME.into(),
                        message: format!(
                            "The record has no value for the time column `{}`.",
                            window.time_column
                        ),
                    });
                    last_rejected = Some(record);
                }
                continue;
            };
            let watermark = self.watermark;
            let mut accepted = false;
            window.for_each_window(ts, |start, end| {
                if !fired(end, watermark) {
                    per_window.entry((end, start)).or_default().push(row as u32);
                    accepted = true;
                }
            });
            if !accepted && last_rejected != Some(record) {
                out.rejected.push(Rejected {
                    index: record,
                    code: LATE_RECORD.into(),
                    message: format!(
                        "The record's time {} is behind the watermark {}: its windows had already fired.",
                        format_ms(ts),
                        format_ms(watermark)
                    ),
                });
                last_rejected = Some(record);
            }
            self.advance_watermark(index, ts);
        }
        if per_window.is_empty() {
            return Ok(());
        }
        let expanded = expand(&batch, &per_window)?;
        match &self.compiled {
            Compiled::WindowJoin(_) => {
                // Keep each window's rows of this source until the window fires.
                let sides = self.inputs.len();
                let mut offset = 0;
                for (&key, rows) in &per_window {
                    let slice = expanded.slice(offset, rows.len());
                    offset += rows.len();
                    self.joined
                        .entry(key)
                        .or_insert_with(|| vec![Vec::new(); sides])[index]
                        .push(slice);
                }
            }
            Compiled::Stateless(stage) => {
                out.rows
                    .extend(run(stage, vec![expanded], &self.task).await?);
            }
            Compiled::Windowed(plan) => {
                let pre = run(&plan.pre, vec![expanded], &self.task).await?;
                for b in pre {
                    update_windows(plan, &window, &mut self.windows, &b)?;
                }
            }
        }
        Ok(())
    }

    /// Raises the watermark after a row of source `index` at time `ts`: the watermark is the
    /// smallest of the sources' (largest time seen minus their delay), so a window join waits
    /// for every side.
    fn advance_watermark(&mut self, index: usize, ts: i64) {
        let input = &mut self.inputs[index];
        input.max_time = input.max_time.max(ts);
        let watermark = self
            .inputs
            .iter()
            .map(|i| i.watermark_at(None))
            .min()
            .unwrap_or(i64::MIN);
        self.watermark = self.watermark.max(watermark);
    }

    /// Lets the clock (`now_ms`) move the watermark: for processing time, to `now_ms`; for
    /// event-time sources with `'watermark.idle-timeout'`, by the time they have been silent
    /// beyond it. Fires the windows that ends.
    pub async fn tick(&mut self, now_ms: i64) -> Result<Outcome> {
        if self.uses_processing_time() {
            return self.advance_to(now_ms).await;
        }
        let mut out = Outcome::default();
        if self.def.window.is_none() || self.inputs.iter().all(|i| i.idle_timeout_ms.is_none()) {
            return Ok(out);
        }
        let watermark = self
            .inputs
            .iter()
            .map(|i| i.watermark_at(Some(now_ms)))
            .min()
            .unwrap_or(i64::MIN);
        if watermark > self.watermark {
            self.watermark = watermark;
            out.rows = self.fire().await?;
            self.account(&out);
        }
        Ok(out)
    }

    fn times(&self, index: usize, batch: &RecordBatch) -> Result<Vec<Option<i64>>> {
        let name = self.inputs[index].time_column.as_str();
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Execution(format!("no time column {name}")))?;
        let column = datafusion::arrow::compute::cast(
            column,
            &DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
        )
        .map_err(|e| Error::Execution(e.to_string()))?;
        let ts = column.as_primitive::<TimestampMillisecondType>();
        Ok(ts.iter().collect())
    }

    /// Emits the windows the watermark has passed, in order of their end.
    async fn fire(&mut self) -> Result<Vec<RecordBatch>> {
        if self.sessions.count > 0 {
            return self.fire_sessions().await;
        }
        if let Compiled::WindowJoin(join) = &self.compiled {
            let mut rows = Vec::new();
            while let Some(entry) = self.joined.first_entry() {
                if !fired(entry.key().0, self.watermark) {
                    break;
                }
                let sides = entry.remove();
                for (slot, batches) in join.inputs.iter().zip(sides) {
                    slot.put(batches);
                }
                rows.extend(run(&join.stage, Vec::new(), &self.task).await?);
            }
            return Ok(rows);
        }
        let Compiled::Windowed(plan) = &self.compiled else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            if !fired(entry.key().0, self.watermark) {
                break;
            }
            let state = entry.remove();
            let batch = state.finish(&plan.aggregate_schema)?;
            rows.extend(run(&plan.post, vec![batch], &self.task).await?);
        }
        Ok(rows)
    }

    /// Assigns rows to sessions (see [`crate::window`]): each row's own window merges with
    /// every open session of its key it intersects.
    fn assign_sessions(
        &mut self,
        batch: &RecordBatch,
        times: &[Option<i64>],
        rows: &[u32],
        window: &WindowSpec,
        out: &mut Outcome,
    ) -> Result<()> {
        let keys = match &self.sessions.converter {
            Some(converter) => {
                let columns = window
                    .partition_by
                    .iter()
                    .map(|name| {
                        batch.column_by_name(name).cloned().ok_or_else(|| {
                            Error::Execution(format!("no PARTITION BY column {name}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(
                    converter
                        .convert_columns(&columns)
                        .map_err(|e| Error::Execution(e.to_string()))?,
                )
            }
            None => None,
        };
        let mut touched: Vec<Option<OwnedRow>> = Vec::new();
        let mut last_rejected = None;
        for (row, &ts) in times.iter().enumerate() {
            let record = rows[row] as usize;
            let rejected = match ts {
                None => Some((
                    MISSING_EVENT_TIME,
                    format!(
                        "The record has no value for the time column `{}`.",
                        window.time_column
                    ),
                )),
                Some(ts) if fired(ts + window.size_ms, self.watermark) => Some((
                    LATE_RECORD,
                    format!(
                        "The record's time {} is behind the watermark {}: its session had already fired.",
                        format_ms(ts),
                        format_ms(self.watermark)
                    ),
                )),
                Some(_) => None,
            };
            if let Some((code, message)) = rejected {
                if last_rejected != Some(record) {
                    out.rejected.push(Rejected {
                        index: record,
                        code: code.into(),
                        message,
                    });
                    last_rejected = Some(record);
                }
                continue;
            }
            let ts = ts.expect("checked above");
            let key = keys.as_ref().map(|k| k.row(row).owned());
            let list = self.sessions.by_key.entry(key.clone()).or_default();
            let mut merged = Session {
                start: ts,
                end: ts + window.size_ms,
                batches: Vec::new(),
                pending: vec![row as u32],
            };
            let mut i = 0;
            while i < list.len() {
                let s = &list[i];
                // A session that has fired (it is emitted at the end of this batch) takes no
                // more rows, whatever the batching.
                if s.start <= merged.end && s.end >= merged.start && !fired(s.end, self.watermark) {
                    let s = list.swap_remove(i);
                    self.sessions.count -= 1;
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    merged.batches.extend(s.batches);
                    merged.pending.extend(s.pending);
                    i = 0;
                } else {
                    i += 1;
                }
            }
            list.push(merged);
            self.sessions.count += 1;
            touched.push(key);
            self.advance_watermark(0, ts);
        }
        touched.sort();
        touched.dedup();
        for key in touched {
            for session in self.sessions.by_key.get_mut(&key).into_iter().flatten() {
                if !session.pending.is_empty() {
                    session.pending.sort_unstable();
                    let indices = UInt32Array::from(std::mem::take(&mut session.pending));
                    let columns = batch
                        .columns()
                        .iter()
                        .map(|c| take(c, &indices, None))
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| Error::Execution(e.to_string()))?;
                    session.batches.push(
                        RecordBatch::try_new(batch.schema(), columns)
                            .map_err(|e| Error::Execution(e.to_string()))?,
                    );
                }
            }
        }
        Ok(())
    }

    /// Emits the sessions the watermark has passed, in order of their end.
    async fn fire_sessions(&mut self) -> Result<Vec<RecordBatch>> {
        let watermark = self.watermark;
        let mut due = Vec::new();
        for list in self.sessions.by_key.values_mut() {
            let mut i = 0;
            while i < list.len() {
                if fired(list[i].end, watermark) {
                    due.push(list.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        self.sessions.by_key.retain(|_, list| !list.is_empty());
        self.sessions.count -= due.len();
        due.sort_by_key(|s| (s.end, s.start));
        let schema = query_schema(&self.inputs[0].def, false);
        let mut rows = Vec::new();
        for session in due {
            let batch = datafusion::arrow::compute::concat_batches(&schema, &session.batches)
                .map_err(|e| Error::Execution(e.to_string()))?;
            let n = batch.num_rows() as u32;
            let mut one = BTreeMap::new();
            one.insert((session.end, session.start), (0..n).collect::<Vec<u32>>());
            let expanded = expand(&batch, &one)?;
            match &self.compiled {
                Compiled::WindowJoin(_) => {
                    return Err(Error::Plan(
                        "SESSION windows cannot be joined (refused when parsing)".into(),
                    ));
                }
                Compiled::Stateless(stage) => {
                    rows.extend(run(stage, vec![expanded], &self.task).await?);
                }
                Compiled::Windowed(plan) => {
                    let mut state = WindowState::new(plan)?;
                    for b in run(&plan.pre, vec![expanded], &self.task).await? {
                        let (keys, arguments, filters) = evaluate(plan, &b)?;
                        state.update(&keys, &arguments, &filters)?;
                    }
                    if !state.groups.is_empty() {
                        let batch = state.finish(&plan.aggregate_schema)?;
                        rows.extend(run(&plan.post, vec![batch], &self.task).await?);
                    }
                }
            }
        }
        Ok(rows)
    }

    /// Serialises the pump's state (watermark, counters, open windows) and rebuilds the live
    /// state from the bytes (so the restore path runs on every snapshot).
    pub fn snapshot(&mut self) -> Result<Vec<u8>> {
        let mut header = SnapshotHeader {
            pump: self.def.name.clone(),
            watermark: self.watermark,
            max_time: self.inputs[0].max_time,
            max_times: self.inputs.iter().map(|i| i.max_time).collect(),
            max_arrivals: self.inputs.iter().map(|i| i.max_arrival).collect(),
            stats: self.stats,
            windows: Vec::new(),
            windows_ipc_len: 0,
            sessions: Vec::new(),
            joined: Vec::new(),
            joined_ipc_lens: Vec::new(),
        };
        let mut ipc = Vec::new();
        if let Compiled::Windowed(plan) = &self.compiled {
            let schema = state_schema(plan)?;
            let mut writer = StreamWriter::try_new(&mut ipc, &schema)
                .map_err(|e| Error::State(e.to_string()))?;
            for (&(end, start), state) in &mut self.windows {
                let (keys, states) = state.take_state()?;
                let mut columns = keys;
                columns.extend(states.into_iter().flatten());
                let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
                    .map_err(|e| Error::State(e.to_string()))?;
                writer
                    .write(&batch)
                    .map_err(|e| Error::State(e.to_string()))?;
                header.windows.push((start, end));
            }
            writer.finish().map_err(|e| Error::State(e.to_string()))?;
        }
        header.windows_ipc_len = ipc.len() as u64;
        if self.sessions.count > 0 {
            // Each session's rows as one batch of the source's columns.
            let schema = query_schema(&self.inputs[0].def, false);
            let mut writer = StreamWriter::try_new(&mut ipc, &schema)
                .map_err(|e| Error::State(e.to_string()))?;
            for list in self.sessions.by_key.values() {
                for session in list {
                    let batch =
                        datafusion::arrow::compute::concat_batches(&schema, &session.batches)
                            .map_err(|e| Error::State(e.to_string()))?;
                    writer
                        .write(&batch)
                        .map_err(|e| Error::State(e.to_string()))?;
                    header.sessions.push((session.start, session.end));
                }
            }
            writer.finish().map_err(|e| Error::State(e.to_string()))?;
        }
        if !self.joined.is_empty() {
            // Each source's rows of every open window, one IPC stream per source.
            header.joined = self
                .joined
                .keys()
                .map(|&(end, start)| (start, end))
                .collect();
            for (index, input) in self.inputs.iter().enumerate() {
                let schema = query_schema(&input.def, true);
                let before = ipc.len();
                let mut writer = StreamWriter::try_new(&mut ipc, &schema)
                    .map_err(|e| Error::State(e.to_string()))?;
                for sides in self.joined.values() {
                    let batch = datafusion::arrow::compute::concat_batches(&schema, &sides[index])
                        .map_err(|e| Error::State(e.to_string()))?;
                    writer
                        .write(&batch)
                        .map_err(|e| Error::State(e.to_string()))?;
                }
                writer.finish().map_err(|e| Error::State(e.to_string()))?;
                drop(writer);
                header.joined_ipc_lens.push((ipc.len() - before) as u64);
            }
        }
        let header_bytes = serde_json::to_vec(&header).map_err(|e| Error::State(e.to_string()))?;
        let mut bytes = Vec::with_capacity(header_bytes.len() + ipc.len() + 16);
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header_bytes);
        bytes.extend_from_slice(&ipc);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        self.restore(&bytes)?;
        Ok(bytes)
    }

    /// Replaces the pump's state by a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = |m: &str| Error::State(format!("pump `{}`: snapshot {m}", self.def.name));
        if bytes.len() < SNAPSHOT_MAGIC.len() + 8 || !bytes.starts_with(SNAPSHOT_MAGIC) {
            return Err(bad("is not a pump snapshot"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("is damaged (CRC mismatch)"));
        }
        let body = &body[SNAPSHOT_MAGIC.len()..];
        let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        let header: SnapshotHeader = body
            .get(4..4 + len)
            .and_then(|h| serde_json::from_slice(h).ok())
            .ok_or_else(|| bad("has an unreadable header"))?;
        if header.pump != self.def.name {
            return Err(bad(&format!("belongs to pump `{}`", header.pump)));
        }
        let all_ipc = &body[4 + len..];
        let split = (header.windows_ipc_len as usize).min(all_ipc.len());
        let (ipc, rest) = all_ipc.split_at(split);
        let joined_len: usize = header.joined_ipc_lens.iter().map(|&l| l as usize).sum();
        if joined_len > rest.len() {
            return Err(bad("is truncated"));
        }
        let (session_ipc, mut joined_ipc) = rest.split_at(rest.len() - joined_len);
        let mut joined: BTreeMap<(i64, i64), Vec<Vec<RecordBatch>>> = header
            .joined
            .iter()
            .map(|&(start, end)| ((end, start), vec![Vec::new(); self.inputs.len()]))
            .collect();
        if !header.joined.is_empty() && header.joined_ipc_lens.len() != self.inputs.len() {
            return Err(bad("has window join rows of another number of sources"));
        }
        for (index, &len) in header.joined_ipc_lens.iter().enumerate() {
            let (section, tail) = joined_ipc.split_at(len as usize);
            joined_ipc = tail;
            let reader = StreamReader::try_new(Cursor::new(section), None)
                .map_err(|e| Error::State(e.to_string()))?;
            let mut count = 0;
            for (batch, &(start, end)) in reader.zip(&header.joined) {
                let batch = batch.map_err(|e| Error::State(e.to_string()))?;
                if let Some(sides) = joined.get_mut(&(end, start)) {
                    sides[index].push(batch);
                    count += 1;
                }
            }
            if count != header.joined.len() {
                return Err(bad("lists more joined windows than it holds"));
            }
        }
        let mut windows = BTreeMap::new();
        if let Compiled::Windowed(plan) = &self.compiled {
            if !ipc.is_empty() {
                let reader = StreamReader::try_new(Cursor::new(ipc), None)
                    .map_err(|e| Error::State(e.to_string()))?;
                let key_count = plan.group_schema.fields().len();
                let widths: Vec<usize> = plan
                    .aggregates
                    .iter()
                    .map(|a| a.state_fields().map(|f| f.len()))
                    .collect::<datafusion::error::Result<_>>()
                    .map_err(exec)?;
                for (batch, &(start, end)) in reader.zip(&header.windows) {
                    let batch = batch.map_err(|e| Error::State(e.to_string()))?;
                    let columns = batch.columns();
                    let keys = &columns[..key_count];
                    let mut states = Vec::with_capacity(widths.len());
                    let mut at = key_count;
                    for w in &widths {
                        states.push(columns[at..at + w].to_vec());
                        at += w;
                    }
                    windows.insert((end, start), WindowState::restore(plan, keys, &states)?);
                }
            }
            if windows.len() != header.windows.len() {
                return Err(bad("lists more windows than it holds"));
            }
        }
        let mut by_key: HashMap<Option<OwnedRow>, Vec<Session>> = HashMap::new();
        let mut count = 0;
        if !session_ipc.is_empty() {
            let reader = StreamReader::try_new(Cursor::new(session_ipc), None)
                .map_err(|e| Error::State(e.to_string()))?;
            let partition_by = self
                .def
                .window
                .as_ref()
                .map(|w| w.partition_by.clone())
                .unwrap_or_default();
            for (batch, &(start, end)) in reader.zip(&header.sessions) {
                let batch = batch.map_err(|e| Error::State(e.to_string()))?;
                let key = match &self.sessions.converter {
                    Some(converter) => {
                        let columns = partition_by
                            .iter()
                            .map(|n| batch.column_by_name(n).cloned())
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| bad("lacks a PARTITION BY column"))?;
                        let rows = converter
                            .convert_columns(&columns)
                            .map_err(|e| Error::State(e.to_string()))?;
                        Some(rows.row(0).owned())
                    }
                    None => None,
                };
                by_key.entry(key).or_default().push(Session {
                    start,
                    end,
                    batches: vec![batch],
                    pending: Vec::new(),
                });
                count += 1;
            }
        }
        if count != header.sessions.len() {
            return Err(bad("lists more sessions than it holds"));
        }
        self.watermark = header.watermark;
        if header.max_times.len() == self.inputs.len() {
            for (input, &t) in self.inputs.iter_mut().zip(&header.max_times) {
                input.max_time = t;
            }
            for (input, &t) in self.inputs.iter_mut().zip(&header.max_arrivals) {
                input.max_arrival = t;
            }
        } else {
            self.inputs[0].max_time = header.max_time;
        }
        self.joined = joined;
        self.stats = header.stats;
        self.windows = windows;
        self.sessions.by_key = by_key;
        self.sessions.count = count;
        Ok(())
    }
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"LHPUMP\0\x01";

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotHeader {
    pump: String,
    watermark: i64,
    max_time: i64,
    /// Each source's largest time (a window join has several).
    #[serde(default)]
    max_times: Vec<i64>,
    /// Each source's latest arrival time.
    #[serde(default)]
    max_arrivals: Vec<i64>,
    stats: PumpStats,
    /// (start, end) of each window, in the order of the IPC batches.
    windows: Vec<(i64, i64)>,
    /// Bytes of the windows' IPC stream; the sessions' follows.
    #[serde(default)]
    windows_ipc_len: u64,
    /// (start, end) of each session, in the order of the sessions' IPC batches.
    #[serde(default)]
    sessions: Vec<(i64, i64)>,
    /// (start, end) of each open window of a window join.
    #[serde(default)]
    joined: Vec<(i64, i64)>,
    /// Bytes of each source's IPC stream of joined rows (at the end of the snapshot).
    #[serde(default)]
    joined_ipc_lens: Vec<u64>,
}

/// The schema of a window's snapshot batch: group keys, then every accumulator's state.
fn state_schema(plan: &WindowedPlan) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = plan
        .group_schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("k{i}"), f.data_type().clone(), true))
        .collect();
    for (i, a) in plan.aggregates.iter().enumerate() {
        for (j, f) in a.state_fields().map_err(exec)?.iter().enumerate() {
            fields.push(Field::new(format!("a{i}_{j}"), f.data_type().clone(), true));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// The rows of `per_window` (each window's rows together, windows in order), with the window
/// columns appended.
fn expand(batch: &RecordBatch, per_window: &BTreeMap<(i64, i64), Vec<u32>>) -> Result<RecordBatch> {
    let total: usize = per_window.values().map(Vec::len).sum();
    let mut indices = Vec::with_capacity(total);
    let mut starts = Vec::with_capacity(total);
    let mut ends = Vec::with_capacity(total);
    for (&(end, start), rows) in per_window {
        indices.extend_from_slice(rows);
        starts.extend(std::iter::repeat_n(start, rows.len()));
        ends.extend(std::iter::repeat_n(end, rows.len()));
    }
    let indices = UInt32Array::from(indices);
    let mut columns = batch
        .columns()
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Execution(e.to_string()))?;
    let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
    columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
    columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
    columns.push(Arc::new(TimestampMillisecondArray::from(times)));
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let ts = DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None);
    for name in ["window_start", "window_end", "window_time"] {
        fields.push(Field::new(name, ts.clone(), false));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::Execution(e.to_string()))
}

/// Folds the rows of `batch` (the output of the plan below the aggregate; each window's rows
/// contiguous) into their windows' state.
fn update_windows(
    plan: &WindowedPlan,
    window: &WindowSpec,
    windows: &mut BTreeMap<(i64, i64), WindowState>,
    batch: &RecordBatch,
) -> Result<()> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(());
    }
    let (keys, arguments, filters) = evaluate(plan, batch)?;
    let window_key = datafusion::arrow::compute::cast(
        &keys[plan.window_key],
        &DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None),
    )
    .map_err(|e| Error::Execution(e.to_string()))?;
    let window_key = window_key.as_primitive::<TimestampMillisecondType>();
    let mut start_row = 0;
    while start_row < n {
        let key = window_key.value(start_row);
        let mut end_row = start_row + 1;
        while end_row < n && window_key.value(end_row) == key {
            end_row += 1;
        }
        let (start, end) = if plan.window_key_is_end {
            let start = match window.kind {
                WindowKind::Cumulate => {
                    let last = key - 1;
                    last - (last - window.offset_ms).rem_euclid(window.size_ms)
                }
                _ => key - window.size_ms,
            };
            (start, key)
        } else {
            (key, key + window.size_ms)
        };
        let len = end_row - start_row;
        let slice = |a: &ArrayRef| a.slice(start_row, len);
        let state = match windows.entry((end, start)) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(WindowState::new(plan)?),
        };
        state.update(
            &keys.iter().map(slice).collect::<Vec<_>>(),
            &arguments
                .iter()
                .map(|args| args.iter().map(slice).collect())
                .collect::<Vec<_>>(),
            &filters
                .iter()
                .map(|f| f.as_ref().map(slice))
                .collect::<Vec<_>>(),
        )?;
        start_row = end_row;
    }
    Ok(())
}

/// The grouping keys, aggregate arguments and aggregate filters of `batch` (rows of the plan
/// below the aggregate).
#[allow(clippy::type_complexity)]
fn evaluate(
    plan: &WindowedPlan,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>, Vec<Option<ArrayRef>>)> {
    let n = batch.num_rows();
    let eval = |e: &Arc<dyn datafusion::physical_plan::PhysicalExpr>| {
        e.evaluate(batch)
            .and_then(|v| v.into_array(n))
            .map_err(exec)
    };
    let keys = plan
        .group_exprs
        .iter()
        .map(|(e, _)| eval(e))
        .collect::<Result<_>>()?;
    let arguments = plan
        .arguments
        .iter()
        .map(|args| args.iter().map(eval).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    let filters = plan
        .filters
        .iter()
        .map(|f| f.as_ref().map(eval).transpose())
        .collect::<Result<_>>()?;
    Ok((keys, arguments, filters))
}

/// Runs a stage on `batches`.
async fn run(
    stage: &Stage,
    batches: Vec<RecordBatch>,
    task: &Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    stage.input.put(batches);
    let plan = if stage.reset {
        datafusion::physical_plan::execution_plan::reset_plan_states(Arc::clone(&stage.plan))
            .map_err(exec)?
    } else {
        Arc::clone(&stage.plan)
    };
    let rows = collect(plan, Arc::clone(task)).await.map_err(exec)?;
    Ok(rows.into_iter().filter(|b| b.num_rows() > 0).collect())
}

/// `2026-11-24T10:00:00.000Z`, for messages.
pub(crate) fn format_ms(ms: i64) -> String {
    match datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms) {
        _ if ms == i64::MIN => "(none yet)".into(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

/// Result rows as JSON records, one object per row, each ending with a newline (the form
/// delivery streams and HTTP endpoints receive). Null columns are left out.
pub fn to_json_records(batches: &[RecordBatch]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for batch in batches {
        let mut buf = Vec::new();
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut buf);
        writer
            .write(batch)
            .map_err(|e| Error::Execution(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| Error::Execution(e.to_string()))?;
        drop(writer);
        out.extend(
            buf.split_inclusive(|&b| b == b'\n')
                .filter(|l| l.len() > 1)
                .map(<[u8]>::to_vec),
        );
    }
    Ok(out)
}

// A pump moves between tasks of the runtime.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Pump>();
};
