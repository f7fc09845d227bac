//! t5-gpu: the WebGPU backend of t5-core, through `wgpu`.
//!
//! Natively `wgpu` drives Vulkan (a software driver in CI: Mesa lavapipe); compiled to wasm32 it
//! drives the runtime's `navigator.gpu` (a browser, or Dawn in Node through the `webgpu` package).
//! The model code is t5-core's, generic over `Backend`: [`Gpu`] implements it with WGSL kernels
//! (`src/shaders/`), so the numerics are the CPU backend's, op for op.
//!
//! **Readback is asynchronous.** Every op only records GPU work; nothing waits until a result is
//! read. On the web a read (`mapAsync`) cannot block, so the GPU path reads through async entry
//! points — [`Gpu::download_async`], [`Gpu::argmax_rows_async`], [`Gpu::top_k_rows_async`], and [`generate::generate_async`] /
//! [`generate::forward_async`] on top of the same `T5<B>` methods the CPU uses. The sync trait
//! methods `download` / `argmax_rows` block on `device.poll` natively and are unavailable in wasm
//! (the wasm bindings never call them).
//!
//! **Resident state.** Weights are uploaded once (split into row chunks when a tensor exceeds the
//! device's storage-binding / buffer limits). Activations come from a buffer pool keyed by size; a
//! buffer released while its batch of commands is still being recorded returns to the pool only
//! after that batch is submitted, so a reused buffer is never aliased inside one command buffer.
//! All dispatches of a step are recorded into one command encoder (one compute pass between
//! copies) and submitted once, when a result is read. Kernel parameters go through one uniform
//! arena with dynamic offsets, written once per submit. The self-attention KV cache is allocated
//! once with capacity for the whole generation ([`Gpu::set_kv_capacity`]) and `cat_seq` appends
//! into it in place.
//!
//! **Layout.** `device.rs` (adapter, limits, features, shared state), `pool.rs` (buffers), `recorder.rs`
//! (uniform arena, bind groups, submit, reads), `fusion.rs` (typed epilogue / prologue of the matmuls),
//! `kernels.rs` (typed kernel keys → WGSL generated from one template per op family, compiled pipelines
//! cached by key), `weights.rs` (resident weight forms), `ops/` (one file per op family), `backend.rs`
//! (the thin `impl Backend`).

mod backend;
mod device;
mod fusion;
pub mod generate;
mod kernels;
mod ops;
mod pool;
mod recorder;
mod weights;

use std::rc::Rc;

use t5_core::T5Error;

pub use device::DeviceInfo;
use device::Inner;
pub use pool::{Buf, BufferCounter, GpuTensor};
pub use weights::GpuWeight;

/// Errors of the GPU path. `code()` is the name the wasm bindings give the JS `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// No WebGPU here (no `navigator.gpu`, no adapter, no device).
    Unavailable(String),
    /// The model or an input does not fit the device's limits.
    Limits(String),
    /// The device was lost (driver reset, `destroy()`, tab backgrounded...). Reload the model.
    DeviceLost(String),
    /// A WebGPU validation / out-of-memory error.
    Gpu(String),
    /// The model was disposed.
    Disposed,
    /// An engine error (bad input, bad config...).
    Core(T5Error),
}

impl GpuError {
    pub fn code(&self) -> &'static str {
        match self {
            GpuError::Unavailable(_) => "WebGPUUnavailable",
            GpuError::Limits(_) => "WebGPULimits",
            GpuError::DeviceLost(_) => "DeviceLost",
            GpuError::Gpu(_) => "WebGPUError",
            GpuError::Disposed => "Disposed",
            GpuError::Core(e) => e.code(),
        }
    }
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::Unavailable(m) => write!(f, "WebGPU is not available: {m}"),
            GpuError::Limits(m) => write!(f, "WebGPU device limits: {m}"),
            GpuError::DeviceLost(m) => write!(f, "the WebGPU device was lost ({m}); reload the model (device: 'cpu' works everywhere)"),
            GpuError::Gpu(m) => write!(f, "WebGPU error: {m}"),
            GpuError::Disposed => write!(f, "the model was disposed"),
            GpuError::Core(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<T5Error> for GpuError {
    fn from(e: T5Error) -> Self {
        GpuError::Core(e)
    }
}

pub type GpuResult<T> = std::result::Result<T, GpuError>;

/// Options of [`Gpu::new`].
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Largest piece a weight is split into (bytes); `None`: the device's limits. Tests set it
    /// small to exercise splitting.
    pub max_chunk_bytes: Option<u64>,
    /// Barrier-free kernels for CPU-emulated adapters; `None`: when the adapter reports a CPU
    /// (tests force both ways so each kernel is checked on the software driver).
    pub software_kernels: Option<bool>,
    /// Largest activation buffer allowed (bytes); `None`: the device's maxStorageBufferBindingSize /
    /// maxBufferSize. Tests set it small to exercise the limit errors.
    pub max_buffer_bytes: Option<u64>,
    /// The float16 model's matmuls through WebGPU's `shader-f16` feature (weights loaded as `vec4<f16>`,
    /// f16 weight tiles, exact products summed in f32): `None` when the adapter has it, `Some(false)`
    /// never (the weights packed two per u32 and unpacked to f32, as without the feature), `Some(true)`
    /// required (an adapter without it is [`GpuError::Unavailable`]). Same numerics either way.
    pub shader_f16: Option<bool>,
    /// Testing only: make the `shader-f16` kernels fail to compile, as a browser's shader compiler
    /// that refuses them would (the device then keeps the packed float16 kernels).
    #[doc(hidden)]
    pub break_shader_f16_kernels: bool,
}

/// The WebGPU backend. Cloning shares the device (the model owns one clone, callers may keep
/// another for stats and `dispose`).
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Rc<Inner>,
}

impl Gpu {
    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// Dispatches recorded so far (for "dispatches per decode step").
    pub fn dispatches(&self) -> u64 {
        self.inner.stats.dispatches.get()
    }

    /// Command buffers submitted so far.
    pub fn submits(&self) -> u64 {
        self.inner.stats.submits.get()
    }

    /// Bytes read back from the GPU so far.
    pub fn bytes_read_back(&self) -> u64 {
        self.inner.stats.read_back.get()
    }

    /// Matmul dispatches recorded with the `shader-f16` kernels so far (float16 weights, feature in use).
    pub fn f16_matmuls(&self) -> u64 {
        self.inner.stats.f16_matmuls.get()
    }

    /// Element-wise ops folded into a matmul's epilogue (and layer norms into its prologue) so far, each
    /// one dispatch saved.
    pub fn fused_ops(&self) -> u64 {
        self.inner.stats.fused.get()
    }

    /// Bind groups created so far (the rest came from the cache).
    pub fn bind_groups_created(&self) -> u64 {
        self.inner.stats.bind_groups_created.get()
    }

    /// Kernels compiled so far (pipelines cached by key).
    pub fn kernels_compiled(&self) -> usize {
        self.inner.kernels.len()
    }

    pub fn buffer_counter(&self) -> BufferCounter {
        self.inner.counter.clone()
    }

    /// Largest weight piece (bytes); larger weights are split by rows.
    pub fn max_chunk_bytes(&self) -> u64 {
        self.inner.max_chunk_bytes
    }

    /// Self-attention KV cache capacity (positions) allocated at the first append.
    pub fn set_kv_capacity(&self, positions: usize) {
        self.inner.kv_capacity.set(positions);
    }

    /// Free every buffer the backend owns and mark it disposed: later work fails with
    /// [`GpuError::Disposed`]. Tensors and weights free their buffers when dropped.
    pub fn dispose(&self) {
        self.inner.release_all();
    }

    pub fn is_disposed(&self) -> bool {
        self.inner.disposed.get()
    }

    /// Destroy the device (tests of device loss).
    pub fn destroy_device(&self) {
        self.inner.device.destroy();
    }
}
