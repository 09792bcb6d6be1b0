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

//! Encoders for STRUCT, LIST, MAP and DECIMAL columns (added by Lakehose; see LAKEHOSE.md).
//!
//! ORC stores a compound column's children as columns of their own, numbered in pre-order after
//! it. A child holds values only for the rows where its parent is present: a null struct has no
//! field values, and a null list or map has no length and no elements. Arrow keeps child slots
//! for null parents (struct fields) and may even give a null list a non-empty range, so each
//! encoder here passes its children only the values under present parents.

use arrow::{
    array::{Array, ArrayRef, AsArray, BooleanArray},
    buffer::{NullBuffer, OffsetBuffer},
    compute,
    datatypes::Decimal128Type,
};
use bytes::BytesMut;
use snafu::ResultExt;

use crate::{
    encoding::{
        boolean::BooleanEncoder,
        integer::{rle_v2::RleV2Encoder, write_varint_zigzagged, SignedEncoding, UnsignedEncoding},
        PrimitiveValueEncoder,
    },
    error::{ConvertRecordBatchSnafu, Result},
    memory::EstimateMemory,
};

use super::statistics::ColumnStatistics;
use super::{column::ColumnStripeEncoder, ColumnEncoding, Stream, StreamType};

/// The PRESENT stream of a column, started lazily at the first null (a column without nulls has
/// none), back-filled with the rows encoded before it.
#[derive(Default)]
struct PresentStream {
    encoder: Option<BooleanEncoder>,
    /// Rows encoded since the stripe began.
    rows: usize,
}

impl PresentStream {
    fn append(&mut self, nulls: Option<&NullBuffer>, len: usize) {
        match nulls.filter(|n| n.null_count() > 0) {
            Some(nulls) => {
                let rows = self.rows;
                self.encoder
                    .get_or_insert_with(|| {
                        let mut present = BooleanEncoder::new();
                        present.extend_present(rows);
                        present
                    })
                    .extend(nulls);
            }
            None => {
                if let Some(present) = self.encoder.as_mut() {
                    present.extend_present(len);
                }
            }
        }
        self.rows += len;
    }

    fn finish(&mut self) -> Option<Stream> {
        self.rows = 0;
        let present = self.encoder.take()?;
        let mut present = present;
        Some(Stream {
            kind: StreamType::Present,
            bytes: present.finish(),
        })
    }

    fn estimate_memory_size(&self) -> usize {
        self.encoder
            .as_ref()
            .map(|p| p.estimate_memory_size())
            .unwrap_or(0)
    }
}

fn finish_children(
    children: &mut [Box<dyn ColumnStripeEncoder>],
    mut column: u32,
    streams: &mut Vec<(u32, Stream)>,
    encodings: &mut Vec<ColumnEncoding>,
    statistics: &mut Vec<ColumnStatistics>,
) -> u32 {
    for child in children {
        column = child.finish_tree(column, streams, encodings, statistics);
    }
    column
}

/// STRUCT: a PRESENT stream of its own, and one child column per field.
pub struct StructColumnEncoder {
    present: PresentStream,
    children: Vec<Box<dyn ColumnStripeEncoder>>,
}

impl StructColumnEncoder {
    pub fn new(children: Vec<Box<dyn ColumnStripeEncoder>>) -> Self {
        Self {
            present: PresentStream::default(),
            children,
        }
    }
}

impl EstimateMemory for StructColumnEncoder {
    fn estimate_memory_size(&self) -> usize {
        self.present.estimate_memory_size()
            + self
                .children
                .iter()
                .map(|c| c.estimate_memory_size())
                .sum::<usize>()
    }
}

impl ColumnStripeEncoder for StructColumnEncoder {
    fn encode_array(&mut self, array: &ArrayRef) -> Result<()> {
        let array = array.as_struct();
        self.present.append(array.nulls(), array.len());
        let present_rows = array
            .nulls()
            .filter(|n| n.null_count() > 0)
            .map(|n| BooleanArray::new(n.inner().clone(), None));
        for (field, child) in array.columns().iter().zip(self.children.iter_mut()) {
            match &present_rows {
                None => child.encode_array(field)?,
                Some(mask) => {
                    let values = compute::filter(field, mask).context(ConvertRecordBatchSnafu)?;
                    child.encode_array(&values)?
                }
            }
        }
        Ok(())
    }

    fn column_encoding(&self) -> ColumnEncoding {
        ColumnEncoding::Direct
    }

    fn finish(&mut self) -> Vec<Stream> {
        self.present.finish().into_iter().collect()
    }

    fn finish_tree(
        &mut self,
        column: u32,
        streams: &mut Vec<(u32, Stream)>,
        encodings: &mut Vec<ColumnEncoding>,
        statistics: &mut Vec<ColumnStatistics>,
    ) -> u32 {
        encodings.push(self.column_encoding());
        streams.extend(self.finish().into_iter().map(|s| (column, s)));
        statistics.push(ColumnStatistics::placeholder());
        finish_children(
            &mut self.children,
            column + 1,
            streams,
            encodings,
            statistics,
        )
    }
}

/// LIST (one child: the elements) and MAP (two children: keys, then values): a PRESENT stream,
/// a LENGTH stream with each present row's entry count, and the children's entries of the
/// present rows, in order.
pub struct RepeatedColumnEncoder {
    present: PresentStream,
    lengths: RleV2Encoder<i64, UnsignedEncoding>,
    children: Vec<Box<dyn ColumnStripeEncoder>>,
}

impl RepeatedColumnEncoder {
    /// `children`: the element encoder of a LIST, or the key and value encoders of a MAP.
    pub fn new(children: Vec<Box<dyn ColumnStripeEncoder>>) -> Self {
        Self {
            present: PresentStream::default(),
            lengths: RleV2Encoder::new(),
            children,
        }
    }
}

impl EstimateMemory for RepeatedColumnEncoder {
    fn estimate_memory_size(&self) -> usize {
        self.present.estimate_memory_size()
            + self.lengths.estimate_memory_size()
            + self
                .children
                .iter()
                .map(|c| c.estimate_memory_size())
                .sum::<usize>()
    }
}

impl ColumnStripeEncoder for RepeatedColumnEncoder {
    fn encode_array(&mut self, array: &ArrayRef) -> Result<()> {
        let (offsets, nulls, entries): (&OffsetBuffer<i32>, _, Vec<ArrayRef>) =
            if let Some(list) = array.as_list_opt::<i32>() {
                (list.offsets(), list.nulls(), vec![list.values().clone()])
            } else {
                let map = array.as_map();
                (
                    map.offsets(),
                    map.nulls(),
                    vec![map.keys().clone(), map.values().clone()],
                )
            };
        self.present.append(nulls, array.len());
        let is_present = |row: usize| nulls.is_none_or(|n| n.is_valid(row));
        // The entry ranges of the present rows, merged where adjacent.
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for row in 0..array.len() {
            if !is_present(row) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            self.lengths.write_one((end - start) as i64);
            match ranges.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ if start == end => {}
                _ => ranges.push((start, end)),
            }
        }
        for (entries, child) in entries.iter().zip(self.children.iter_mut()) {
            let values = match ranges.as_slice() {
                [] => entries.slice(0, 0),
                [(start, end)] => entries.slice(*start, end - start),
                many => {
                    let slices: Vec<ArrayRef> = many
                        .iter()
                        .map(|(start, end)| entries.slice(*start, end - start))
                        .collect();
                    let slices: Vec<&dyn Array> = slices.iter().map(|a| a.as_ref()).collect();
                    compute::concat(&slices).context(ConvertRecordBatchSnafu)?
                }
            };
            child.encode_array(&values)?;
        }
        Ok(())
    }

    fn column_encoding(&self) -> ColumnEncoding {
        ColumnEncoding::DirectV2
    }

    fn finish(&mut self) -> Vec<Stream> {
        let mut streams = vec![Stream {
            kind: StreamType::Length,
            bytes: self.lengths.take_inner(),
        }];
        streams.extend(self.present.finish());
        streams
    }

    fn finish_tree(
        &mut self,
        column: u32,
        streams: &mut Vec<(u32, Stream)>,
        encodings: &mut Vec<ColumnEncoding>,
        statistics: &mut Vec<ColumnStatistics>,
    ) -> u32 {
        encodings.push(self.column_encoding());
        streams.extend(self.finish().into_iter().map(|s| (column, s)));
        statistics.push(ColumnStatistics::placeholder());
        finish_children(
            &mut self.children,
            column + 1,
            streams,
            encodings,
            statistics,
        )
    }
}

/// DECIMAL (DIRECT_V2): DATA holds each unscaled value as a zigzag base-128 varint, SECONDARY
/// the scale of each value (always the column's scale here).
pub struct DecimalColumnEncoder {
    present: PresentStream,
    data: BytesMut,
    scales: RleV2Encoder<i32, SignedEncoding>,
    scale: i32,
}

impl DecimalColumnEncoder {
    pub fn new(scale: i8) -> Self {
        Self {
            present: PresentStream::default(),
            data: BytesMut::new(),
            scales: RleV2Encoder::new(),
            scale: scale as i32,
        }
    }
}

impl EstimateMemory for DecimalColumnEncoder {
    fn estimate_memory_size(&self) -> usize {
        self.present.estimate_memory_size() + self.data.len() + self.scales.estimate_memory_size()
    }
}

impl ColumnStripeEncoder for DecimalColumnEncoder {
    fn encode_array(&mut self, array: &ArrayRef) -> Result<()> {
        let array = array.as_primitive::<Decimal128Type>();
        self.present.append(array.nulls(), array.len());
        for row in 0..array.len() {
            if array.is_valid(row) {
                write_varint_zigzagged::<i128, SignedEncoding>(&mut self.data, array.value(row));
                self.scales.write_one(self.scale);
            }
        }
        Ok(())
    }

    fn column_encoding(&self) -> ColumnEncoding {
        ColumnEncoding::DirectV2
    }

    fn finish(&mut self) -> Vec<Stream> {
        let mut streams = vec![
            Stream {
                kind: StreamType::Data,
                bytes: std::mem::take(&mut self.data).freeze(),
            },
            Stream {
                kind: StreamType::Secondary,
                bytes: self.scales.take_inner(),
            },
        ];
        streams.extend(self.present.finish());
        streams
    }
}
