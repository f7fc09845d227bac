//! The device: adapter and device selection, limits and features (`shader-f16`), device loss and
//! uncaptured errors, and the backend's shared state ([`Inner`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use t5_core::WeightDtype;

use crate::fusion::Prologue;
use crate::kernels::{compile, KernelCache, KernelKey, MatmulKind, WeightForm, PARAMS_SIZE};
use crate::pool::{BufferCounter, Pool};
use crate::recorder::{Recorder, PARAM_SLOTS};
use crate::{Gpu, GpuError, GpuOptions, GpuResult};

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

/// Counters behind the statistics ([`Gpu::dispatches`] ...).
#[derive(Default)]
pub(crate) struct Stats {
    pub dispatches: Cell<u64>,
    pub submits: Cell<u64>,
    /// bytes read back to the host so far
    pub read_back: Cell<u64>,
    pub bind_groups_created: Cell<u64>,
    /// element-wise ops folded into a matmul epilogue / layer norms into a matmul prologue
    pub fused: Cell<u64>,
    /// matmul dispatches of the `shader-f16` kernels
    pub f16_matmuls: Cell<u64>,
}

pub(crate) struct Inner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: DeviceInfo,
    pub limits: wgpu::Limits,
    pub kernels: KernelCache,
    pub params_buf: wgpu::Buffer,
    pub param_align: u64,
    pub dummy: wgpu::Buffer,
    pub rec: RefCell<Recorder>,
    pub pool: RefCell<Pool>,
    lost: Arc<Mutex<Option<String>>>,
    error: Arc<Mutex<Option<String>>>,
    pub disposed: Cell<bool>,
    pub counter: BufferCounter,
    pub stats: Stats,
    pub kv_capacity: Cell<usize>,
    pub max_chunk_bytes: u64,
    pub max_buffer_bytes: u64,
    /// CPU-emulated adapter (SwiftShader, lavapipe): barrier-free kernels
    pub software: bool,
    /// float16 weights through `shader-f16`
    pub shader_f16: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.release_all();
        self.device.destroy();
    }
}

impl Inner {
    pub fn create_buffer(&self, size: u64, usage: wgpu::BufferUsages, label: &str) -> wgpu::Buffer {
        self.counter.add(1);
        self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
    }

    pub fn destroy_buffer(&self, b: wgpu::Buffer) {
        b.destroy();
        self.counter.add(-1);
    }

    /// Destroy every buffer the backend itself owns (pool, staging, params, dummy). Buffers held by
    /// tensors / weights destroy themselves when dropped.
    pub fn release_all(&self) {
        let masks = std::mem::take(&mut self.pool.borrow_mut().masks);
        drop(masks);
        self.rec.borrow_mut().clear();
        let all = self.pool.borrow_mut().drain();
        for b in all {
            self.destroy_buffer(b);
        }
        if !self.disposed.replace(true) {
            self.params_buf.destroy();
            self.dummy.destroy();
            self.counter.add(-2);
        }
    }
}

/// The matmul kernels a device runs for a weight form: barrier-free ones on software adapters; the
/// decode-step kind also with the layer norm fused in.
pub(crate) fn matmul_keys(form: WeightForm, software: bool) -> Vec<KernelKey> {
    let (matvec, many) = if software { (MatmulKind::MatvecThread, MatmulKind::Thread) } else { (MatmulKind::Matvec, MatmulKind::Tiled) };
    [(matvec, Prologue::None), (matvec, Prologue::Norm), (many, Prologue::None)].into_iter().map(|(kind, prologue)| KernelKey::Matmul { kind, prologue, form }).collect()
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
        let mut info = DeviceInfo {
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
        counter.add(2);
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: param_align * PARAM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dummy = device.create_buffer(&wgpu::BufferDescriptor { label: Some("dummy"), size: 16, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
        let device_max = (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size) & !3;
        let software = opts.software_kernels.unwrap_or(ai.device_type == wgpu::DeviceType::Cpu);
        let kernels = KernelCache::default();
        if use_f16 {
            // a shader compiler that refuses the `enable f16` kernels leaves the packed float16 path, never a failed load
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let keys = f16_keys(software);
            for k in &keys {
                kernels.get(&device, *k);
            }
            if opts.break_shader_f16_kernels {
                compile(&device, "broken_h", "enable f16;\n@compute @workgroup_size(1) fn main() { let x: f16 = ; }", &[]);
            }
            match scope.pop().await {
                None => info.shader_f16_used = true,
                Some(e) if opts.shader_f16 == Some(true) => return Err(GpuError::Unavailable(format!("the shader-f16 kernels do not compile on {}: {e}", ai.name))),
                Some(e) => {
                    keys.iter().for_each(|k| kernels.remove(k));
                    info.shader_f16_error = Some(e.to_string());
                }
            }
        }
        let shader_f16 = info.shader_f16_used;
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
                rec: RefCell::new(Recorder::default()),
                pool: RefCell::new(Pool::default()),
                lost,
                error,
                disposed: Cell::new(false),
                counter,
                stats: Stats::default(),
                kv_capacity: Cell::new(0),
                max_chunk_bytes: opts.max_chunk_bytes.map_or(device_max, |m| m.min(device_max)),
                max_buffer_bytes: opts.max_buffer_bytes.map_or(device_max, |m| m.min(device_max)),
                software,
                shader_f16,
            }),
        })
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

    pub(crate) fn lost_or(&self, msg: String) -> GpuError {
        match self.inner.lost.lock().unwrap().clone() {
            Some(m) => GpuError::DeviceLost(m),
            None => GpuError::Gpu(msg),
        }
    }

    /// Check that a tensor of `bytes` fits one storage binding.
    pub fn check_fits(&self, what: &str, bytes: u64) -> GpuResult<()> {
        let max = self.inner.max_buffer_bytes;
        if bytes > max {
            return Err(GpuError::Limits(format!("{what} needs {bytes} bytes in one buffer; this device allows {max} (maxStorageBufferBindingSize / maxBufferSize): use a smaller batch or sequence")));
        }
        Ok(())
    }
}

/// The `shader-f16` kernels of a device (compiled at start inside an error scope).
fn f16_keys(software: bool) -> Vec<KernelKey> {
    matmul_keys(WeightForm { dtype: WeightDtype::F16, shader_f16: true, vec4: true }, software)
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
