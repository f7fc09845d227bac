//! Streaming safetensors files tensor by tensor ([`ShardStream`]).

use super::budget::{check_model_fits, gib, stored_weight_bytes, MEMORY_RESERVE};
use super::store::{decode_f32, decode_f32_into, Entry, WeightStore};
use crate::config::T5Config;
use crate::dtype::quant::{quantize_q4_into, quantize_q8_into, Q4_GROUP};
use crate::dtype::{QWeight, WeightDtype};
use crate::error::{Result, T5Error};
use crate::names::{is_linear_weight, Stack, Weight};
use crate::pool;
use crate::tensor::Tensor;
use safetensors::tensor::Dtype;
use std::collections::HashMap;
use std::sync::Mutex;

/// What happens to one tensor of a streamed file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    /// kept as its raw bytes (norms, position bias, head weights, pre-quantized parts)
    Keep,
    /// converted to the requested storage form once complete
    Convert,
    /// never read by the model (`decoder.embed_tokens.weight` and, next to `shared.weight`,
    /// `encoder.embed_tokens.weight`: copies of the shared table)
    Skip,
}

/// A linear weight converted rows at a time as its bytes arrive (every storage form but fp16, whose
/// "any value beyond the f16 range keeps the whole tensor f32" rule needs the whole tensor): the
/// same values as [`QWeight::from_tensor`] on the whole tensor, since every form is row-local.
/// The weight's final buffers are made whole when its first byte arrives; up to [`BATCH_BYTES`] of
/// its rows are gathered, then converted across the stream's threads, each writing its own rows of
/// those buffers in place.
struct RowAcc {
    rows: Rows,
    /// rows written so far
    done: usize,
}

/// The buffers of a weight in its storage form ([`QWeight`]'s fields).
enum Rows {
    F32(Vec<f32>),
    BF16(Vec<u16>),
    Q8 { codes: Vec<i8>, scales: Vec<f32> },
    Q4 { packed: Vec<u8>, scales: Vec<f32>, zeros: Vec<f32> },
}

/// Some consecutive rows of a [`Rows`]: where one part of a batch is written.
enum Dest<'a> {
    F32(&'a mut [f32]),
    BF16(&'a mut [u16]),
    Q8 { codes: &'a mut [i8], scales: &'a mut [f32] },
    Q4 { packed: &'a mut [u8], scales: &'a mut [f32], zeros: &'a mut [f32] },
}

/// `len` zeros, or `None` when they cannot be allocated.
fn zeroed<T: Clone + Default>(len: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, T::default());
    Some(v)
}

impl RowAcc {
    /// `n` rows of `k` in `form`: `None` for fp16 (converted whole), `Some(Err(bytes))` when the
    /// buffers' `bytes` cannot be allocated.
    fn new(form: WeightDtype, n: usize, k: usize) -> Option<std::result::Result<RowAcc, usize>> {
        let groups = n * k / Q4_GROUP;
        let rows = match form {
            WeightDtype::F16 => return None,
            WeightDtype::F32 => zeroed(n * k).map(Rows::F32).ok_or(4 * n * k),
            WeightDtype::BF16 => zeroed(n * k).map(Rows::BF16).ok_or(2 * n * k),
            WeightDtype::Q8 => zeroed(n * k).zip(zeroed(n)).map(|(codes, scales)| Rows::Q8 { codes, scales }).ok_or(n * k + 4 * n),
            WeightDtype::Q4 => (zeroed(n * k / 2).zip(zeroed(groups)).zip(zeroed(groups)))
                .map(|((packed, scales), zeros)| Rows::Q4 { packed, scales, zeros })
                .ok_or(n * k / 2 + 8 * groups),
        };
        Some(rows.map(|rows| RowAcc { rows, done: 0 }))
    }

    /// Decode whole rows of raw bytes (`row_bytes` each, `dtype`) and write them converted after the
    /// rows done, cut into one contiguous part per thread (at most `threads`): each row is converted
    /// on its own, so the result is the same at any thread count.
    fn push_raw(&mut self, name: &str, dtype: Dtype, raw: &[u8], row_bytes: usize, k: usize, threads: usize) -> Result<()> {
        let rows = raw.len() / row_bytes;
        let dest = self.rows.dest(self.done, self.done + rows, k);
        let parts = threads.min(rows).max(1);
        let per = rows.div_ceil(parts);
        // every part's rows and decoded values made here, in order, not by the threads as they run:
        // the wasm heap's layout (and so its high-water mark) then does not depend on their timing
        let (mut work, mut rest) = (Vec::with_capacity(parts), Some(dest));
        for t in 0..parts {
            // rows lo..hi (the last parts may be empty: 5 rows on 4 threads are 2 + 2 + 1 + 0)
            let (lo, hi) = ((t * per).min(rows), ((t + 1) * per).min(rows));
            let (part, tail) = rest.take().map(|d| d.split_at(hi - lo, k)).unzip();
            let values = if matches!(part, Some(Dest::F32(_))) { Vec::new() } else { vec![0.0f32; (hi - lo) * k] };
            work.push(Mutex::new((part, values, &raw[lo * row_bytes..hi * row_bytes], Ok(()))));
            rest = tail;
        }
        pool::run(parts, parts, &|t| {
            let mut w = work[t].lock().unwrap_or_else(|e| e.into_inner());
            let (part, values, raw, res) = &mut *w;
            if let Some(part) = part.take() {
                *res = part.write(name, dtype, raw, values, k);
            }
        });
        for w in work {
            w.into_inner().unwrap_or_else(|e| e.into_inner()).3?;
        }
        self.done += rows;
        Ok(())
    }

    fn finish(self, n: usize, k: usize) -> QWeight {
        debug_assert_eq!(self.done, n);
        match self.rows {
            Rows::F32(data) => QWeight::F32 { n, k, data },
            Rows::BF16(data) => QWeight::BF16 { n, k, data },
            Rows::Q8 { codes, scales } => QWeight::Q8 { n, k, codes, scales },
            Rows::Q4 { packed, scales, zeros } => QWeight::Q4 { n, k, group: Q4_GROUP, packed, scales, zeros },
        }
    }
}

impl Rows {
    /// Rows `lo..hi` (of `k` values).
    fn dest(&mut self, lo: usize, hi: usize, k: usize) -> Dest<'_> {
        let all = match self {
            Rows::F32(d) => Dest::F32(d),
            Rows::BF16(d) => Dest::BF16(d),
            Rows::Q8 { codes, scales } => Dest::Q8 { codes, scales },
            Rows::Q4 { packed, scales, zeros } => Dest::Q4 { packed, scales, zeros },
        };
        all.split_at(lo, k).1.split_at(hi - lo, k).0
    }
}

impl<'a> Dest<'a> {
    /// The first `rows` rows, and the rest.
    fn split_at(self, rows: usize, k: usize) -> (Dest<'a>, Dest<'a>) {
        let g = k / Q4_GROUP;
        match self {
            Dest::F32(d) => {
                let (a, b) = d.split_at_mut(rows * k);
                (Dest::F32(a), Dest::F32(b))
            }
            Dest::BF16(d) => {
                let (a, b) = d.split_at_mut(rows * k);
                (Dest::BF16(a), Dest::BF16(b))
            }
            Dest::Q8 { codes, scales } => {
                let ((c0, c1), (s0, s1)) = (codes.split_at_mut(rows * k), scales.split_at_mut(rows));
                (Dest::Q8 { codes: c0, scales: s0 }, Dest::Q8 { codes: c1, scales: s1 })
            }
            Dest::Q4 { packed, scales, zeros } => {
                let (p, s, z) = (packed.split_at_mut(rows * k / 2), scales.split_at_mut(rows * g), zeros.split_at_mut(rows * g));
                (Dest::Q4 { packed: p.0, scales: s.0, zeros: z.0 }, Dest::Q4 { packed: p.1, scales: s.1, zeros: z.1 })
            }
        }
    }

    /// Decode `raw` (these rows, `dtype`) and write them converted: f32 in place, the other forms
    /// through `values` (sized by the caller).
    fn write(self, name: &str, dtype: Dtype, raw: &[u8], values: &mut [f32], k: usize) -> Result<()> {
        let decode = |out: &mut [f32]| decode_f32_into(name, dtype, raw, out);
        match self {
            Dest::F32(d) => decode(d)?,
            Dest::BF16(d) => {
                decode(values)?;
                d.iter_mut().zip(values.iter()).for_each(|(o, &v)| *o = half::bf16::from_f32(v).to_bits());
            }
            Dest::Q8 { codes, scales } => {
                decode(values)?;
                quantize_q8_into(values, k, codes, scales);
            }
            Dest::Q4 { packed, scales, zeros } => {
                decode(values)?;
                quantize_q4_into(values, k, Q4_GROUP, packed, scales, zeros);
            }
        }
        Ok(())
    }
}

struct Planned {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: u64,
    end: u64,
    action: Action,
}

/// One safetensors file pushed piece by piece into a [`WeightStore`]: the header is parsed as soon
/// as it has arrived (and the memory the file will take is checked against the limit before any
/// tensor data is read), then each tensor's bytes are gathered into a buffer of its own size and,
/// when complete, converted (linear weights: to the requested storage form) or kept. At most one
/// tensor's raw bytes (plus its f32 form while converting) are held beyond what the store keeps.
pub struct ShardStream {
    file: String,
    dtype: WeightDtype,
    limit: Option<u64>,
    /// the file's size when the caller knows it (checked against the header)
    size: Option<u64>,
    received: u64,
    head: Vec<u8>,
    header_len: Option<u64>,
    plan: Vec<Planned>,
    metadata: Option<HashMap<String, String>>,
    planned: bool,
    /// index of the tensor being gathered
    cur: usize,
    /// the tensor's bytes, or (conversion by rows) the current batch of rows
    buf: Vec<u8>,
    /// conversion by rows of the current tensor: the accumulator, a row's length in bytes and a batch's
    acc: Option<(RowAcc, usize, usize)>,
    /// threads a batch of rows is converted on (the calling thread included)
    threads: usize,
    /// raw bytes of rows gathered before they are converted (at least one row)
    batch_bytes: u64,
    /// bytes of data (after the header) consumed so far
    data_pos: u64,
    data_len: u64,
    /// the whole model's config, checked against the limit once the header shows a plain
    /// (not pre-quantized) checkpoint: set for a checkpoint's first file
    config_check: Option<(T5Config, bool)>,
}

/// Largest header accepted (as the safetensors crate: 100 MB).
const MAX_HEADER: u64 = 100_000_000;

/// Raw bytes of a tensor's rows gathered before they are converted together (at least one row), by default.
pub const BATCH_BYTES: u64 = 1 << 20;

/// Rows converted together in batches of `batch_bytes`, for rows of `row_bytes` in a tensor of `n` rows.
fn batch_rows(batch_bytes: u64, n: u64, row_bytes: u64) -> u64 {
    (batch_bytes / row_bytes.max(1)).clamp(1, n.max(1))
}

impl ShardStream {
    /// Start streaming the file `file` (its name is used in errors); `size`: its length when known;
    /// `dtype`: the storage form of the linear weights; `limit`: the memory the whole store may take.
    pub fn new(file: &str, size: Option<u64>, dtype: WeightDtype, limit: Option<u64>) -> Self {
        ShardStream {
            file: file.to_string(),
            dtype,
            limit,
            size,
            received: 0,
            head: Vec::new(),
            header_len: None,
            plan: Vec::new(),
            metadata: None,
            planned: false,
            cur: 0,
            buf: Vec::new(),
            acc: None,
            threads: 1,
            batch_bytes: BATCH_BYTES,
            data_pos: 0,
            data_len: 0,
            config_check: None,
        }
    }

    /// Convert each batch of rows on up to `threads` threads of the process's [`pool`] (the calling thread
    /// included; 1, the default, converts on the caller only). The stored values do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Gather `bytes` of a tensor's rows (at least one row) before converting them, instead of
    /// [`BATCH_BYTES`]: less memory while converting, fewer rows per thread. The stored values do not depend on it.
    /// (Under a memory limit the batch also shrinks, down to one row, where the limit leaves no room for it.)
    pub fn with_batch_bytes(mut self, bytes: u64) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Also check the whole model's size from `config` (in the requested dtype; with its decoder and,
    /// when untied, its LM head if `has_decoder`) once the header has arrived, unless the file is
    /// pre-quantized (its tensors then keep their stored forms, which the header check counts exactly).
    /// For the first file of a sharded checkpoint this speaks before any shard's data is read.
    pub fn with_config_check(mut self, config: &T5Config, has_decoder: bool) -> Self {
        self.config_check = Some((config.clone(), has_decoder));
        self
    }

    fn bad(&self, msg: impl Into<String>) -> T5Error {
        T5Error::BadWeights { file: Some(self.file.clone()), msg: msg.into() }
    }

    /// Whether the header has been read (and the memory check passed).
    pub fn header_done(&self) -> bool {
        self.planned
    }

    /// The next piece of the file.
    pub fn push(&mut self, store: &mut WeightStore, mut chunk: &[u8]) -> Result<()> {
        self.received += chunk.len() as u64;
        if let Some(size) = self.size {
            if self.received > size {
                return Err(self.bad(format!("more than the announced {size} bytes")));
            }
        }
        while !self.planned {
            // the 8-byte header length, then the JSON header
            let want = match self.header_len {
                None => 8,
                Some(n) => 8 + n,
            };
            let take = ((want - self.head.len() as u64) as usize).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if (self.head.len() as u64) < want {
                return Ok(());
            }
            if self.header_len.is_none() {
                let n = u64::from_le_bytes(self.head[..8].try_into().unwrap_or([0; 8]));
                if n == 0 || n > MAX_HEADER {
                    return Err(self.bad(format!("header length {n} is not a safetensors header")));
                }
                if let Some(size) = self.size {
                    if 8 + n > size {
                        return Err(self.bad(format!("header of {n} bytes is longer than the file ({size} bytes)")));
                    }
                }
                self.header_len = Some(n);
                continue;
            }
            self.plan(store)?;
        }
        self.push_data(store, chunk)
    }

    /// Parse the header, decide each tensor's fate, check the memory it will take.
    fn plan(&mut self, store: &mut WeightStore) -> Result<()> {
        let text = std::str::from_utf8(&self.head[8..]).map_err(|e| self.bad(format!("header is not UTF-8: {e}")))?;
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| self.bad(format!("header is not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| self.bad("header is not a JSON object"))?;
        let mut plan = Vec::with_capacity(obj.len());
        for (name, info) in obj {
            if name == "__metadata__" {
                let m: HashMap<String, String> = serde_json::from_value(info.clone()).map_err(|e| self.bad(format!("__metadata__: {e}")))?;
                self.metadata = Some(m);
                continue;
            }
            let dtype: Dtype = info
                .get("dtype")
                .cloned()
                .and_then(|d| serde_json::from_value(d).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or unknown dtype")))?;
            let shape: Vec<usize> = info
                .get("shape")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or bad shape")))?;
            let offs: (u64, u64) = info
                .get("data_offsets")
                .cloned()
                .and_then(|o| serde_json::from_value(o).ok())
                .ok_or_else(|| self.bad(format!("tensor {name:?}: missing or bad data_offsets")))?;
            let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| self.bad(format!("tensor {name:?}: shape overflows")))?;
            let bits = numel.checked_mul(dtype.bitsize() as u64).ok_or_else(|| self.bad(format!("tensor {name:?}: shape overflows")))?;
            if bits % 8 != 0 || offs.1 < offs.0 || offs.1 - offs.0 != bits / 8 {
                return Err(self.bad(format!("tensor {name:?}: data_offsets {offs:?} do not match its dtype and shape")));
            }
            plan.push(Planned { name: name.clone(), dtype, shape, start: offs.0, end: offs.1, action: Action::Keep });
        }
        plan.sort_by_key(|p| (p.start, p.end));
        let mut at = 0u64;
        for p in &plan {
            if p.start != at {
                return Err(self.bad(format!("tensor {:?}: data_offsets leave a gap or overlap", p.name)));
            }
            at = p.end;
        }
        self.data_len = at;
        if let Some(size) = self.size {
            let header = self.head.len() as u64;
            if header + at != size {
                return Err(self.bad(format!("header describes {} bytes of data but the file has {}", at, size.saturating_sub(header))));
            }
        }
        let prequantized = plan.iter().any(|p| p.name.ends_with(crate::dtype::quant::QWEIGHT_SUFFIX))
            || self.metadata.as_ref().is_some_and(|m| m.contains_key(crate::dtype::quant::METADATA_KEY));
        if let (Some((cfg, dec)), false) = (&self.config_check, prequantized) {
            check_model_fits(cfg, *dec, *dec && !cfg.tie_word_embeddings, self.dtype, self.limit)?;
        }
        let names: std::collections::HashSet<String> = plan.iter().map(|p| p.name.clone()).collect();
        let mut needed = store.resident_bytes();
        let mut transient = 0u64;
        // tensors converted by rows: (rows, row bytes, k)
        let mut by_rows: Vec<(u64, u64, u64)> = Vec::new();
        let float = |d: Dtype| matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64);
        for p in &mut plan {
            if store.contains(&p.name) {
                return Err(self.bad(format!("tensor {:?} appears in two shards", p.name)));
            }
            let prefix = if p.name.starts_with("transformer.") { "transformer." } else { "" };
            let base = &p.name[prefix.len()..];
            let shared = format!("{prefix}{}", Weight::Shared.hf_name());
            let shared_here = names.contains(&shared) || store.contains(&shared);
            let w = Weight::from_hf(base);
            p.action = if w == Some(Weight::EmbedTokens(Stack::Decoder)) || (w == Some(Weight::EmbedTokens(Stack::Encoder)) && shared_here) {
                Action::Skip
            } else if is_linear_weight(&p.name) && p.shape.len() == 2 && float(p.dtype) {
                Action::Convert
            } else {
                Action::Keep
            };
            let raw = p.end - p.start;
            match p.action {
                Action::Skip => {}
                Action::Keep => needed += raw,
                Action::Convert => {
                    let (n, k) = (p.shape[0] as u64, p.shape[1] as u64);
                    let stored = stored_weight_bytes(&p.name, n, k, self.dtype);
                    needed += stored;
                    if self.dtype.storage_for(&p.name, k as usize) == WeightDtype::F16 {
                        // fp16 converts whole tensors: the raw bytes and their f32 form
                        transient = transient.max(raw + n * k * 4);
                    } else {
                        by_rows.push((n, raw / n.max(1), k));
                    }
                }
            }
            if p.action == Action::Keep {
                transient = transient.max(raw);
            }
        }
        // a batch of rows at a time (its raw bytes, their f32 form and codes: at most 16 bytes a weight); under a
        // tight limit the batches shrink (down to one row) before the load is refused
        let rows_transient = |batch_bytes: u64| by_rows.iter().map(|&(n, row, k)| batch_rows(batch_bytes, n, row) * k * 16).max().unwrap_or(0);
        if let Some(limit) = self.limit {
            while self.batch_bytes > 1 && needed + transient.max(rows_transient(self.batch_bytes)) + MEMORY_RESERVE > limit {
                self.batch_bytes /= 2;
            }
        }
        let transient = transient.max(rows_transient(self.batch_bytes));
        if let Some(limit) = self.limit {
            let total = needed + transient + MEMORY_RESERVE;
            if total > limit {
                return Err(T5Error::ModelTooLarge(format!(
                    "{}: its tensors take {} as {} (with what is already loaded), plus {} while one converts, more than the memory limit of {} ({} kept for the engine); {}",
                    self.file,
                    gib(needed),
                    self.dtype.name(),
                    gib(transient),
                    gib(limit),
                    gib(MEMORY_RESERVE),
                    if self.dtype == WeightDtype::Q4 { "no storage form fits".to_string() } else { "load it with a smaller dtype (\"q8\" or \"q4\")".to_string() }
                )));
            }
        }
        self.plan = plan;
        self.planned = true;
        self.head = Vec::new();
        if let Some(m) = self.metadata.take() {
            store.stream_metadata.push(m);
        }
        self.start_tensor(store)
    }

    /// Prepare the buffer of the tensor at `cur`, finishing empty tensors at once.
    fn start_tensor(&mut self, store: &mut WeightStore) -> Result<()> {
        while self.cur < self.plan.len() {
            let p = &self.plan[self.cur];
            let len = p.end - p.start;
            if len > 0 {
                let len = usize::try_from(len).map_err(|_| self.bad(format!("tensor {:?} is larger than this platform can address", p.name)))?;
                let too_big = |what: usize| T5Error::ModelTooLarge(format!("{}: no memory left for tensor {:?} ({what} bytes)", self.file, p.name));
                self.buf = Vec::new();
                self.acc = None;
                if p.action == Action::Convert {
                    let (n, k) = (p.shape[0], p.shape[1]);
                    if let Some(acc) = RowAcc::new(self.dtype.storage_for(&p.name, k), n, k) {
                        let acc = acc.map_err(too_big)?;
                        let row = len / n;
                        let batch = batch_rows(self.batch_bytes, n as u64, row as u64) as usize * row;
                        self.acc = Some((acc, row, batch));
                        self.buf.try_reserve_exact(batch).map_err(|_| too_big(batch))?;
                        return Ok(());
                    }
                }
                if p.action != Action::Skip {
                    self.buf.try_reserve_exact(len).map_err(|_| too_big(len))?;
                }
                return Ok(());
            }
            self.finish_tensor(store)?;
        }
        Ok(())
    }

    fn push_data(&mut self, store: &mut WeightStore, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            if self.cur >= self.plan.len() {
                return Err(self.bad(format!("more bytes than the header's {} bytes of data", self.data_len)));
            }
            let p = &self.plan[self.cur];
            let mut left = (p.end - self.data_pos) as usize;
            if let Some((_, _, batch)) = &self.acc {
                left = left.min(batch - self.buf.len());
            }
            let take = left.min(chunk.len());
            if p.action != Action::Skip {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.data_pos += take as u64;
            chunk = &chunk[take..];
            if let Some((acc, row, batch)) = &mut self.acc {
                if self.buf.len() == *batch || self.data_pos == p.end {
                    acc.push_raw(&p.name, p.dtype, &self.buf, *row, p.shape[1], self.threads)?;
                    self.buf.clear();
                }
            }
            if self.data_pos == p.end {
                self.finish_tensor(store)?;
                self.start_tensor(store)?;
            }
        }
        Ok(())
    }

    /// The tensor at `cur` is complete: convert or keep it.
    fn finish_tensor(&mut self, store: &mut WeightStore) -> Result<()> {
        let p = &self.plan[self.cur];
        let bytes = std::mem::take(&mut self.buf);
        self.cur += 1;
        if p.action == Action::Skip {
            return Ok(());
        }
        if store.contains(&p.name) {
            return Err(self.bad(format!("tensor {:?} appears in two shards", p.name)));
        }
        store.names.push(p.name.clone());
        match p.action {
            Action::Convert => {
                let (n, k) = (p.shape[0], p.shape[1]);
                let q = match self.acc.take() {
                    Some((acc, _, _)) => acc.finish(n, k),
                    None => {
                        let data = decode_f32(&p.name, p.dtype, &bytes)?;
                        drop(bytes);
                        QWeight::from_tensor(Tensor::new(vec![n, k], data), self.dtype.storage_for(&p.name, k))
                    }
                };
                store.converted_meta.insert(p.name.clone(), (p.shape.clone(), p.dtype));
                store.converted.lock().unwrap_or_else(|e| e.into_inner()).insert(p.name.clone(), q);
            }
            _ => {
                let (shard, end) = (store.shards.len(), bytes.len());
                store.shards.push(bytes);
                store.entries.insert(p.name.clone(), Entry { shard, dtype: p.dtype, shape: p.shape.clone(), start: 0, end, ggml: None });
                // a pre-quantized weight whose parts are now all here: assembled, its codes held once
                store.adopt_packed(&p.name);
            }
        }
        Ok(())
    }

    /// The file has ended: every tensor must be complete.
    pub fn finish(self, _store: &mut WeightStore) -> Result<()> {
        if !self.planned {
            return Err(self.bad(format!("truncated: the file ended after {} bytes, inside its header", self.received)));
        }
        if self.cur < self.plan.len() || self.data_pos != self.data_len {
            return Err(self.bad(format!(
                "truncated: the file ended after {} bytes, inside tensor {:?}",
                self.received,
                self.plan.get(self.cur).map(|p| p.name.as_str()).unwrap_or("")
            )));
        }
        if let Some(size) = self.size {
            if self.received != size {
                return Err(self.bad(format!("{} bytes arrived, {size} announced", self.received)));
            }
        }
        Ok(())
    }
}
