//! `impl Backend for Gpu`: each trait method is one op of `ops/` (numerics: the CPU backend's, op for
//! op). The sync reads block on `device.poll` natively and are unavailable in wasm, where reads are async
//! (the wasm bindings never call them).

use t5_core::backend::{AttentionMask, AttentionShape, Backend, TopKRows};
use t5_core::config::Activation;
use t5_core::{QWeight, Tensor, WeightDtype};

use crate::{Gpu, GpuTensor, GpuWeight};

impl Backend for Gpu {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;

    fn name(&self) -> &'static str {
        "webgpu"
    }

    fn upload(&self, t: Tensor) -> GpuTensor {
        let out = self.tensor(t.shape.clone());
        if !t.data.is_empty() {
            self.inner.queue.write_buffer(out.buf.raw(), 0, bytemuck::cast_slice(&t.data));
        }
        out
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn download(&self, t: &GpuTensor) -> Tensor {
        pollster::block_on(self.download_async(t)).unwrap_or_else(|e| panic!("GPU download: {e}"))
    }

    #[cfg(target_arch = "wasm32")]
    fn download(&self, _t: &GpuTensor) -> Tensor {
        unreachable!("GPU readback is asynchronous in wasm: use Gpu::download_async")
    }

    fn upload_weight(&self, w: Tensor) -> GpuWeight {
        self.upload_f32(&w)
    }

    fn upload_packed(&self, w: QWeight) -> GpuWeight {
        self.upload_qweight(w)
    }

    fn weight_dtype(&self, w: &GpuWeight) -> WeightDtype {
        w.dtype
    }

    fn weight_bytes(&self, w: &GpuWeight) -> usize {
        w.bytes
    }

    fn shape<'a>(&self, t: &'a GpuTensor) -> &'a [usize] {
        &t.shape
    }

    fn embedding(&self, table: &GpuWeight, ids: &[u32], shape: &[usize]) -> GpuTensor {
        self.embedding_op(table, ids, shape)
    }

    fn linear(&self, x: &GpuTensor, w: &GpuWeight) -> GpuTensor {
        self.linear_op(x, w)
    }

    fn rms_norm(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32) -> GpuTensor {
        self.norm_op(x, weight, eps, false)
    }

    fn rms_norm_half(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32) -> GpuTensor {
        self.norm_op(x, weight, eps, true)
    }

    fn add_assign(&self, x: &mut GpuTensor, y: &GpuTensor) {
        self.add_assign_op(x, y)
    }

    fn scale(&self, x: &mut GpuTensor, s: f32) {
        self.scale_op(x, s)
    }

    fn activate(&self, x: &mut GpuTensor, act: Activation) {
        self.activate_op(x, act, false)
    }

    fn activate_half(&self, x: &mut GpuTensor, act: Activation) {
        self.activate_op(x, act, true)
    }

    fn gated_activate(&self, gate: &mut GpuTensor, up: &GpuTensor, act: Activation) {
        self.gated_op(gate, up, act, false)
    }

    fn gated_activate_half(&self, gate: &mut GpuTensor, up: &GpuTensor, act: Activation) {
        self.gated_op(gate, up, act, true)
    }

    fn round_half(&self, x: &mut GpuTensor) {
        self.round_half_op(x)
    }

    fn clamp_half(&self, x: &mut GpuTensor) {
        self.clamp_half_op(x)
    }

    fn attention(&self, q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, mask: AttentionMask<'_>, s: AttentionShape) -> GpuTensor {
        self.attention_op(q, k, v, bias, mask, s)
    }

    fn cat_seq(&self, a: &GpuTensor, b: &GpuTensor) -> GpuTensor {
        self.cat_seq_op(a, b)
    }

    fn add_bias(&self, x: &mut GpuTensor, bias: &GpuTensor) {
        self.add_bias_op(x, bias)
    }

    fn tanh(&self, x: &mut GpuTensor) {
        self.tanh_op(x)
    }

    fn gather_positions(&self, x: &GpuTensor, positions: &[usize]) -> GpuTensor {
        self.gather_positions_op(x, positions)
    }

    fn last_position(&self, x: &GpuTensor) -> GpuTensor {
        self.last_position_op(x)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn argmax_rows(&self, x: &GpuTensor, suppress: &[u32]) -> Vec<u32> {
        pollster::block_on(self.argmax_rows_async(x, suppress)).unwrap_or_else(|e| panic!("GPU argmax: {e}"))
    }

    #[cfg(target_arch = "wasm32")]
    fn argmax_rows(&self, _x: &GpuTensor, _suppress: &[u32]) -> Vec<u32> {
        unreachable!("GPU readback is asynchronous in wasm: use Gpu::argmax_rows_async")
    }

    fn reduces_on_device(&self) -> bool {
        true
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn top_k_rows(&self, x: &GpuTensor, k: usize, suppress: &[u32], gather: &[u32]) -> TopKRows {
        pollster::block_on(self.top_k_rows_async(x, k, suppress, gather)).unwrap_or_else(|e| panic!("GPU top-k: {e}"))
    }

    #[cfg(target_arch = "wasm32")]
    fn top_k_rows(&self, _x: &GpuTensor, _k: usize, _suppress: &[u32], _gather: &[u32]) -> TopKRows {
        unreachable!("GPU readback is asynchronous in wasm: use Gpu::top_k_rows_async")
    }

    fn select_batch(&self, x: &GpuTensor, index: &[usize]) -> GpuTensor {
        self.select_batch_op(x, index)
    }

    fn reorder_batch(&self, x: &mut GpuTensor, index: &[usize], used: usize) {
        self.reorder_batch_op(x, index, used)
    }
}
