//! Resident weights: a weight `[out, in]` in its storage form (t5-core's [`WeightDtype`]: f32, float16
//! packed two per u32, q8 / q4 packed with their scales), split into row chunks that each fit one storage
//! binding. Uploading a weight of a form compiles that form's matmul kernels (at load time, never in the
//! middle of a step).

use std::rc::Rc;

use t5_core::{QWeight, Tensor, WeightDtype};

use crate::device::matmul_keys;
use crate::kernels::{KernelKey, WeightForm};
use crate::pool::Buf;
use crate::Gpu;

/// A weight `[out, in]` split into row chunks that each fit one storage binding.
pub struct GpuWeight {
    /// (first row, rows, buffer)
    pub(crate) chunks: Vec<(usize, usize, Rc<Buf>)>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// F32, F16 (packed two per u32; even `in` only), Q8, Q4 (see [`Gpu::upload_quant`]); bf16 is resident
    /// dequantized (F32)
    pub(crate) dtype: WeightDtype,
    /// resident bytes (codes, scales, zero points of a quantized weight as in [`QWeight::bytes`])
    pub(crate) bytes: usize,
}

impl Gpu {
    /// How the matmul kernels read `w`: vec4 loads when its rows are a multiple of 4 elements; float16
    /// through `shader-f16` when the device uses it.
    pub(crate) fn weight_form(&self, w: &GpuWeight) -> WeightForm {
        let vec4 = w.cols % 4 == 0;
        WeightForm { dtype: w.dtype, shader_f16: w.dtype == WeightDtype::F16 && vec4 && self.inner.shader_f16, vec4 }
    }

    /// Compile the kernels that read a weight of `w`'s form.
    fn prepare(&self, w: &GpuWeight) {
        for key in matmul_keys(self.weight_form(w), self.inner.software) {
            self.kernel(key);
        }
        self.kernel(KernelKey::Embedding(w.dtype));
    }

    pub(crate) fn upload_f32(&self, w: &Tensor) -> GpuWeight {
        self.upload_rows(w.rows(), w.cols(), bytemuck::cast_slice(&w.data), 4, WeightDtype::F32)
    }

    /// float16 weights stay float16 on the GPU (packed two per u32, half the bytes); an odd input
    /// dimension cannot be packed by rows and is kept as f32 (same values). q8 / q4 stay packed
    /// (dequantized in the kernels' loads, see [`Gpu::upload_quant`]); bf16 is dequantized.
    pub(crate) fn upload_qweight(&self, w: QWeight) -> GpuWeight {
        match w {
            QWeight::F16 { n, k, data } if k % 2 == 0 => self.upload_rows(n, k, bytemuck::cast_slice(&data), 2, WeightDtype::F16),
            QWeight::F32 { n, k, data } => self.upload_f32(&Tensor::new(vec![n, k], data)),
            w @ (QWeight::Q8 { .. } | QWeight::Q4 { .. }) => self.upload_quant(w),
            other => self.upload_f32(&other.to_tensor()),
        }
    }

    /// Upload a `[rows, cols]` weight whose elements are `elem` bytes each (4: f32, 2: packed float16),
    /// split by rows into chunks of at most `max_chunk_bytes`.
    fn upload_rows(&self, rows: usize, cols: usize, bytes: &[u8], elem: u64, dtype: WeightDtype) -> GpuWeight {
        let row_bytes = (cols as u64 * elem).max(4);
        let mut per = ((self.inner.max_chunk_bytes / row_bytes) as usize).max(1);
        if dtype == WeightDtype::F16 && row_bytes % 4 != 0 {
            per = per.max(2) & !1; // whole u32 words per chunk
        }
        let mut chunks = Vec::new();
        let mut r0 = 0;
        while r0 < rows {
            let n = per.min(rows - r0);
            let start = r0 * cols * elem as usize;
            let len = n * cols * elem as usize;
            chunks.push((r0, n, self.resident(&bytes[start..start + len])));
            r0 += n;
        }
        let w = GpuWeight { chunks, rows, cols, dtype, bytes: rows * cols * elem as usize };
        self.prepare(&w);
        w
    }

    /// Upload a [`QWeight::Q8`] / [`QWeight::Q4`] packed, split by rows into chunks of at most
    /// `max_chunk_bytes`. Each chunk is one u32 array: a 4-word header (word offsets of the scales and of
    /// the zero points, log2 of the weights per scale), the codes of its rows (int8 four per u32 / t5-core's
    /// nibble layout eight per u32), its rows' scales, its rows' zero points (q4); the kernels' `wload` /
    /// `wload4` (shaders/weights/q8.wgsl, q4.wgsl) dequantize as [`QWeight::dequantize_row`] does. A form
    /// the kernels do not cover (scales not one per row or per block dividing the row) is dequantized to
    /// f32 instead.
    pub(crate) fn upload_quant(&self, w: QWeight) -> GpuWeight {
        let (dtype, n, k, group, codes, row_code_bytes, scales, zeros): (WeightDtype, usize, usize, usize, &[u8], usize, &[f32], &[f32]) = match &w {
            QWeight::Q8 { n, k, codes, scales } => {
                let group = t5_core::dtype::quant::q8_group(*n, *k, scales.len());
                (WeightDtype::Q8, *n, *k, group, bytemuck::cast_slice(codes), *k, scales, &[])
            }
            QWeight::Q4 { n, k, group, packed, scales, zeros } => (WeightDtype::Q4, *n, *k, *group, packed, *k / 2, scales, zeros),
            _ => unreachable!("upload_quant takes q8 / q4"),
        };
        let q4 = dtype == WeightDtype::Q4;
        let ok = n > 0 && k > 0 && group > 0 && k % group == 0 && scales.len() == n * (k / group) && codes.len() == n * row_code_bytes && (!q4 || (k % 64 == 0 && zeros.len() == scales.len()));
        // the kernels find an element's scale by a shift: blocks of the largest power of two dividing the
        // group (the group itself for GGUF's 32 and torchao's 128, 256 for a q8 row of 768 weights), each
        // group's scale / zero point repeated over its blocks; tiny odd rows (block < 16) stay f32
        let block = if ok { 1usize << group.trailing_zeros() } else { 0 };
        if block < 16 {
            return self.upload_f32(&w.to_tensor());
        }
        let reps = group / block;
        let expand = |v: &[f32]| -> Vec<u32> { v.iter().flat_map(|x| std::iter::repeat_n(x.to_bits(), reps)).collect() };
        let spr = k / block; // scales per row, as stored
        let row_bytes = (row_code_bytes + spr * 4 * if q4 { 2 } else { 1 }) as u64;
        // element indices of a chunk stay far below 2^32 (q4: two per byte)
        let max = self.inner.max_chunk_bytes.min(1 << 30);
        let per = ((max.saturating_sub(20) / row_bytes) as usize).max(1);
        let mut chunks = Vec::new();
        let mut r0 = 0;
        while r0 < n {
            let nr = per.min(n - r0);
            let mut words: Vec<u32> = vec![0; 4];
            let cb = &codes[r0 * row_code_bytes..(r0 + nr) * row_code_bytes];
            words.extend(cb.chunks(4).map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(b)
            }));
            words[0] = words.len() as u32;
            let (g0, g1) = (r0 * (k / group), (r0 + nr) * (k / group));
            words.extend(expand(&scales[g0..g1]));
            words[1] = words.len() as u32;
            if q4 {
                words.extend(expand(&zeros[g0..g1]));
            }
            words[2] = block.trailing_zeros();
            chunks.push((r0, nr, self.resident(bytemuck::cast_slice(&words))));
            r0 += nr;
        }
        // resident: codes + scales (+ zero points) as stored (QWeight::bytes), plus any repeated scales
        let bytes = n * row_code_bytes + n * spr * 4 * if q4 { 2 } else { 1 };
        let w = GpuWeight { chunks, rows: n, cols: k, dtype, bytes };
        self.prepare(&w);
        w
    }
}
