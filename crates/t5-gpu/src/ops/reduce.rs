//! Reductions of a step's logits on the device, so that a search reads back a few words per row:
//! argmax (`shaders/argmax.wgsl`) and top-k with the log-sum-exp parts (`shaders/topk.wgsl`).

use t5_core::backend::TopKRows;

use crate::kernels::{KernelKey, Params};
use crate::{Gpu, GpuResult, GpuTensor};

struct ArgmaxParams {
    rows: u32,
    cols: u32,
    n_suppress: u32,
}

impl Params for ArgmaxParams {
    fn words(&self) -> [u32; 8] {
        [self.rows, self.cols, self.n_suppress, 0, 0, 0, 0, 0]
    }
}

struct TopKParams {
    rows: u32,
    cols: u32,
    k: u32,
    n_suppress: u32,
    /// ids gathered per row
    g: u32,
}

impl Params for TopKParams {
    fn words(&self) -> [u32; 8] {
        [self.rows, self.cols, self.k, self.n_suppress, self.g, 0, 0, 0]
    }
}

impl Gpu {
    /// Argmax of each row on the GPU; only one id per row comes back. `suppress`: ids treated as
    /// -inf (EOS under `min_new_tokens`).
    pub async fn argmax_rows_async(&self, x: &GpuTensor, suppress: &[u32]) -> GpuResult<Vec<u32>> {
        let (rows, cols) = (x.rows(), x.cols());
        let sup = self.upload_mask(suppress);
        let out = self.alloc(rows as u64 * 4);
        let params = ArgmaxParams { rows: rows as u32, cols: cols as u32, n_suppress: suppress.len() as u32 };
        self.dispatch(KernelKey::Argmax, &params, &[x.buf.raw(), sup.raw(), out.raw()], (rows as u32, 1, 1));
        let bytes = self.read_bytes(out.raw(), rows as u64 * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Each row's `k` largest values with their ids, its log-sum-exp parts and its values at the ids `gather`
    /// names (`[rows, g]`), on the GPU ([`TopKRows`]): `2k + 3 + g` words per row come back in one read, not the row.
    pub async fn top_k_rows_async(&self, x: &GpuTensor, k: usize, suppress: &[u32], gather: &[u32]) -> GpuResult<TopKRows> {
        let (rows, cols) = (x.rows(), x.cols());
        let g = t5_core::backend::gather_width(gather.len(), rows);
        let stride = 2 * k + 3 + g;
        let sup = self.upload_mask(suppress);
        let ids = self.upload_u32(gather); // at least one word: an empty binding is not allowed
        let out = self.alloc((rows * stride) as u64 * 4);
        let params = TopKParams { rows: rows as u32, cols: cols as u32, k: k as u32, n_suppress: suppress.len() as u32, g: g as u32 };
        self.dispatch(KernelKey::TopK, &params, &[x.buf.raw(), sup.raw(), ids.raw(), out.raw()], (rows as u32, 1, 1));
        let bytes = self.read_bytes(out.raw(), (rows * stride) as u64 * 4).await?;
        let w: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut t = TopKRows::empty(rows, k, gather[..rows * g].to_vec());
        for row in w.chunks(stride) {
            t.values.extend(row[..k].iter().map(|&b| f32::from_bits(b)));
            t.ids.extend_from_slice(&row[k..2 * k]);
            t.max.push(f32::from_bits(row[2 * k]));
            t.sum_exp.push(f32::from_bits(row[2 * k + 1]) as f64);
            t.kept_sum_exp.push(f32::from_bits(row[2 * k + 2]) as f64);
            t.gathered.extend(row[2 * k + 3..].iter().map(|&b| f32::from_bits(b)));
        }
        Ok(t)
    }
}
