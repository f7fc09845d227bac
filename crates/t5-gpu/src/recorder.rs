//! Command recording: every op only records GPU work into one command encoder (one compute pass between
//! copies); kernel parameters go through one uniform arena with dynamic offsets, written once per submit;
//! bind groups are cached by (kernel, buffers); everything recorded is submitted once, when a result is
//! read ([`Gpu::flush`]). Reads copy to a pooled mappable buffer and await `mapAsync`.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::rc::Rc;

use t5_core::Tensor;

use crate::fusion::{NormPending, Pending};
use crate::kernels::{Kernel, KernelKey, Params, PARAMS_SIZE};
use crate::pool::round_size;
use crate::{Gpu, GpuError, GpuResult, GpuTensor};

/// Parameter slots in the uniform arena (a batch with more is submitted early).
pub(crate) const PARAM_SLOTS: u64 = 4096;
/// Bind groups kept (the cache starts over when full).
const BIND_GROUP_CACHE: usize = 8192;

/// What is being recorded: the encoder and its open pass, the parameters of the batch, the bind-group
/// cache, and the ops held back for fusion.
#[derive(Default)]
pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    slots: u64,
    /// Bind groups by (kernel, storage buffers): the parameters come through one uniform arena with
    /// dynamic offsets and activations from the pool, so a decode step of a shape seen before binds the
    /// same buffers and creates no bind group.
    bind_groups: HashMap<(usize, Vec<wgpu::Buffer>), wgpu::BindGroup>,
    /// The last matmul, not recorded yet (see [`Pending`]).
    pub pending: Option<Pending>,
    pub pending_norm: Option<NormPending>,
}

impl Recorder {
    /// Nothing recorded since the last submit.
    pub fn idle(&self) -> bool {
        self.encoder.is_none() && self.pending.is_none() && self.pending_norm.is_none()
    }

    /// Drop everything recorded and cached (dispose).
    pub fn clear(&mut self) {
        self.pending = None;
        self.pending_norm = None;
        self.pass = None;
        self.encoder = None;
        self.bind_groups.clear();
    }
}

/// Split `n` workgroups over x and y so that neither exceeds the per-dimension limit.
pub(crate) fn grid(n: u32, max: u32) -> (u32, u32) {
    if n <= max { (n.max(1), 1) } else { (max, n.div_ceil(max)) }
}

impl Gpu {
    pub(crate) fn grid(&self, n: u32) -> (u32, u32) {
        grid(n, self.inner.limits.max_compute_workgroups_per_dimension)
    }

    pub(crate) fn kernel(&self, key: KernelKey) -> Rc<Kernel> {
        self.inner.kernels.get(&self.inner.device, key)
    }

    /// Record one dispatch of `key` with its parameters and storage buffers (after what is held back).
    pub(crate) fn dispatch(&self, key: KernelKey, params: &dyn Params, bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        self.record_pending();
        self.record(key, params, bufs, groups);
    }

    pub(crate) fn record(&self, key: KernelKey, params: &dyn Params, bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        if self.inner.rec.borrow().slots >= PARAM_SLOTS {
            self.flush();
        }
        let k = self.kernel(key);
        let inner = &self.inner;
        let mut rec = inner.rec.borrow_mut();
        let offset = rec.slots * inner.param_align;
        rec.params.resize(offset as usize, 0);
        rec.params.extend_from_slice(bytemuck::cast_slice(&params.words()));
        rec.slots += 1;
        let bkey = (Rc::as_ptr(&k) as usize, bufs.iter().map(|b| (*b).clone()).collect::<Vec<_>>());
        let bg = match rec.bind_groups.get(&bkey) {
            Some(bg) => bg.clone(),
            None => {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &inner.params_buf, offset: 0, size: NonZeroU64::new(PARAMS_SIZE) }),
                }];
                for (i, b) in bufs.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
                }
                let bg = inner.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &k.layout, entries: &entries });
                inner.stats.bind_groups_created.set(inner.stats.bind_groups_created.get() + 1);
                if rec.bind_groups.len() >= BIND_GROUP_CACHE {
                    rec.bind_groups.clear();
                }
                rec.bind_groups.insert(bkey, bg.clone());
                bg
            }
        };
        if rec.pass.is_none() {
            let device = &inner.device;
            let enc = rec.encoder.get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("t5") }));
            let pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None }).forget_lifetime();
            rec.pass = Some(pass);
        }
        let pass = rec.pass.as_mut().unwrap();
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &bg, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        inner.stats.dispatches.set(inner.stats.dispatches.get() + 1);
    }

    /// Record a buffer-to-buffer copy (ends the open compute pass).
    pub(crate) fn copy(&self, src: &wgpu::Buffer, src_off: u64, dst: &wgpu::Buffer, dst_off: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.record_pending();
        let mut rec = self.inner.rec.borrow_mut();
        rec.pass = None;
        let device = &self.inner.device;
        let enc = rec.encoder.get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("t5") }));
        enc.copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
    }

    /// Submit everything recorded so far as one command buffer (kernel parameters written just before
    /// it), then return the buffers released during the batch to the pool.
    pub fn flush(&self) {
        self.record_pending();
        let inner = &self.inner;
        let mut rec = inner.rec.borrow_mut();
        rec.pass = None;
        if let Some(enc) = rec.encoder.take() {
            if !rec.params.is_empty() {
                inner.queue.write_buffer(&inner.params_buf, 0, &rec.params);
            }
            inner.queue.submit([enc.finish()]);
            inner.stats.submits.set(inner.stats.submits.get() + 1);
        }
        rec.params.clear();
        rec.slots = 0;
        drop(rec);
        inner.pool.borrow_mut().batch_done();
    }

    /// Copy `bytes` of `src` to a mappable buffer, submit, and read it back.
    pub(crate) async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> GpuResult<Vec<u8>> {
        self.check()?;
        let words = bytes.div_ceil(4) * 4;
        let size = round_size(words);
        let staging = self.inner.pool.borrow_mut().take_staging(size);
        let staging = staging.unwrap_or_else(|| self.inner.create_buffer(size, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, "staging"));
        self.copy(src, 0, &staging, 0, words);
        self.flush();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        // natively this runs the callback; on the web it is a no-op and the browser calls back
        let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
        let mapped = rx.await;
        self.check()?;
        let failed = match mapped {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("mapAsync failed: {e}")),
            Err(_) => Some("mapAsync was cancelled".to_string()),
        };
        if let Some(msg) = failed {
            self.inner.destroy_buffer(staging);
            return Err(self.lost_or(msg));
        }
        let out = staging.get_mapped_range(0..words).map_err(|e| GpuError::Gpu(e.to_string()))?[..bytes as usize].to_vec();
        staging.unmap();
        self.inner.pool.borrow_mut().put_staging(size, staging);
        self.inner.stats.read_back.set(self.inner.stats.read_back.get() + bytes);
        Ok(out)
    }

    /// A tensor back on the host.
    pub async fn download_async(&self, t: &GpuTensor) -> GpuResult<Tensor> {
        let n = t.numel();
        if t.contiguous() {
            let bytes = self.read_bytes(t.buf.raw(), n as u64 * 4).await?;
            return Ok(Tensor::new(t.shape.clone(), bytemuck::pod_collect_to_vec(&bytes)));
        }
        let (b, s, d) = (t.shape[0], t.shape[1], t.shape[2]);
        let bytes = self.read_bytes(t.buf.raw(), (b * t.seq_cap * d) as u64 * 4).await?;
        let all: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut data = Vec::with_capacity(n);
        for r in 0..b {
            data.extend_from_slice(&all[r * t.seq_cap * d..(r * t.seq_cap + s) * d]);
        }
        Ok(Tensor::new(t.shape.clone(), data))
    }
}
