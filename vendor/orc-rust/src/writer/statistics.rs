// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.

//! Column statistics the writer records for every column of every stripe (the file's Metadata
//! section) and of the whole file (the Footer), so that readers can skip stripes by value.
//!
//! Invariants:
//! - A bound written is a true bound of the values written: every value is at least the
//!   minimum and at most the maximum, so a reader that skips a stripe on them never skips a
//!   matching row. A bound that cannot be stated exactly is left out: double bounds once a NaN
//!   was written, string bounds longer than 1024 bytes, and integer and decimal sums that
//!   overflow.
//! - `number_of_values` counts the values present (not null) and `has_null` tells whether any
//!   was null; for a child of a compound column, only the values under present parents count.
//! - Timestamps are recorded as UTC milliseconds plus the nanoseconds within the millisecond
//!   (`minimum_nanos`/`maximum_nanos`, stored plus one as the format asks), which is exact.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use crate::error::Result;
use crate::memory::EstimateMemory;
use crate::proto;

use super::column::ColumnStripeEncoder;
use super::{ColumnEncoding, Stream};

/// Longest string minimum or maximum written, as the Java and C++ writers do.
const MAX_STRING_BOUND: usize = 1024;
/// The largest magnitude a DECIMAL(38) holds.
const MAX_DECIMAL: i128 = 10i128.pow(38) - 1;

/// The statistics of one column over some rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStatistics {
    values: u64,
    has_null: bool,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// Counts only: STRUCT, LIST, MAP and the root.
    Counts,
    Integer {
        range: Option<(i64, i64)>,
        sum: Option<i64>,
    },
    Double {
        range: Option<(f64, f64)>,
        sum: f64,
        nan: bool,
    },
    String {
        range: Option<(String, String)>,
        /// Total length in bytes.
        sum: i64,
    },
    Binary {
        /// Total length in bytes.
        sum: i64,
    },
    Boolean {
        trues: u64,
    },
    Date {
        range: Option<(i32, i32)>,
    },
    /// UTC milliseconds and the nanoseconds within the millisecond.
    Timestamp {
        range: Option<((i64, u32), (i64, u32))>,
    },
    Decimal {
        scale: i8,
        range: Option<(i128, i128)>,
        sum: Option<i128>,
    },
}

fn widen<T: PartialOrd + Clone>(range: &mut Option<(T, T)>, value: T) {
    match range {
        None => *range = Some((value.clone(), value)),
        Some((lo, hi)) => {
            if value < *lo {
                *lo = value;
            } else if value > *hi {
                *hi = value;
            }
        }
    }
}

fn widen_range<T: PartialOrd + Clone>(range: &mut Option<(T, T)>, other: &Option<(T, T)>) {
    if let Some((lo, hi)) = other {
        widen(range, lo.clone());
        widen(range, hi.clone());
    }
}

fn integers<T>(array: &dyn Array, range: &mut Option<(i64, i64)>, sum: &mut Option<i64>)
where
    T: ArrowPrimitiveType,
    T::Native: Into<i64>,
{
    for value in array.as_primitive::<T>().iter().flatten() {
        let value: i64 = value.into();
        widen(range, value);
        *sum = sum.and_then(|s| s.checked_add(value));
    }
}

fn doubles<T>(array: &dyn Array, range: &mut Option<(f64, f64)>, sum: &mut f64, nan: &mut bool)
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    for value in array.as_primitive::<T>().iter().flatten() {
        let value: f64 = value.into();
        if value.is_nan() {
            *nan = true;
        } else {
            widen(range, value);
            *sum += value;
        }
    }
}

fn strings<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    range: &mut Option<(String, String)>,
    sum: &mut i64,
) {
    for value in values.flatten() {
        *sum += value.len() as i64;
        match range {
            None => *range = Some((value.to_owned(), value.to_owned())),
            Some((lo, hi)) => {
                if value < lo.as_str() {
                    *lo = value.to_owned();
                } else if value > hi.as_str() {
                    *hi = value.to_owned();
                }
            }
        }
    }
}

/// Widens `range` by each value of `array` (in `unit`s since the epoch), as (milliseconds,
/// nanoseconds within the millisecond).
fn timestamps<T: ArrowPrimitiveType<Native = i64>>(
    array: &dyn Array,
    unit: TimeUnit,
    range: &mut Option<((i64, u32), (i64, u32))>,
) {
    for value in array.as_primitive::<T>().iter().flatten() {
        let split = match unit {
            TimeUnit::Second => (value.saturating_mul(1000), 0),
            TimeUnit::Millisecond => (value, 0),
            TimeUnit::Microsecond => (value.div_euclid(1000), value.rem_euclid(1000) as u32 * 1000),
            TimeUnit::Nanosecond => (
                value.div_euclid(1_000_000),
                value.rem_euclid(1_000_000) as u32,
            ),
        };
        widen(range, split);
    }
}

/// `value` with `scale` digits after the point, as ORC's decimal statistics spell it.
fn decimal_string(value: i128, scale: i8) -> String {
    if scale <= 0 {
        return format!("{value}{}", "0".repeat(scale.unsigned_abs() as usize));
    }
    let scale = scale as usize;
    let digits = format!("{:0>width$}", value.unsigned_abs(), width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

impl ColumnStatistics {
    /// No rows yet, for a column of `data_type`.
    pub fn new(data_type: &DataType) -> Self {
        let kind = match data_type {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Integer {
                range: None,
                sum: Some(0),
            },
            DataType::Float32 | DataType::Float64 => Kind::Double {
                range: None,
                sum: 0.0,
                nan: false,
            },
            DataType::Utf8 | DataType::LargeUtf8 => Kind::String {
                range: None,
                sum: 0,
            },
            DataType::Binary | DataType::LargeBinary => Kind::Binary { sum: 0 },
            DataType::Boolean => Kind::Boolean { trues: 0 },
            DataType::Date32 => Kind::Date { range: None },
            DataType::Timestamp(_, _) => Kind::Timestamp { range: None },
            DataType::Decimal128(_, scale) => Kind::Decimal {
                scale: *scale,
                range: None,
                sum: Some(0),
            },
            _ => Kind::Counts,
        };
        Self {
            values: 0,
            has_null: false,
            kind,
        }
    }

    /// The root struct of `rows` rows (which are never null).
    pub fn root(rows: u64) -> Self {
        Self {
            values: rows,
            has_null: false,
            kind: Kind::Counts,
        }
    }

    /// Counts-only statistics of no rows: what an encoder that keeps none reports, for the
    /// [`Statistician`] wrapping it to replace.
    pub fn placeholder() -> Self {
        Self::root(0)
    }

    /// The same kind of statistics, over no rows.
    fn emptied(&self) -> Self {
        let kind = match &self.kind {
            Kind::Counts => Kind::Counts,
            Kind::Integer { .. } => Kind::Integer {
                range: None,
                sum: Some(0),
            },
            Kind::Double { .. } => Kind::Double {
                range: None,
                sum: 0.0,
                nan: false,
            },
            Kind::String { .. } => Kind::String {
                range: None,
                sum: 0,
            },
            Kind::Binary { .. } => Kind::Binary { sum: 0 },
            Kind::Boolean { .. } => Kind::Boolean { trues: 0 },
            Kind::Date { .. } => Kind::Date { range: None },
            Kind::Timestamp { .. } => Kind::Timestamp { range: None },
            Kind::Decimal { scale, .. } => Kind::Decimal {
                scale: *scale,
                range: None,
                sum: Some(0),
            },
        };
        Self {
            values: 0,
            has_null: false,
            kind,
        }
    }

    /// Adds the values of `array` (a column of this statistics' type).
    pub fn update(&mut self, array: &dyn Array) {
        self.values += (array.len() - array.null_count()) as u64;
        self.has_null |= array.null_count() > 0;
        match (&mut self.kind, array.data_type()) {
            (Kind::Integer { range, sum }, data_type) => match data_type {
                DataType::Int8 => integers::<Int8Type>(array, range, sum),
                DataType::Int16 => integers::<Int16Type>(array, range, sum),
                DataType::Int32 => integers::<Int32Type>(array, range, sum),
                _ => integers::<Int64Type>(array, range, sum),
            },
            (Kind::Double { range, sum, nan }, DataType::Float32) => {
                doubles::<Float32Type>(array, range, sum, nan)
            }
            (Kind::Double { range, sum, nan }, _) => doubles::<Float64Type>(array, range, sum, nan),
            (Kind::String { range, sum }, DataType::LargeUtf8) => {
                strings(array.as_string::<i64>().iter(), range, sum)
            }
            (Kind::String { range, sum }, _) => {
                strings(array.as_string::<i32>().iter(), range, sum)
            }
            (Kind::Binary { sum }, DataType::LargeBinary) => {
                *sum += array
                    .as_binary::<i64>()
                    .iter()
                    .flatten()
                    .map(|b| b.len() as i64)
                    .sum::<i64>()
            }
            (Kind::Binary { sum }, _) => {
                *sum += array
                    .as_binary::<i32>()
                    .iter()
                    .flatten()
                    .map(|b| b.len() as i64)
                    .sum::<i64>()
            }
            (Kind::Boolean { trues }, _) => *trues += array.as_boolean().true_count() as u64,
            (Kind::Date { range }, _) => {
                for value in array.as_primitive::<Date32Type>().iter().flatten() {
                    widen(range, value);
                }
            }
            (Kind::Timestamp { range }, DataType::Timestamp(unit, _)) => match unit {
                TimeUnit::Second => timestamps::<TimestampSecondType>(array, *unit, range),
                TimeUnit::Millisecond => {
                    timestamps::<TimestampMillisecondType>(array, *unit, range)
                }
                TimeUnit::Microsecond => {
                    timestamps::<TimestampMicrosecondType>(array, *unit, range)
                }
                TimeUnit::Nanosecond => timestamps::<TimestampNanosecondType>(array, *unit, range),
            },
            (Kind::Decimal { range, sum, .. }, _) => {
                for value in array.as_primitive::<Decimal128Type>().iter().flatten() {
                    widen(range, value);
                    *sum = sum
                        .and_then(|s| s.checked_add(value))
                        .filter(|s| s.unsigned_abs() <= MAX_DECIMAL as u128);
                }
            }
            (Kind::Counts | Kind::Timestamp { .. }, _) => {}
        }
    }

    /// Adds `other`, the statistics of the same column over other rows.
    pub fn merge(&mut self, other: &Self) {
        self.values += other.values;
        self.has_null |= other.has_null;
        match (&mut self.kind, &other.kind) {
            (Kind::Integer { range, sum }, Kind::Integer { range: r, sum: s }) => {
                widen_range(range, r);
                *sum = sum.zip(*s).and_then(|(a, b)| a.checked_add(b));
            }
            (
                Kind::Double { range, sum, nan },
                Kind::Double {
                    range: r,
                    sum: s,
                    nan: n,
                },
            ) => {
                widen_range(range, r);
                *sum += s;
                *nan |= n;
            }
            (Kind::String { range, sum }, Kind::String { range: r, sum: s }) => {
                widen_range(range, r);
                *sum += s;
            }
            (Kind::Binary { sum }, Kind::Binary { sum: s }) => *sum += s,
            (Kind::Boolean { trues }, Kind::Boolean { trues: t }) => *trues += t,
            (Kind::Date { range }, Kind::Date { range: r }) => widen_range(range, r),
            (Kind::Timestamp { range }, Kind::Timestamp { range: r }) => widen_range(range, r),
            (
                Kind::Decimal { range, sum, .. },
                Kind::Decimal {
                    range: r, sum: s, ..
                },
            ) => {
                widen_range(range, r);
                *sum = sum
                    .zip(*s)
                    .and_then(|(a, b)| a.checked_add(b))
                    .filter(|s| s.unsigned_abs() <= MAX_DECIMAL as u128);
            }
            _ => {}
        }
    }

    /// The statistics as the file stores them.
    pub fn to_proto(&self) -> proto::ColumnStatistics {
        let mut stats = proto::ColumnStatistics {
            number_of_values: Some(self.values),
            has_null: Some(self.has_null),
            ..Default::default()
        };
        match &self.kind {
            Kind::Counts => {}
            Kind::Integer { range, sum } => {
                stats.int_statistics = Some(proto::IntegerStatistics {
                    minimum: range.map(|r| r.0),
                    maximum: range.map(|r| r.1),
                    sum: *sum,
                })
            }
            Kind::Double { range, sum, nan } => {
                if !nan {
                    stats.double_statistics = Some(proto::DoubleStatistics {
                        minimum: range.map(|r| r.0),
                        maximum: range.map(|r| r.1),
                        sum: Some(*sum),
                    })
                }
            }
            Kind::String { range, sum } => {
                let range = range.as_ref().filter(|(lo, hi)| {
                    lo.len() <= MAX_STRING_BOUND && hi.len() <= MAX_STRING_BOUND
                });
                stats.string_statistics = Some(proto::StringStatistics {
                    minimum: range.map(|r| r.0.clone()),
                    maximum: range.map(|r| r.1.clone()),
                    sum: Some(*sum),
                    lower_bound: None,
                    upper_bound: None,
                })
            }
            Kind::Binary { sum } => {
                stats.binary_statistics = Some(proto::BinaryStatistics { sum: Some(*sum) })
            }
            Kind::Boolean { trues } => {
                stats.bucket_statistics = Some(proto::BucketStatistics {
                    count: vec![*trues],
                })
            }
            Kind::Date { range } => {
                stats.date_statistics = Some(proto::DateStatistics {
                    minimum: range.map(|r| r.0),
                    maximum: range.map(|r| r.1),
                })
            }
            Kind::Timestamp { range } => {
                stats.timestamp_statistics = Some(proto::TimestampStatistics {
                    minimum: None,
                    maximum: None,
                    minimum_utc: range.map(|r| r.0 .0),
                    maximum_utc: range.map(|r| r.1 .0),
                    minimum_nanos: range.map(|r| r.0 .1 as i32 + 1),
                    maximum_nanos: range.map(|r| r.1 .1 as i32 + 1),
                })
            }
            Kind::Decimal { scale, range, sum } => {
                stats.decimal_statistics = Some(proto::DecimalStatistics {
                    minimum: range.map(|r| decimal_string(r.0, *scale)),
                    maximum: range.map(|r| decimal_string(r.1, *scale)),
                    sum: sum.map(|s| decimal_string(s, *scale)),
                })
            }
        }
        stats
    }
}

/// A column encoder that also keeps the column's statistics for the stripe being written.
/// [`super::stripe`] wraps every encoder it makes (compound columns' children too) in one.
pub struct Statistician {
    inner: Box<dyn ColumnStripeEncoder>,
    stripe: ColumnStatistics,
}

impl Statistician {
    pub fn new(data_type: &DataType, inner: Box<dyn ColumnStripeEncoder>) -> Self {
        Self {
            inner,
            stripe: ColumnStatistics::new(data_type),
        }
    }
}

impl EstimateMemory for Statistician {
    fn estimate_memory_size(&self) -> usize {
        self.inner.estimate_memory_size()
    }
}

impl ColumnStripeEncoder for Statistician {
    fn encode_array(&mut self, array: &ArrayRef) -> Result<()> {
        self.inner.encode_array(array)?;
        self.stripe.update(array.as_ref());
        Ok(())
    }

    fn column_encoding(&self) -> ColumnEncoding {
        self.inner.column_encoding()
    }

    fn finish(&mut self) -> Vec<Stream> {
        self.inner.finish()
    }

    fn finish_tree(
        &mut self,
        column: u32,
        streams: &mut Vec<(u32, Stream)>,
        encodings: &mut Vec<ColumnEncoding>,
        statistics: &mut Vec<ColumnStatistics>,
    ) -> u32 {
        let at = statistics.len();
        let next = self
            .inner
            .finish_tree(column, streams, encodings, statistics);
        let empty = self.stripe.emptied();
        statistics[at] = std::mem::replace(&mut self.stripe, empty);
        next
    }
}
