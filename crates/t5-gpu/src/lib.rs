//! t5-gpu: the WebGPU backend of t5-core, through `wgpu`.
//!
//! Natively `wgpu` drives Vulkan (a software driver in CI: Mesa lavapipe); compiled to wasm32 it
//! drives the runtime's `navigator.gpu` (a browser, or Dawn in Node through the `webgpu` package).
//! The model code is t5-core's, generic over [`Backend`]: [`Gpu`] implements it with WGSL kernels
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

pub mod generate;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use t5_core::backend::{AttentionMask, AttentionShape, Backend, TopKRows};
use t5_core::config::Activation;
use t5_core::{QWeight, T5Error, Tensor, WeightDtype};

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

/// What the device is and what it allows (reported to the facade / benchmark).
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    /// The adapter has `shader-f16`.
    pub shader_f16: bool,
    /// The device was opened with `shader-f16` and the float16 model's matmuls use it
    /// ([`GpuOptions::shader_f16`]).
    pub shader_f16_used: bool,
    /// Why the `shader-f16` kernels are not used although the adapter has the feature: the shader
    /// compiler refused them (the packed float16 kernels run instead).
    pub shader_f16_error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// kernels

const ACT: &str = include_str!("shaders/act.wgsl");
const EPILOGUE: &str = include_str!("shaders/epilogue.wgsl");
/// `pick`: the per-row sums of the matvec kernels, held in two vec4 registers.
const ROWS: &str = include_str!("shaders/rows.wgsl");

/// The weight binding of the matmul / embedding kernels and `wload(i)`, the weight at element `i` of the
/// row-major `[rows, k]` matrix: f32, or float16 packed two per u32 (k even) and unpacked to f32 (exact).
fn weight_source(source: &str, binding: u32, f16: bool, epilogue: bool) -> String {
    let decl = if f16 {
        format!("@group(0) @binding({binding}) var<storage, read> w: array<u32>;\nfn wload(i: u32) -> f32 {{ return unpack2x16float(w[i >> 1u])[i & 1u]; }}")
    } else {
        format!("@group(0) @binding({binding}) var<storage, read> w: array<f32>;\nfn wload(i: u32) -> f32 {{ return w[i]; }}")
    };
    with_weights(source, &decl, epilogue)
}

/// A kernel's module: the activations, the epilogue where the kernel has one, and the kernel with the
/// weight binding + `wload` declaration `decl` in place of its `//WEIGHTS` line.
fn with_weights(source: &str, decl: &str, epilogue: bool) -> String {
    let epi = if epilogue { EPILOGUE } else { "" };
    format!("{ACT}\n{epi}\n{}", source.replace("//WEIGHTS", decl))
}

/// The float16 model's matmuls through `shader-f16`: the `_h` kernels' shared part.
const HALF: &str = include_str!("shaders/half.wgsl");
/// A `_h` kernel's module: `enable f16;`, the activations, the epilogue, `half.wgsl`, the kernel.
///
/// Products are exact (f16 -> f32, then the packed kernels' fma sequence): a float16 x float16 product
/// fits an f32, so this is torch's float16 matmul (f32 sums of exact products) and the same numerics as
/// the packed path. Float16 products (`vec4<f32>(vec4<f16>(x) * w)` summed in f32) were measured on
/// lavapipe and fail the fp16 oracle (tests/fp16.rs): on the overflow fixture single products overflow
/// to ±inf (inf - inf = NaN past T5Block's clamp; logit 0 18.3 vs transformers' 0.95), and with the
/// overflowing products taken exact, the float16 rounding of each product alone still moves the logits
/// by up to 0.75 (tolerance 1e-3 + 2^-8 |logit|).
fn half_source(source: &str) -> String {
    format!("enable f16;\n{ACT}\n{EPILOGUE}\n{HALF}\n{source}")
}

struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The matmul kernels for one weight form.
struct Matmuls {
    tiled: Kernel,
    matvec: Kernel,
    /// software adapters: one invocation per column, no barriers
    matvec_thread: Kernel,
    /// software adapters: matmul without workgroup memory / barriers
    thread: Kernel,
    embedding: Kernel,
    /// decode-step matvecs with the layer norm of their input fused in
    matvec_norm: Kernel,
    matvec_thread_norm: Kernel,
}

impl Matmuls {
    fn new(device: &wgpu::Device, f16: bool) -> Matmuls {
        let t = if f16 { "16" } else { "" };
        let mm = |name: &str, src: &str| kernel(device, &format!("{name}{t}"), &weight_source(src, 2, f16, true), &[true, true, false]);
        Matmuls {
            tiled: mm("matmul_tiled", include_str!("shaders/matmul_tiled.wgsl")),
            matvec: mm("matvec", &format!("{ROWS}{}", include_str!("shaders/matvec.wgsl"))),
            matvec_thread: mm("matvec_thread", include_str!("shaders/matvec_thread.wgsl")),
            thread: mm("matmul_thread", include_str!("shaders/matmul_thread.wgsl")),
            matvec_norm: kernel(device, &format!("matvec_norm{t}"), &weight_source(&format!("{ROWS}{}", include_str!("shaders/matvec_norm.wgsl")), 2, f16, true), &[true, true, false, true, false]),
            matvec_thread_norm: kernel(device, &format!("matvec_thread_norm{t}"), &weight_source(include_str!("shaders/matvec_thread_norm.wgsl"), 2, f16, true), &[true, true, false, true, false]),
            embedding: kernel(device, &format!("embedding{t}"), &weight_source(include_str!("shaders/embedding.wgsl"), 1, f16, false), &[true, true, false]),
        }
    }

    /// Float16 weights through `shader-f16` (in use; k % 4 == 0: the weights are read as vec4<f16>).
    /// The embedding is a lookup: the packed float16 one.
    fn new_h16(device: &wgpu::Device) -> Matmuls {
        let mm = |name: &str, src: &str| kernel(device, name, &half_source(src), &[true, true, false]);
        let norm = |name: &str, src: &str| kernel(device, name, &half_source(src), &[true, true, false, true, false]);
        Matmuls {
            tiled: mm("matmul_tiled_h", include_str!("shaders/matmul_tiled_h.wgsl")),
            matvec: mm("matvec_h", &format!("{ROWS}{}", include_str!("shaders/matvec_h.wgsl"))),
            matvec_thread: mm("matvec_thread_h", include_str!("shaders/matvec_thread_h.wgsl")),
            thread: mm("matmul_thread_h", include_str!("shaders/matmul_thread_h.wgsl")),
            matvec_norm: norm("matvec_norm_h", &format!("{ROWS}{}", include_str!("shaders/matvec_norm_h.wgsl"))),
            matvec_thread_norm: norm("matvec_thread_norm_h", include_str!("shaders/matvec_thread_norm_h.wgsl")),
            embedding: kernel(device, "embedding16", &weight_source(include_str!("shaders/embedding.wgsl"), 1, true, false), &[true, true, false]),
        }
    }
}

/// The packed quantized forms a weight can stay resident in ([`QWeight::Q8`] / [`QWeight::Q4`]);
/// `None`: f32 or float16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QKind {
    None,
    Q8,
    Q4,
}

/// The weight binding and `wload(i)` of a quantized form: dequantize element `i` of the chunk in the
/// kernel (shaders/qweight8.wgsl, qweight4.wgsl), so every matmul / embedding kernel runs on it unchanged.
fn qweight_source(source: &str, binding: u32, q: QKind, epilogue: bool) -> String {
    let decl = match q {
        QKind::Q8 => include_str!("shaders/qweight8.wgsl"),
        QKind::Q4 => include_str!("shaders/qweight4.wgsl"),
        QKind::None => unreachable!("not a quantized form"),
    }
    .replace("BINDING", &binding.to_string());
    with_weights(source, &decl, epilogue)
}

impl Matmuls {
    /// The matmul kernels of a quantized form (fused dequantize in `wload`): built the first time a
    /// weight of that form is uploaded.
    fn quant(device: &wgpu::Device, q: QKind) -> Matmuls {
        let t = if q == QKind::Q8 { "_q8" } else { "_q4" };
        let mm = |name: &str, src: &str| kernel(device, &format!("{name}{t}"), &qweight_source(src, 2, q, true), &[true, true, false]);
        let norm = |name: &str, src: &str| kernel(device, &format!("{name}{t}"), &qweight_source(src, 2, q, true), &[true, true, false, true, false]);
        Matmuls {
            tiled: mm("matmul_tiled", include_str!("shaders/matmul_tiled.wgsl")),
            matvec: mm("matvec", &format!("{ROWS}{}", include_str!("shaders/matvec.wgsl"))),
            matvec_thread: mm("matvec_thread", include_str!("shaders/matvec_thread.wgsl")),
            thread: mm("matmul_thread", include_str!("shaders/matmul_thread.wgsl")),
            matvec_norm: norm("matvec_norm", &format!("{ROWS}{}", include_str!("shaders/matvec_norm.wgsl"))),
            matvec_thread_norm: norm("matvec_thread_norm", include_str!("shaders/matvec_thread_norm.wgsl")),
            embedding: kernel(device, &format!("embedding{t}"), &qweight_source(include_str!("shaders/embedding.wgsl"), 1, q, false), &[true, true, false]),
        }
    }
}

struct Kernels {
    /// f32 weights
    f32: Matmuls,
    /// float16 weights (packed two per u32)
    f16: Matmuls,
    /// float16 weights through `shader-f16` (in use), the `_h` kernels
    h16: Option<Matmuls>,
    /// q8 / q4 weights (packed, dequantized in the kernels), built on first use
    q8: std::cell::OnceCell<Matmuls>,
    q4: std::cell::OnceCell<Matmuls>,
    clamp_half: Kernel,
    rms_norm: Kernel,
    unary: Kernel,
    binary: Kernel,
    gather_rows: Kernel,
    attention: Kernel,
    argmax: Kernel,
    top_k: Kernel,
}

/// Binding 0: the uniform parameters (dynamic offset); then one storage buffer per entry of
/// `storage` (`true` = read-only).
fn kernel(device: &wgpu::Device, name: &str, source: &str, storage: &[bool]) -> Kernel {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) });
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: true, min_binding_size: NonZeroU64::new(PARAMS_SIZE) },
        count: None,
    }];
    for (i, &ro) in storage.iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only: ro }, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        });
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(name), entries: &entries });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: Some(name), bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pl),
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    Kernel { pipeline, layout }
}

impl Kernels {
    fn new(device: &wgpu::Device) -> Kernels {
        let with_act = |s: &str| format!("{ACT}\n{s}");
        Kernels {
            f32: Matmuls::new(device, false),
            f16: Matmuls::new(device, true),
            h16: None,
            q8: std::cell::OnceCell::new(),
            q4: std::cell::OnceCell::new(),
            clamp_half: kernel(device, "clamp_half", include_str!("shaders/clamp_half.wgsl"), &[false]),
            rms_norm: kernel(device, "rms_norm", &with_act(include_str!("shaders/rms_norm.wgsl")), &[true, true, false]),
            unary: kernel(device, "unary", &with_act(include_str!("shaders/unary.wgsl")), &[false]),
            binary: kernel(device, "binary", &with_act(include_str!("shaders/binary.wgsl")), &[false, true]),
            gather_rows: kernel(device, "gather_rows", include_str!("shaders/gather_rows.wgsl"), &[true, false]),
            attention: kernel(device, "attention", &with_act(include_str!("shaders/attention.wgsl")), &[true, true, true, true, true, false, false]),
            argmax: kernel(device, "argmax", include_str!("shaders/argmax.wgsl"), &[true, true, false]),
            top_k: kernel(device, "top_k", include_str!("shaders/topk.wgsl"), &[true, true, false]),
        }
    }
}

fn act_code(act: Activation) -> u32 {
    match act {
        Activation::Relu => 0,
        Activation::Gelu => 1,
        Activation::GeluNew => 2,
        Activation::Silu => 3,
    }
}

/// Size of one kernel's parameters (8 × u32) and the stride of their slots in the arena.
const PARAMS_SIZE: u64 = 32;
const PARAM_SLOTS: u64 = 4096;
/// Bind groups kept (the cache starts over when full).
const BIND_GROUP_CACHE: usize = 8192;
/// Matrix-vector kernel up to this many rows (decode steps), tiled matmul above.
const MATVEC_MAX_ROWS: usize = 8;

// ---------------------------------------------------------------------------------------------
// buffers

/// Counts live GPU buffers (created minus destroyed); survives the backend for `dispose` checks.
#[derive(Clone, Default)]
pub struct BufferCounter(Rc<Cell<isize>>);

impl BufferCounter {
    pub fn live(&self) -> isize {
        self.0.get()
    }
}

/// A pooled storage buffer. Dropping it hands it back to the pool (after the current batch is
/// submitted), or destroys it when the backend is gone.
pub struct Buf {
    buf: Option<wgpu::Buffer>,
    size: u64,
    owner: Weak<Inner>,
    counter: BufferCounter,
    /// KV-cache buffers: sequence positions written so far (appends go in place only at the end).
    used_seq: Cell<usize>,
    pooled: bool,
}

impl Buf {
    fn raw(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("live buffer")
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else { return };
        match self.owner.upgrade() {
            Some(inner) if self.pooled && !inner.disposed.get() => {
                let mut st = inner.state.borrow_mut();
                st.pending_bytes += self.size;
                st.pending_free.push((self.size, buf));
            }
            _ => {
                buf.destroy();
                self.counter.0.set(self.counter.0.get() - 1);
            }
        }
    }
}

/// An activation on the GPU: f32, row-major. 3-D tensors made by `cat_seq` keep `seq_cap`
/// positions per batch row (the KV cache's spare capacity); every other tensor is contiguous.
#[derive(Clone)]
pub struct GpuTensor {
    buf: Rc<Buf>,
    shape: Vec<usize>,
    seq_cap: usize,
}

impl GpuTensor {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }
    fn rows(&self) -> usize {
        let c = self.cols();
        if c == 0 { 0 } else { self.numel() / c }
    }
    fn contiguous(&self) -> bool {
        self.shape.len() != 3 || self.seq_cap == self.shape[1]
    }
}

/// A weight `[out, in]` split into row chunks that each fit one storage binding: f32, or float16
/// packed two per u32 (even `in` only; the kernels unpack to f32, or with `shader-f16` and `in % 4 == 0`
/// read them as vec4<f16>; products exact, sums f32).
pub struct GpuWeight {
    chunks: Vec<(usize, usize, Rc<Buf>)>, // (first row, rows, buffer)
    rows: usize,
    cols: usize,
    f16: bool,
    /// q8 / q4: packed codes + scales (+ zero points) per chunk (see [`Gpu::upload_quant`])
    q: QKind,
    /// resident bytes of a quantized weight (codes, scales, zero points as in [`QWeight::bytes`])
    q_bytes: usize,
}

struct State {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    slots: u64,
    /// free pooled buffers by size, handed out in a fixed order (the smallest handle first) so that
    /// a step of a shape seen before gets the same buffers and its cached bind groups
    free: HashMap<u64, std::collections::BTreeSet<wgpu::Buffer>>,
    pending_free: Vec<(u64, wgpu::Buffer)>,
    pending_bytes: u64,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Recently uploaded u32 masks / ids, reused when the same values come again (encoder mask
    /// each decode step).
    mask_cache: Vec<(Vec<u32>, Rc<Buf>)>,
    /// Bind groups by (kernel, storage buffers): the parameters come through one uniform arena with
    /// dynamic offsets and activations from the pool, so a decode step of a shape seen before binds
    /// the same buffers and creates no bind group.
    bind_groups: HashMap<(usize, Vec<wgpu::Buffer>), wgpu::BindGroup>,
    /// The last matmul, not recorded yet: the element-wise op that follows it may fold into its
    /// epilogue (see [`Pending`]).
    pending: Option<Pending>,
    pending_norm: Option<NormPending>,
}

/// Which matmul kernel a pending dispatch uses.
#[derive(Clone, Copy)]
enum MatmulKind {
    Tiled,
    Matvec,
    MatvecThread,
    Thread,
    MatvecNorm,
    MatvecThreadNorm,
}

/// A layer norm held back until its consumer is known: the decode-step matmul that reads it first
/// computes it in its prologue (and writes it out for the others); anything else records it as is.
struct NormPending {
    /// x, norm weight, out
    bufs: [wgpu::Buffer; 3],
    rows: u32,
    d: u32,
    eps: f32,
    half: bool,
}

/// A matmul dispatch held back by one op so that its neighbour can fuse into it: the residual add
/// (`x += linear(..)` writes `x + x@W^T` straight into `x`), the gated activation (`act(gate) *
/// linear(..)` into `gate`), the plain activation, and float16 rounding, all in the kernel's epilogue
/// (`shaders/epilogue.wgsl`). Only single-chunk weights are held back.
struct Pending {
    f16: bool,
    /// the `shader-f16` kernels (`_h`)
    h16: bool,
    q: QKind,
    kind: MatmulKind,
    params: [u32; 8],
    /// x, w, out (+ norm weight, normed x for the norm-fused kinds)
    bufs: Vec<wgpu::Buffer>,
    groups: (u32, u32, u32),
}

const EPI_ROUND: u32 = 1;
const EPI_ADD: u32 = 1 << 1;
const EPI_GATE: u32 = 2 << 1;
const EPI_ACT: u32 = 3 << 1;
const EPI_OP: u32 = 3 << 1;
const EPI_ROUND_RESULT: u32 = 8;
const EPI_HALF_ACT: u32 = 256;

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: DeviceInfo,
    limits: wgpu::Limits,
    kernels: Kernels,
    params_buf: wgpu::Buffer,
    param_align: u64,
    dummy: wgpu::Buffer,
    state: RefCell<State>,
    lost: Arc<Mutex<Option<String>>>,
    error: Arc<Mutex<Option<String>>>,
    disposed: Cell<bool>,
    counter: BufferCounter,
    dispatches: Cell<u64>,
    submits: Cell<u64>,
    /// bytes read back to the host so far
    read_back: Cell<u64>,
    bind_groups_created: Cell<u64>,
    /// element-wise ops folded into a matmul epilogue (no dispatch of their own)
    fused: Cell<u64>,
    kv_capacity: Cell<usize>,
    max_chunk_bytes: u64,
    max_buffer_bytes: u64,
    /// CPU-emulated adapter (SwiftShader, lavapipe): prefer barrier-free kernels
    software: bool,
    /// matmul dispatches of the `shader-f16` kernels
    h16_dispatches: Cell<u64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release_all();
        self.device.destroy();
    }
}

impl Inner {
    fn create_buffer(&self, size: u64, usage: wgpu::BufferUsages, label: &str) -> wgpu::Buffer {
        self.counter.0.set(self.counter.0.get() + 1);
        self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
    }

    fn destroy_buffer(&self, b: wgpu::Buffer) {
        b.destroy();
        self.counter.0.set(self.counter.0.get() - 1);
    }

    /// Destroy every buffer the backend itself owns (pool, staging, params, dummy). Buffers held
    /// by tensors / weights destroy themselves when dropped.
    fn release_all(&self) {
        let cached = std::mem::take(&mut self.state.borrow_mut().mask_cache);
        drop(cached);
        self.state.borrow_mut().bind_groups.clear();
        let mut st = self.state.borrow_mut();
        st.pending = None;
        st.pending_norm = None;
        st.pass = None;
        st.encoder = None;
        let mut all: Vec<wgpu::Buffer> = st.pending_free.drain(..).map(|(_, b)| b).collect();
        for (_, v) in st.free.drain() {
            all.extend(v);
        }
        for (_, v) in st.staging.drain() {
            all.extend(v);
        }
        drop(st);
        for b in all {
            self.destroy_buffer(b);
        }
        if !self.disposed.replace(true) {
            self.params_buf.destroy();
            self.dummy.destroy();
            self.counter.0.set(self.counter.0.get() - 2);
        }
    }
}

fn round_size(bytes: u64) -> u64 {
    let b = bytes.max(16);
    if b <= 1 << 20 { b.next_power_of_two() } else { b.div_ceil(1 << 20) << 20 }
}

/// Split `n` workgroups over x and y so that neither exceeds the per-dimension limit.
fn grid(n: u32, max: u32) -> (u32, u32) {
    if n <= max { (n.max(1), 1) } else { (max, n.div_ceil(max)) }
}

/// The WebGPU backend. Cloning shares the device (the model owns one clone, callers may keep
/// another for stats and `dispose`).
#[derive(Clone)]
pub struct Gpu {
    inner: Rc<Inner>,
}

impl Gpu {
    /// Open the default adapter and a device with the adapter's full limits.
    pub async fn new(opts: GpuOptions) -> GpuResult<Gpu> {
        #[cfg(target_arch = "wasm32")]
        web_check()?;
        #[cfg(target_arch = "wasm32")]
        let backends = wgpu::Backends::BROWSER_WEBGPU;
        #[cfg(not(target_arch = "wasm32"))]
        let backends = wgpu::Backends::VULKAN;
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| GpuError::Unavailable(format!("no WebGPU adapter: {e}")))?;
        let ai = adapter.get_info();
        let limits = adapter.limits();
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let use_f16 = match opts.shader_f16 {
            Some(true) if !shader_f16 => return Err(GpuError::Unavailable(format!("{} has no shader-f16; leave GpuOptions::shader_f16 unset to use it only when available", ai.name))),
            Some(on) => on,
            None => shader_f16,
        };
        let required_features = if use_f16 { wgpu::Features::SHADER_F16 } else { wgpu::Features::empty() };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor { label: Some("t5-gpu"), required_features, required_limits: limits.clone(), ..Default::default() })
            .await
            .map_err(|e| GpuError::Unavailable(format!("cannot open a WebGPU device on {}: {e}", ai.name)))?;
        let lost = Arc::new(Mutex::new(None::<String>));
        let l2 = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *l2.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        let error = Arc::new(Mutex::new(None::<String>));
        let e2 = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = e2.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let limits = device.limits();
        let info = DeviceInfo {
            adapter: ai.name.clone(),
            backend: format!("{:?}", ai.backend),
            device_type: format!("{:?}", ai.device_type),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size as u64,
            max_buffer_size: limits.max_buffer_size,
            shader_f16,
            shader_f16_used: false,
            shader_f16_error: None,
        };
        let param_align = (limits.min_uniform_buffer_offset_alignment as u64).max(PARAMS_SIZE);
        let counter = BufferCounter::default();
        counter.0.set(2);
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: param_align * PARAM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dummy = device.create_buffer(&wgpu::BufferDescriptor { label: Some("dummy"), size: 16, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
        let device_max = (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size) & !3;
        let max_chunk_bytes = opts.max_chunk_bytes.map_or(device_max, |m| m.min(device_max));
        let mut kernels = Kernels::new(&device);
        let mut info = info;
        if use_f16 {
            // a shader compiler that refuses the `enable f16` kernels leaves the packed float16 path, never a failed load
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let h = Matmuls::new_h16(&device);
            if opts.break_shader_f16_kernels {
                kernel(&device, "broken_h", "enable f16;\n@compute @workgroup_size(1) fn main() { let x: f16 = ; }", &[]);
            }
            match scope.pop().await {
                None => {
                    kernels.h16 = Some(h);
                    info.shader_f16_used = true;
                }
                Some(e) if opts.shader_f16 == Some(true) => return Err(GpuError::Unavailable(format!("the shader-f16 kernels do not compile on {}: {e}", ai.name))),
                Some(e) => info.shader_f16_error = Some(e.to_string()),
            }
        }
        Ok(Gpu {
            inner: Rc::new(Inner {
                device,
                queue,
                info,
                limits,
                kernels,
                params_buf,
                param_align,
                dummy,
                state: RefCell::new(State {
                    encoder: None,
                    pass: None,
                    params: Vec::new(),
                    slots: 0,
                    free: HashMap::new(),
                    pending_free: Vec::new(),
                    pending_bytes: 0,
                    staging: HashMap::new(),
                    mask_cache: Vec::new(),
                    bind_groups: HashMap::new(),
                    pending: None,
                    pending_norm: None,
                }),
                lost,
                error,
                disposed: Cell::new(false),
                counter,
                dispatches: Cell::new(0),
                submits: Cell::new(0),
                read_back: Cell::new(0),
                bind_groups_created: Cell::new(0),
                fused: Cell::new(0),
                kv_capacity: Cell::new(0),
                max_chunk_bytes,
                max_buffer_bytes: opts.max_buffer_bytes.map_or(device_max, |m| m.min(device_max)),
                software: opts.software_kernels.unwrap_or(ai.device_type == wgpu::DeviceType::Cpu),
                h16_dispatches: Cell::new(0),
            }),
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// Dispatches recorded so far (for "dispatches per decode step").
    pub fn dispatches(&self) -> u64 {
        self.inner.dispatches.get()
    }

    /// Command buffers submitted so far.
    pub fn submits(&self) -> u64 {
        self.inner.submits.get()
    }

    /// Bytes read back from the GPU so far.
    pub fn bytes_read_back(&self) -> u64 {
        self.inner.read_back.get()
    }

    /// Matmul dispatches recorded with the `shader-f16` kernels so far (float16 weights, feature in use).
    pub fn f16_matmuls(&self) -> u64 {
        self.inner.h16_dispatches.get()
    }

    /// The matmul kernels of a weight form: f32; float16 packed two per u32; float16 through
    /// `shader-f16` (`h16`).
    fn matmuls(&self, f16: bool, h16: bool, q: QKind) -> &Matmuls {
        let k = &self.inner.kernels;
        match (q, f16, h16, &k.h16) {
            (QKind::Q8, ..) => k.q8.get_or_init(|| Matmuls::quant(&self.inner.device, QKind::Q8)),
            (QKind::Q4, ..) => k.q4.get_or_init(|| Matmuls::quant(&self.inner.device, QKind::Q4)),
            (QKind::None, true, true, Some(h)) => h,
            (QKind::None, true, _, _) => &k.f16,
            _ => &k.f32,
        }
    }

    /// Whether a float16 weight goes through the `shader-f16` kernels (in use, k % 4 == 0).
    fn use_h16(&self, w: &GpuWeight) -> bool {
        w.f16 && w.cols % 4 == 0 && self.inner.kernels.h16.is_some()
    }

    fn count_h16(&self, h16: bool) {
        if h16 {
            self.inner.h16_dispatches.set(self.inner.h16_dispatches.get() + 1);
        }
    }

    /// Element-wise ops folded into a matmul's epilogue so far (each one dispatch saved).
    pub fn fused_ops(&self) -> u64 {
        self.inner.fused.get()
    }

    /// Bind groups created so far (the rest came from the cache).
    pub fn bind_groups_created(&self) -> u64 {
        self.inner.bind_groups_created.get()
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

    /// Device lost, disposed, or an uncaptured WebGPU error since the last check.
    pub fn check(&self) -> GpuResult<()> {
        // natively, callbacks (device lost) run inside poll; on the web this is a no-op
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
        if let Some(m) = self.inner.lost.lock().unwrap().clone() {
            return Err(GpuError::DeviceLost(m));
        }
        if self.inner.disposed.get() {
            return Err(GpuError::Disposed);
        }
        if let Some(m) = self.inner.error.lock().unwrap().take() {
            return Err(GpuError::Gpu(m));
        }
        Ok(())
    }

    /// Check that a tensor of `bytes` fits one storage binding.
    pub fn check_fits(&self, what: &str, bytes: u64) -> GpuResult<()> {
        let max = self.inner.max_buffer_bytes;
        if bytes > max {
            return Err(GpuError::Limits(format!("{what} needs {bytes} bytes in one buffer; this device allows {max} (maxStorageBufferBindingSize / maxBufferSize): use a smaller batch or sequence")));
        }
        Ok(())
    }

    fn alloc(&self, bytes: u64) -> Rc<Buf> {
        let size = round_size(bytes);
        let inner = &self.inner;
        let reused = {
            let mut st = inner.state.borrow_mut();
            // nothing recorded since the last submit: buffers released since then are not referenced
            // by any unsubmitted command, so they can be reused at once
            if st.encoder.is_none() && st.pending.is_none() && st.pending_norm.is_none() && !st.pending_free.is_empty() {
                let done: Vec<(u64, wgpu::Buffer)> = st.pending_free.drain(..).collect();
                for (s, b) in done {
                    st.free.entry(s).or_default().insert(b);
                }
                st.pending_bytes = 0;
            }
            st.free.get_mut(&size).and_then(|f| f.pop_first())
        };
        let buf = reused.unwrap_or_else(|| {
            inner.create_buffer(size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC, "t5")
        });
        Rc::new(Buf { buf: Some(buf), size, owner: Rc::downgrade(inner), counter: inner.counter.clone(), used_seq: Cell::new(0), pooled: true })
    }

    fn tensor(&self, shape: Vec<usize>) -> GpuTensor {
        let n: usize = shape.iter().product();
        let seq_cap = if shape.len() == 3 { shape[1] } else { 0 };
        GpuTensor { buf: self.alloc(n as u64 * 4), shape, seq_cap }
    }

    fn upload_u32(&self, data: &[u32]) -> Rc<Buf> {
        let b = self.alloc(data.len().max(1) as u64 * 4);
        if !data.is_empty() {
            self.inner.queue.write_buffer(b.raw(), 0, bytemuck::cast_slice(data));
        }
        b
    }

    /// Masks are uploaded once per distinct content (the encoder mask comes every decode step).
    fn upload_mask(&self, data: &[u32]) -> Rc<Buf> {
        let hit = self.inner.state.borrow().mask_cache.iter().find(|(v, _)| v.as_slice() == data).map(|(_, b)| b.clone());
        if let Some(b) = hit {
            return b;
        }
        let b = self.upload_u32(data);
        let mut st = self.inner.state.borrow_mut();
        let evicted = if st.mask_cache.len() >= 4 { Some(st.mask_cache.remove(0)) } else { None };
        st.mask_cache.push((data.to_vec(), b.clone()));
        drop(st);
        drop(evicted); // its Buf goes back to the pool (needs the state)
        b
    }

    fn end_pass(st: &mut State) {
        st.pass = None;
    }

    fn encoder<'a>(&self, st: &'a mut State) -> &'a mut wgpu::CommandEncoder {
        st.encoder.get_or_insert_with(|| self.inner.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("t5") }))
    }

    /// Record one dispatch of `k` with its parameters and storage buffers.
    fn dispatch(&self, k: &Kernel, params: [u32; 8], bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        self.record_pending();
        self.record(k, params, bufs, groups);
    }

    /// Record the held-back matmul, if any.
    fn record_pending(&self) {
        let norm = self.inner.state.borrow_mut().pending_norm.take();
        if let Some(n) = norm {
            let g = grid(n.rows, self.inner.limits.max_compute_workgroups_per_dimension);
            self.record(&self.inner.kernels.rms_norm, [n.rows, n.d, n.eps.to_bits(), n.half as u32, 0, 0, 0, 0], &[&n.bufs[0], &n.bufs[1], &n.bufs[2]], (g.0, g.1, 1));
        }
        let Some(p) = self.inner.state.borrow_mut().pending.take() else { return };
        let ks = self.matmuls(p.f16, p.h16, p.q);
        self.count_h16(p.h16);
        let k = match p.kind {
            MatmulKind::Tiled => &ks.tiled,
            MatmulKind::Matvec => &ks.matvec,
            MatmulKind::MatvecThread => &ks.matvec_thread,
            MatmulKind::Thread => &ks.thread,
            MatmulKind::MatvecNorm => &ks.matvec_norm,
            MatmulKind::MatvecThreadNorm => &ks.matvec_thread_norm,
        };
        let bufs: Vec<&wgpu::Buffer> = p.bufs.iter().collect();
        self.record(k, p.params, &bufs, p.groups);
    }

    /// The pending matmul when it writes `out` (and nothing fused into it yet uses `op`).
    fn pending_writes(&self, out: &wgpu::Buffer) -> bool {
        self.inner.state.borrow().pending.as_ref().is_some_and(|p| &p.bufs[2] == out)
    }

    /// Fold an element-wise op into the pending matmul's epilogue: `set` epilogue bits, and, with
    /// `target`, write into that buffer (in place) instead.
    fn fuse(&self, set: u32, target: Option<&wgpu::Buffer>) {
        let mut st = self.inner.state.borrow_mut();
        let p = st.pending.as_mut().expect("pending matmul");
        p.params[5] |= set;
        if let Some(t) = target {
            p.bufs[2] = t.clone();
        }
    }

    /// The pending matmul's epilogue op (0: none yet).
    fn pending_op(&self) -> u32 {
        self.inner.state.borrow().pending.as_ref().map_or(u32::MAX, |p| p.params[5] & EPI_OP)
    }

    /// Fuse `x op= y` where `y` is the pending matmul's output and `x` is a unique contiguous tensor
    /// of the same shape that the matmul does not read: the matmul writes the result into `x`.
    fn try_fuse_into(&self, x: &GpuTensor, y: &GpuTensor, set: u32) -> bool {
        if x.shape != y.shape || !x.contiguous() || !y.contiguous() || Rc::strong_count(&x.buf) > 1 || !self.pending_writes(y.buf.raw()) || self.pending_op() != 0 {
            return false;
        }
        if self.inner.state.borrow().pending.as_ref().is_some_and(|p| &p.bufs[0] == x.buf.raw()) {
            return false;
        }
        self.fuse(set, Some(x.buf.raw()));
        self.inner.fused.set(self.inner.fused.get() + 1);
        true
    }

    fn record(&self, k: &Kernel, params: [u32; 8], bufs: &[&wgpu::Buffer], groups: (u32, u32, u32)) {
        if self.inner.state.borrow().slots >= PARAM_SLOTS {
            self.flush();
        }
        let inner = &self.inner;
        let mut st = inner.state.borrow_mut();
        let offset = st.slots * inner.param_align;
        st.params.resize(offset as usize, 0);
        st.params.extend_from_slice(bytemuck::cast_slice(&params));
        st.slots += 1;
        let key = (k as *const Kernel as usize, bufs.iter().map(|b| (*b).clone()).collect::<Vec<_>>());
        let bg = match st.bind_groups.get(&key) {
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
                inner.bind_groups_created.set(inner.bind_groups_created.get() + 1);
                if st.bind_groups.len() >= BIND_GROUP_CACHE {
                    st.bind_groups.clear();
                }
                st.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        if st.pass.is_none() {
            let pass = self.encoder(&mut st).begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None }).forget_lifetime();
            st.pass = Some(pass);
        }
        let pass = st.pass.as_mut().unwrap();
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &bg, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        inner.dispatches.set(inner.dispatches.get() + 1);
    }

    fn copy(&self, src: &wgpu::Buffer, src_off: u64, dst: &wgpu::Buffer, dst_off: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.record_pending();
        let mut st = self.inner.state.borrow_mut();
        Self::end_pass(&mut st);
        self.encoder(&mut st).copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
    }

    /// Submit everything recorded so far as one command buffer (kernel parameters written just
    /// before it), then return the buffers released during the batch to the pool.
    pub fn flush(&self) {
        self.record_pending();
        let inner = &self.inner;
        let mut st = inner.state.borrow_mut();
        Self::end_pass(&mut st);
        if let Some(enc) = st.encoder.take() {
            if !st.params.is_empty() {
                inner.queue.write_buffer(&inner.params_buf, 0, &st.params);
            }
            inner.queue.submit([enc.finish()]);
            inner.submits.set(inner.submits.get() + 1);
        }
        st.params.clear();
        st.slots = 0;
        let done: Vec<(u64, wgpu::Buffer)> = st.pending_free.drain(..).collect();
        for (size, b) in done {
            st.free.entry(size).or_default().insert(b);
        }
        st.pending_bytes = 0;
    }

    /// Copy `bytes` of `src` to a mappable buffer, submit, and read it back.
    async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> GpuResult<Vec<u8>> {
        self.check()?;
        let size = round_size(bytes.div_ceil(4) * 4);
        let staging = {
            let mut st = self.inner.state.borrow_mut();
            st.staging.get_mut(&size).and_then(Vec::pop)
        }
        .unwrap_or_else(|| self.inner.create_buffer(size, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST, "staging"));
        self.copy(src, 0, &staging, 0, bytes.div_ceil(4) * 4);
        self.flush();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        // natively this runs the callback; on the web it is a no-op and the browser calls back
        let _ = self.inner.device.poll(wgpu::PollType::wait_indefinitely());
        let mapped = rx.await;
        self.check()?;
        match mapped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.inner.destroy_buffer(staging);
                return Err(self.lost_or(format!("mapAsync failed: {e}")));
            }
            Err(_) => {
                self.inner.destroy_buffer(staging);
                return Err(self.lost_or("mapAsync was cancelled".into()));
            }
        }
        let out = staging.get_mapped_range(0..bytes.div_ceil(4) * 4).map_err(|e| GpuError::Gpu(e.to_string()))?.to_vec();
        staging.unmap();
        self.inner.state.borrow_mut().staging.entry(size).or_default().push(staging);
        self.inner.read_back.set(self.inner.read_back.get() + bytes);
        Ok(out[..bytes as usize].to_vec())
    }

    fn lost_or(&self, msg: String) -> GpuError {
        match self.inner.lost.lock().unwrap().clone() {
            Some(m) => GpuError::DeviceLost(m),
            None => GpuError::Gpu(msg),
        }
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

    /// Argmax of each row on the GPU; only one id per row comes back. `suppress`: ids treated as
    /// -inf (EOS under `min_new_tokens`).
    pub async fn argmax_rows_async(&self, x: &GpuTensor, suppress: &[u32]) -> GpuResult<Vec<u32>> {
        let (rows, cols) = (x.rows(), x.cols());
        let sup = self.upload_mask(suppress);
        let out = self.alloc(rows as u64 * 4);
        self.dispatch(&self.inner.kernels.argmax, [rows as u32, cols as u32, suppress.len() as u32, 0, 0, 0, 0, 0], &[x.buf.raw(), sup.raw(), out.raw()], (rows as u32, 1, 1));
        let bytes = self.read_bytes(out.raw(), rows as u64 * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Each row's `k` largest values with their ids and its log-sum-exp parts, on the GPU
    /// ([`TopKRows`]; `shaders/topk.wgsl`): `2k + 2` words per row come back, not the row.
    pub async fn top_k_rows_async(&self, x: &GpuTensor, k: usize, suppress: &[u32]) -> GpuResult<TopKRows> {
        let (rows, cols) = (x.rows(), x.cols());
        let stride = 2 * k + 2;
        let sup = self.upload_mask(suppress);
        let out = self.alloc((rows * stride) as u64 * 4);
        self.dispatch(&self.inner.kernels.top_k, [rows as u32, cols as u32, k as u32, suppress.len() as u32, 0, 0, 0, 0], &[x.buf.raw(), sup.raw(), out.raw()], (rows as u32, 1, 1));
        let bytes = self.read_bytes(out.raw(), (rows * stride) as u64 * 4).await?;
        let w: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut t = TopKRows { k, values: Vec::with_capacity(rows * k), ids: Vec::with_capacity(rows * k), max: Vec::with_capacity(rows), sum_exp: Vec::with_capacity(rows) };
        for row in w.chunks(stride) {
            t.values.extend(row[..k].iter().map(|&b| f32::from_bits(b)));
            t.ids.extend_from_slice(&row[k..2 * k]);
            t.max.push(f32::from_bits(row[2 * k]));
            t.sum_exp.push(f32::from_bits(row[2 * k + 1]) as f64);
        }
        Ok(t)
    }

    /// Batch rows `index` of `x` into a new tensor by buffer copies (rows of a KV-cache view: its
    /// positions written so far, at the cache's stride).
    fn gather_batch(&self, x: &GpuTensor, index: &[usize], seq_cap: usize) -> GpuTensor {
        let per_row = x.numel() / x.shape[0].max(1);
        let (src_stride, out) = if x.shape.len() == 3 {
            let d = x.shape[2];
            let buf = self.alloc((index.len() * seq_cap * d) as u64 * 4);
            buf.used_seq.set(x.buf.used_seq.get());
            (x.seq_cap * d, GpuTensor { buf, shape: [vec![index.len()], x.shape[1..].to_vec()].concat(), seq_cap })
        } else {
            (per_row, self.tensor([vec![index.len()], x.shape[1..].to_vec()].concat()))
        };
        let dst_stride = if x.shape.len() == 3 { seq_cap * x.shape[2] } else { per_row };
        for (i, &j) in index.iter().enumerate() {
            self.copy(x.buf.raw(), (j * src_stride) as u64 * 4, out.buf.raw(), (i * dst_stride) as u64 * 4, per_row as u64 * 4);
        }
        out
    }

    /// In-place ops on a tensor whose buffer a clone shares (`clone` is a cheap handle copy here,
    /// a deep copy on the CPU) first give it its own buffer.
    fn make_unique(&self, x: &mut GpuTensor) {
        if Rc::strong_count(&x.buf) > 1 {
            assert!(x.contiguous());
            let fresh = self.tensor(x.shape.clone());
            self.copy(x.buf.raw(), 0, fresh.buf.raw(), 0, x.numel() as u64 * 4);
            *x = fresh;
        }
    }

    fn unary(&self, x: &GpuTensor, op: u32, act: u32, s: f32) {
        let n = x.numel() as u32;
        let g = grid(n.div_ceil(256), self.inner.limits.max_compute_workgroups_per_dimension);
        self.dispatch(&self.inner.kernels.unary, [n, op, act, s.to_bits(), 0, 0, 0, 0], &[x.buf.raw()], (g.0, g.1, 1));
    }

    /// Upload a `[rows, cols]` weight whose elements are `elem` bytes each (4: f32, 2: packed float16),
    /// split by rows into chunks of at most `max_chunk_bytes`.
    fn upload_rows(&self, rows: usize, cols: usize, bytes: &[u8], elem: u64, f16: bool) -> GpuWeight {
        let row_bytes = (cols as u64 * elem).max(4);
        let mut per = ((self.inner.max_chunk_bytes / row_bytes) as usize).max(1);
        if f16 && row_bytes % 4 != 0 {
            per = per.max(2) & !1; // whole u32 words per chunk
        }
        let mut chunks = Vec::new();
        let mut r0 = 0;
        while r0 < rows {
            let n = per.min(rows - r0);
            let len = n as u64 * cols as u64 * elem;
            let size = len.max(16).div_ceil(4) * 4;
            let buf = self.inner.create_buffer(size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST, "weight");
            let start = r0 as u64 * cols as u64 * elem;
            let mut data = bytes[start as usize..(start + len) as usize].to_vec();
            data.resize(data.len().div_ceil(4) * 4, 0);
            self.inner.queue.write_buffer(&buf, 0, &data);
            chunks.push((r0, n, Rc::new(Buf { buf: Some(buf), size, owner: Rc::downgrade(&self.inner), counter: self.inner.counter.clone(), used_seq: Cell::new(0), pooled: false })));
            r0 += n;
        }
        GpuWeight { chunks, rows, cols, f16, q: QKind::None, q_bytes: 0 }
    }

    fn norm(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32, half: bool) -> GpuTensor {
        assert!(x.contiguous());
        let (rows, d) = (x.rows(), x.cols());
        let out = self.tensor(x.shape.clone());
        if rows <= MATVEC_MAX_ROWS {
            // decode step: held back; the matvec that reads it first computes it (see NormPending)
            self.record_pending();
            self.inner.state.borrow_mut().pending_norm = Some(NormPending { bufs: [x.buf.raw().clone(), weight.buf.raw().clone(), out.buf.raw().clone()], rows: rows as u32, d: d as u32, eps, half });
            return out;
        }
        let g = grid(rows as u32, self.inner.limits.max_compute_workgroups_per_dimension);
        self.dispatch(&self.inner.kernels.rms_norm, [rows as u32, d as u32, eps.to_bits(), half as u32, 0, 0, 0, 0], &[x.buf.raw(), weight.buf.raw(), out.buf.raw()], (g.0, g.1, 1));
        out
    }

    fn binary(&self, x: &GpuTensor, y: &GpuTensor, op: u32, act: u32) {
        assert_eq!(x.shape, y.shape, "element-wise op on different shapes");
        let n = x.numel() as u32;
        let g = grid(n.div_ceil(256), self.inner.limits.max_compute_workgroups_per_dimension);
        self.dispatch(&self.inner.kernels.binary, [n, op, act, 0, 0, 0, 0, 0], &[x.buf.raw(), y.buf.raw()], (g.0, g.1, 1));
    }
}

/// Quantized weights (q8 / q4) resident packed.
impl Gpu {

    /// Upload a [`QWeight::Q8`] / [`QWeight::Q4`] packed, split by rows into chunks of at most
    /// `max_chunk_bytes`. Each chunk is one u32 array: a 4-word header (word offsets of the scales and
    /// of the zero points, log2 of the weights per scale), the codes of its rows (int8 four per u32 / t5-core's
    /// nibble layout eight per u32), its rows' scales, its rows' zero points (q4); the kernels'
    /// `wload` (shaders/qweight8.wgsl, qweight4.wgsl) dequantizes one element as
    /// [`QWeight::dequantize_row`] does. A form the kernels do not cover (scales not one per row or per
    /// block dividing the row) is dequantized to f32 instead.
    fn upload_quant(&self, w: QWeight) -> GpuWeight {
        let (q, n, k, group, codes, row_code_bytes, scales, zeros): (QKind, usize, usize, usize, &[u8], usize, &[f32], &[f32]) = match &w {
            QWeight::Q8 { n, k, codes, scales } => {
                let group = t5_core::dtype::quant::q8_group(*n, *k, scales.len());
                (QKind::Q8, *n, *k, group, bytemuck::cast_slice(codes), *k, scales, &[])
            }
            QWeight::Q4 { n, k, group, packed, scales, zeros } => (QKind::Q4, *n, *k, *group, packed, *k / 2, scales, zeros),
            _ => unreachable!("upload_quant takes q8 / q4"),
        };
        let ok = n > 0
            && k > 0
            && group > 0
            && k % group == 0
            && scales.len() == n * (k / group)
            && codes.len() == n * row_code_bytes
            && (q == QKind::Q8 || (k % 64 == 0 && zeros.len() == scales.len()));
        // the kernels find an element's scale by a shift: blocks of the largest power of two dividing
        // the group (the group itself for GGUF's 32 and torchao's 128, 256 for a q8 row of 768 weights),
        // each group's scale / zero point repeated over its blocks; tiny odd rows (block < 16) stay f32
        let block = if ok { 1usize << group.trailing_zeros() } else { 0 };
        if block < 16 {
            return self.upload_weight(w.to_tensor());
        }
        let reps = group / block;
        let expand = |v: &[f32]| -> Vec<u32> { v.iter().flat_map(|x| std::iter::repeat_n(x.to_bits(), reps)).collect() };
        let spr = k / block; // scales per row, as stored
        let row_bytes = (row_code_bytes + spr * 4 * if q == QKind::Q4 { 2 } else { 1 }) as u64;
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
            if q == QKind::Q4 {
                words.extend(expand(&zeros[g0..g1]));
            }
            words[2] = block.trailing_zeros();
            let size = words.len() as u64 * 4;
            let buf = self.inner.create_buffer(size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST, "weight");
            self.inner.queue.write_buffer(&buf, 0, bytemuck::cast_slice(&words));
            chunks.push((r0, nr, Rc::new(Buf { buf: Some(buf), size, owner: Rc::downgrade(&self.inner), counter: self.inner.counter.clone(), used_seq: Cell::new(0), pooled: false })));
            r0 += nr;
        }
        // build the form's kernels now (at load time) rather than in the middle of a step
        let _ = self.matmuls(false, false, q);
        // resident: codes + scales (+ zero points) as stored (QWeight::bytes), plus any repeated scales
        let q_bytes = n * row_code_bytes + n * spr * 4 * if q == QKind::Q4 { 2 } else { 1 };
        GpuWeight { chunks, rows: n, cols: k, f16: false, q, q_bytes }
    }
}

#[cfg(target_arch = "wasm32")]
fn web_check() -> GpuResult<()> {
    use js_sys::{global, Reflect};
    use wasm_bindgen::JsValue;
    let g = global();
    let has = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).map(|v| !v.is_undefined() && !v.is_null()).unwrap_or(false);
    let nav = Reflect::get(&g, &JsValue::from_str("navigator")).unwrap_or(JsValue::UNDEFINED);
    if nav.is_undefined() || !has(&nav, "gpu") {
        return Err(GpuError::Unavailable("navigator.gpu is missing (in Node: set globalThis.navigator.gpu from the `webgpu` package's create([]))".into()));
    }
    if !has(&g, "window") && !has(&g, "WorkerGlobalScope") {
        return Err(GpuError::Unavailable("neither `window` nor `WorkerGlobalScope` exists: wgpu needs one of them to find navigator.gpu (in Node / Deno define a WorkerGlobalScope class on globalThis)".into()));
    }
    Ok(())
}

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
        let (rows, cols) = (w.rows(), w.cols());
        self.upload_rows(rows, cols, bytemuck::cast_slice(&w.data), 4, false)
    }

    /// float16 weights stay float16 on the GPU (packed two per u32, half the bytes); an odd input
    /// dimension cannot be packed by rows and is kept as f32 (same values). q8 / q4 stay packed
    /// (dequantized element by element in the kernels, see [`Gpu::upload_quant`]); bf16 is dequantized.
    fn upload_packed(&self, w: QWeight) -> GpuWeight {
        match w {
            QWeight::F16 { n, k, data } if k % 2 == 0 => self.upload_rows(n, k, bytemuck::cast_slice(&data), 2, true),
            QWeight::F32 { n, k, data } => self.upload_weight(Tensor::new(vec![n, k], data)),
            w @ (QWeight::Q8 { .. } | QWeight::Q4 { .. }) => self.upload_quant(w),
            other => self.upload_weight(other.to_tensor()),
        }
    }

    fn weight_dtype(&self, w: &GpuWeight) -> WeightDtype {
        match w.q {
            QKind::Q8 => WeightDtype::Q8,
            QKind::Q4 => WeightDtype::Q4,
            QKind::None if w.f16 => WeightDtype::F16,
            QKind::None => WeightDtype::F32,
        }
    }

    fn weight_bytes(&self, w: &GpuWeight) -> usize {
        if w.q != QKind::None {
            return w.q_bytes;
        }
        w.rows * w.cols * if w.f16 { 2 } else { 4 }
    }

    fn round_half(&self, x: &mut GpuTensor) {
        if Rc::strong_count(&x.buf) == 1 && self.pending_writes(x.buf.raw()) {
            // the product (nothing fused yet) or the fused result
            self.fuse(if self.pending_op() == 0 { EPI_ROUND } else { EPI_ROUND_RESULT }, None);
            self.inner.fused.set(self.inner.fused.get() + 1);
            return;
        }
        self.make_unique(x);
        self.unary(x, 2, 0, 0.0);
    }

    fn clamp_half(&self, x: &mut GpuTensor) {
        self.make_unique(x);
        assert!(x.contiguous());
        self.dispatch(&self.inner.kernels.clamp_half, [x.numel() as u32, 0, 0, 0, 0, 0, 0, 0], &[x.buf.raw()], (1, 1, 1));
    }

    fn rms_norm_half(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32) -> GpuTensor {
        self.norm(x, weight, eps, true)
    }

    fn activate_half(&self, x: &mut GpuTensor, act: Activation) {
        if Rc::strong_count(&x.buf) == 1 && self.pending_writes(x.buf.raw()) && self.pending_op() == 0 {
            // act16 rounds its result
            self.fuse(EPI_ACT | EPI_HALF_ACT | act_code(act) << 4, None);
            self.inner.fused.set(self.inner.fused.get() + 1);
            return;
        }
        self.make_unique(x);
        self.unary(x, 3, act_code(act), 0.0);
    }

    fn gated_activate_half(&self, gate: &mut GpuTensor, up: &GpuTensor, act: Activation) {
        if self.try_fuse_into(gate, up, EPI_GATE | EPI_HALF_ACT | EPI_ROUND_RESULT | act_code(act) << 4) {
            return;
        }
        self.make_unique(gate);
        self.binary(gate, up, 2, act_code(act));
    }

    fn shape<'a>(&self, t: &'a GpuTensor) -> &'a [usize] {
        &t.shape
    }

    fn embedding(&self, table: &GpuWeight, ids: &[u32], shape: &[usize]) -> GpuTensor {
        let d = table.cols;
        let mut s = shape.to_vec();
        s.push(d);
        let out = self.tensor(s);
        let idb = self.upload_u32(ids);
        let gx = (d as u32).div_ceil(64).min(64);
        let k = &self.matmuls(table.f16, false, table.q).embedding;
        for (r0, n, buf) in &table.chunks {
            self.dispatch(k, [ids.len() as u32, d as u32, *r0 as u32, *n as u32, 0, 0, 0, 0], &[buf.raw(), idb.raw(), out.buf.raw()], (gx, ids.len() as u32, 1));
        }
        out
    }

    fn linear(&self, x: &GpuTensor, w: &GpuWeight) -> GpuTensor {
        let (m, k) = (x.rows(), x.cols());
        assert_eq!(w.cols, k, "linear: input has {k} features, weight expects {}", w.cols);
        assert!(x.contiguous());
        let n = w.rows;
        let mut shape = x.shape.clone();
        *shape.last_mut().unwrap() = n;
        let out = self.tensor(shape);
        let maxd = self.inner.limits.max_compute_workgroups_per_dimension;
        let h16 = self.use_h16(w);
        let ks = self.matmuls(w.f16, h16, w.q);
        if w.chunks.len() == 1 {
            // held back one op: the element-wise op that follows may fuse into its epilogue
            let (_, nc, buf) = &w.chunks[0];
            let nc32 = *nc as u32;
            let (kind, groups) = if m <= MATVEC_MAX_ROWS && self.inner.software {
                let g = grid(nc32.div_ceil(64), maxd);
                (MatmulKind::MatvecThread, (g.0, g.1, 1))
            } else if m <= MATVEC_MAX_ROWS {
                let g = grid(nc32.div_ceil(4), maxd);
                (MatmulKind::Matvec, (g.0, g.1, 1))
            } else if self.inner.software {
                (MatmulKind::Thread, (nc32.div_ceil(256), m as u32, 1))
            } else {
                (MatmulKind::Tiled, (nc32.div_ceil(64), (m as u32).div_ceil(64), 1))
            };
            // the layer norm that made x, still pending: computed in this matvec's prologue
            let norm = {
                let mut st = self.inner.state.borrow_mut();
                match &st.pending_norm {
                    Some(n) if m <= MATVEC_MAX_ROWS && &n.bufs[2] == x.buf.raw() => st.pending_norm.take(),
                    _ => None,
                }
            };
            if let Some(nrm) = norm {
                let kind = if self.inner.software { MatmulKind::MatvecThreadNorm } else { MatmulKind::MatvecNorm };
                let params = [m as u32, n as u32, k as u32, 0, nc32, 0, nrm.eps.to_bits(), nrm.half as u32];
                let [nx, nw, nout] = nrm.bufs;
                self.record_pending();
                self.inner.state.borrow_mut().pending = Some(Pending { f16: w.f16, h16, q: w.q, kind, params, bufs: vec![nx, buf.raw().clone(), out.buf.raw().clone(), nw, nout], groups });
                self.inner.fused.set(self.inner.fused.get() + 1);
                return out;
            }
            self.record_pending();
            let params = [m as u32, n as u32, k as u32, 0, nc32, 0, 0, 0];
            self.inner.state.borrow_mut().pending = Some(Pending { f16: w.f16, h16, q: w.q, kind, params, bufs: vec![x.buf.raw().clone(), buf.raw().clone(), out.buf.raw().clone()], groups });
            return out;
        }
        for (r0, nc, buf) in &w.chunks {
            let params = [m as u32, n as u32, k as u32, *r0 as u32, *nc as u32, 0, 0, 0];
            self.count_h16(h16);
            if m <= MATVEC_MAX_ROWS && self.inner.software {
                let g = grid((*nc as u32).div_ceil(64), maxd);
                self.dispatch(&ks.matvec_thread, params, &[x.buf.raw(), buf.raw(), out.buf.raw()], (g.0, g.1, 1));
            } else if m <= MATVEC_MAX_ROWS {
                let g = grid((*nc as u32).div_ceil(4), maxd);
                self.dispatch(&ks.matvec, params, &[x.buf.raw(), buf.raw(), out.buf.raw()], (g.0, g.1, 1));
            } else if self.inner.software {
                self.dispatch(&ks.thread, params, &[x.buf.raw(), buf.raw(), out.buf.raw()], ((*nc as u32).div_ceil(256), m as u32, 1));
            } else {
                self.dispatch(&ks.tiled, params, &[x.buf.raw(), buf.raw(), out.buf.raw()], ((*nc as u32).div_ceil(64), (m as u32).div_ceil(64), 1));
            }
        }
        out
    }

    fn rms_norm(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32) -> GpuTensor {
        self.norm(x, weight, eps, false)
    }

    fn add_assign(&self, x: &mut GpuTensor, y: &GpuTensor) {
        if self.try_fuse_into(x, y, EPI_ADD) {
            return;
        }
        self.make_unique(x);
        self.binary(x, y, 0, 0);
    }

    fn scale(&self, x: &mut GpuTensor, s: f32) {
        // the model scales a clone of the decoder output
        self.make_unique(x);
        self.unary(x, 0, 0, s);
    }

    fn activate(&self, x: &mut GpuTensor, act: Activation) {
        if Rc::strong_count(&x.buf) == 1 && self.pending_writes(x.buf.raw()) && self.pending_op() == 0 {
            self.fuse(EPI_ACT | act_code(act) << 4, None);
            self.inner.fused.set(self.inner.fused.get() + 1);
            return;
        }
        self.make_unique(x);
        self.unary(x, 1, act_code(act), 0.0);
    }

    fn gated_activate(&self, gate: &mut GpuTensor, up: &GpuTensor, act: Activation) {
        if self.try_fuse_into(gate, up, EPI_GATE | act_code(act) << 4) {
            return;
        }
        self.make_unique(gate);
        self.binary(gate, up, 1, act_code(act));
    }

    fn attention(&self, q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, bias: Option<&GpuTensor>, mask: AttentionMask<'_>, s: AttentionShape) -> GpuTensor {
        let inner = s.heads * s.head_dim;
        let out = self.tensor(vec![s.batch, s.q_len, inner]);
        let scores = self.alloc((s.batch * s.heads * s.q_len * s.kv_len).max(1) as u64 * 4);
        let mb = mask.key_mask.map(|m| self.upload_mask(m));
        let kv_bstride = if k.shape.len() == 3 { k.seq_cap } else { s.kv_len };
        assert_eq!(if v.shape.len() == 3 { v.seq_cap } else { s.kv_len }, kv_bstride, "K and V caches differ in capacity");
        let flags = bias.is_some() as u32 | (mb.is_some() as u32) << 1 | (s.half as u32) << 2;
        let causal = mask.causal_offset.map_or(u32::MAX, |o| o as u32);
        let dummy = &self.inner.dummy;
        self.dispatch(
            &self.inner.kernels.attention,
            [s.heads as u32, s.head_dim as u32, s.q_len as u32, s.kv_len as u32, causal, flags, kv_bstride as u32, 0],
            &[q.buf.raw(), k.buf.raw(), v.buf.raw(), bias.map_or(dummy, |b| b.buf.raw()), mb.as_ref().map_or(dummy, |m| m.raw()), scores.raw(), out.buf.raw()],
            (s.q_len as u32, s.heads as u32, s.batch as u32),
        );
        out
    }

    fn cat_seq(&self, a: &GpuTensor, b: &GpuTensor) -> GpuTensor {
        let (batch, s1, d) = (a.shape[0], a.shape[1], a.shape[2]);
        let s2 = b.shape[1];
        assert_eq!((b.shape[0], b.shape[2]), (batch, d));
        assert!(b.contiguous());
        let total = s1 + s2;
        let row = d as u64 * 4;
        // in place: `a` is the newest view of a cache buffer with room left
        // (a plain tensor has seq_cap == s1 < total, so only a cache buffer qualifies)
        if a.seq_cap >= total && a.buf.used_seq.get() == s1 {
            for r in 0..batch {
                self.copy(b.buf.raw(), (r * s2) as u64 * row, a.buf.raw(), (r * a.seq_cap + s1) as u64 * row, s2 as u64 * row);
            }
            a.buf.used_seq.set(total);
            return GpuTensor { buf: a.buf.clone(), shape: vec![batch, total, d], seq_cap: a.seq_cap };
        }
        let hint = self.inner.kv_capacity.get();
        let cap = if hint >= total { hint } else { 2 * total };
        let buf = self.alloc((batch * cap * d) as u64 * 4);
        for r in 0..batch {
            self.copy(a.buf.raw(), (r * a.seq_cap) as u64 * row, buf.raw(), (r * cap) as u64 * row, s1 as u64 * row);
            self.copy(b.buf.raw(), (r * s2) as u64 * row, buf.raw(), (r * cap + s1) as u64 * row, s2 as u64 * row);
        }
        buf.used_seq.set(total);
        GpuTensor { buf, shape: vec![batch, total, d], seq_cap: cap }
    }

    fn last_position(&self, x: &GpuTensor) -> GpuTensor {
        let (batch, seq, d) = (x.shape[0], x.shape[1], x.shape[2]);
        let out = self.tensor(vec![batch, 1, d]);
        let gx = (d as u32).div_ceil(64).min(64);
        self.dispatch(&self.inner.kernels.gather_rows, [batch as u32, d as u32, x.seq_cap as u32, seq as u32 - 1, 0, 0, 0, 0], &[x.buf.raw(), out.buf.raw()], (gx, batch as u32, 1));
        out
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
    fn top_k_rows(&self, x: &GpuTensor, k: usize, suppress: &[u32]) -> TopKRows {
        pollster::block_on(self.top_k_rows_async(x, k, suppress)).unwrap_or_else(|e| panic!("GPU top-k: {e}"))
    }

    #[cfg(target_arch = "wasm32")]
    fn top_k_rows(&self, _x: &GpuTensor, _k: usize, _suppress: &[u32]) -> TopKRows {
        unreachable!("GPU readback is asynchronous in wasm: use Gpu::top_k_rows_async")
    }

    fn select_batch(&self, x: &GpuTensor, index: &[usize]) -> GpuTensor {
        let cap = if x.shape.len() == 3 { x.shape[1] } else { 0 };
        self.gather_batch(x, index, cap)
    }

    fn reorder_batch(&self, x: &mut GpuTensor, index: &[usize], used: usize) {
        // a fresh buffer of the same capacity: rows are read before any is overwritten
        let mut view = x.clone();
        if view.shape.len() == 3 {
            view.shape[1] = used.min(view.shape[1]);
        }
        let mut out = self.gather_batch(&view, index, x.seq_cap);
        out.shape = x.shape.clone();
        *x = out;
    }
}
