//! Buffers: pooled activation buffers ([`Buf`], [`GpuTensor`]), resident weight buffers, staging buffers
//! for reads, and the small u32 uploads (ids, masks).
//!
//! Activations come from a pool keyed by size; a buffer released while its batch of commands is still
//! being recorded returns to the pool only after that batch is submitted, so a reused buffer is never
//! aliased inside one command buffer. Free buffers are handed out in a fixed order (the smallest handle
//! first) so that a step of a shape seen before gets the same buffers and its cached bind groups.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::rc::{Rc, Weak};

use crate::device::Inner;
use crate::Gpu;

/// Counts live GPU buffers (created minus destroyed); survives the backend for `dispose` checks.
#[derive(Clone, Default)]
pub struct BufferCounter(pub(crate) Rc<Cell<isize>>);

impl BufferCounter {
    pub fn live(&self) -> isize {
        self.0.get()
    }
    pub(crate) fn add(&self, n: isize) {
        self.0.set(self.0.get() + n);
    }
}

/// A GPU buffer owned by a tensor or weight. Dropping a pooled one hands it back to the pool (after the
/// current batch is submitted), or destroys it when the backend is gone.
pub struct Buf {
    buf: Option<wgpu::Buffer>,
    size: u64,
    owner: Weak<Inner>,
    counter: BufferCounter,
    /// KV-cache buffers: sequence positions written so far (appends go in place only at the end).
    pub(crate) used_seq: Cell<usize>,
    pooled: bool,
}

impl Buf {
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("live buffer")
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        match self.owner.upgrade() {
            Some(inner) if self.pooled && !inner.disposed.get() => inner.pool.borrow_mut().release(self.size, buf),
            _ => {
                buf.destroy();
                self.counter.add(-1);
            }
        }
    }
}

/// An activation on the GPU: f32, row-major. 3-D tensors made by `cat_seq` keep `seq_cap`
/// positions per batch row (the KV cache's spare capacity); every other tensor is contiguous.
#[derive(Clone)]
pub struct GpuTensor {
    pub(crate) buf: Rc<Buf>,
    pub(crate) shape: Vec<usize>,
    pub(crate) seq_cap: usize,
}

impl GpuTensor {
    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub(crate) fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }
    pub(crate) fn rows(&self) -> usize {
        let c = self.cols();
        if c == 0 { 0 } else { self.numel() / c }
    }
    pub(crate) fn contiguous(&self) -> bool {
        self.shape.len() != 3 || self.seq_cap == self.shape[1]
    }
}

/// The backend's own buffers: free pooled ones by size, those released during the batch being
/// recorded, staging buffers for reads, recently uploaded masks.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, BTreeSet<wgpu::Buffer>>,
    pending_free: Vec<(u64, wgpu::Buffer)>,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Recently uploaded u32 masks / ids, reused when the same values come again (the encoder mask each
    /// decode step).
    pub masks: Vec<(Vec<u32>, Rc<Buf>)>,
}

impl Pool {
    fn release(&mut self, size: u64, buf: wgpu::Buffer) {
        self.pending_free.push((size, buf));
    }

    /// The batch that could reference the buffers released during it was submitted (or nothing was
    /// recorded since): they are free.
    pub fn batch_done(&mut self) {
        for (size, b) in self.pending_free.drain(..) {
            self.free.entry(size).or_default().insert(b);
        }
    }

    pub fn take_staging(&mut self, size: u64) -> Option<wgpu::Buffer> {
        self.staging.get_mut(&size).and_then(Vec::pop)
    }

    pub fn put_staging(&mut self, size: u64, b: wgpu::Buffer) {
        self.staging.entry(size).or_default().push(b);
    }

    /// Every buffer the pool holds (to destroy them).
    pub fn drain(&mut self) -> Vec<wgpu::Buffer> {
        let mut all: Vec<wgpu::Buffer> = self.pending_free.drain(..).map(|(_, b)| b).collect();
        for (_, v) in self.free.drain() {
            all.extend(v);
        }
        for (_, v) in self.staging.drain() {
            all.extend(v);
        }
        all
    }
}

/// Pool size classes: powers of two up to 1 MiB, then whole MiB.
pub(crate) fn round_size(bytes: u64) -> u64 {
    let b = bytes.max(16);
    if b <= 1 << 20 { b.next_power_of_two() } else { b.div_ceil(1 << 20) << 20 }
}

impl Gpu {
    /// A pooled storage buffer of at least `bytes`.
    pub(crate) fn alloc(&self, bytes: u64) -> Rc<Buf> {
        let size = round_size(bytes);
        let inner = &self.inner;
        let reused = {
            let idle = inner.rec.borrow().idle();
            let mut pool = inner.pool.borrow_mut();
            // nothing recorded since the last submit: buffers released since then are not referenced by any
            // unsubmitted command, so they can be reused at once
            if idle {
                pool.batch_done();
            }
            pool.free.get_mut(&size).and_then(|f| f.pop_first())
        };
        let buf = reused.unwrap_or_else(|| inner.create_buffer(size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC, "t5"));
        Rc::new(Buf { buf: Some(buf), size, owner: Rc::downgrade(inner), counter: inner.counter.clone(), used_seq: Cell::new(0), pooled: true })
    }

    /// A resident (not pooled) buffer holding `data` (weights).
    pub(crate) fn resident(&self, data: &[u8]) -> Rc<Buf> {
        let size = (data.len() as u64).max(16).div_ceil(16) * 16;
        let buf = self.inner.create_buffer(size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST, "weight");
        let whole = data.len() / 4 * 4;
        self.inner.queue.write_buffer(&buf, 0, &data[..whole]);
        if whole < data.len() {
            let mut tail = data[whole..].to_vec();
            tail.resize(4, 0);
            self.inner.queue.write_buffer(&buf, whole as u64, &tail);
        }
        Rc::new(Buf { buf: Some(buf), size, owner: Rc::downgrade(&self.inner), counter: self.inner.counter.clone(), used_seq: Cell::new(0), pooled: false })
    }

    /// A contiguous f32 tensor of `shape` from the pool.
    pub(crate) fn tensor(&self, shape: Vec<usize>) -> GpuTensor {
        let n: usize = shape.iter().product();
        let seq_cap = if shape.len() == 3 { shape[1] } else { 0 };
        GpuTensor { buf: self.alloc(n as u64 * 4), shape, seq_cap }
    }

    pub(crate) fn upload_u32(&self, data: &[u32]) -> Rc<Buf> {
        let b = self.alloc(data.len().max(1) as u64 * 4);
        if !data.is_empty() {
            self.inner.queue.write_buffer(b.raw(), 0, bytemuck::cast_slice(data));
        }
        b
    }

    /// Masks are uploaded once per distinct content (the encoder mask comes every decode step).
    pub(crate) fn upload_mask(&self, data: &[u32]) -> Rc<Buf> {
        let hit = self.inner.pool.borrow().masks.iter().find(|(v, _)| v.as_slice() == data).map(|(_, b)| b.clone());
        if let Some(b) = hit {
            return b;
        }
        let b = self.upload_u32(data);
        let evicted = {
            let mut pool = self.inner.pool.borrow_mut();
            let evicted = if pool.masks.len() >= 4 { Some(pool.masks.remove(0)) } else { None };
            pool.masks.push((data.to_vec(), b.clone()));
            evicted
        };
        drop(evicted); // its Buf goes back to the pool (needs the pool unborrowed)
        b
    }

    /// In-place ops on a tensor whose buffer a clone shares (`clone` is a cheap handle copy here, a deep
    /// copy on the CPU) first give it its own buffer.
    pub(crate) fn make_unique(&self, x: &mut GpuTensor) {
        if Rc::strong_count(&x.buf) > 1 {
            assert!(x.contiguous());
            let fresh = self.tensor(x.shape.clone());
            self.copy(x.buf.raw(), 0, fresh.buf.raw(), 0, x.numel() as u64 * 4);
            *x = fresh;
        }
    }
}
