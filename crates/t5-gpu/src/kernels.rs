//! Kernels: a typed [`KernelKey`] (the op, and for the matmul family the weight form — t5-core's
//! [`WeightDtype`], whether `shader-f16` reads it, whether rows are vec4-aligned — and the fused
//! prologue) → one WGSL module generated from one template per op family, compiled once and cached by
//! key ([`KernelCache`]).
//!
//! The matmul family (`shaders/matmul/*.wgsl`: tiled, matvec, matvec_thread, thread) is written against
//! a prelude generated here: `x4(r, k)` / `w4(c, k)` (four consecutive elements of an input row / weight
//! row as `vec4<f32>`: one vec4 load when the rows are vec4-aligned, four guarded loads otherwise),
//! `xin(r, k)` (the input, or its layer norm when the prologue fuses one), `fma4` (four products summed
//! in k order into an f32), the epilogue's `store`. Every weight form provides `wload(i)` / `wload4(i4)`
//! (f32; float16 packed two per u32 and unpacked; float16 as `vec4<f16>` through `shader-f16`; q8 / q4
//! dequantized, `shaders/weights/`), so the float16 and quantized kernels are emitted from the same
//! templates, never copied.
//!
//! Float16 weights: products are exact (f16 → f32, then f32 fma): a float16 × float16 product fits an
//! f32, so this is torch's float16 matmul (f32 sums of exact products), and the `shader-f16` and packed
//! paths run the same numerics. Float16 products (`vec4<f32>(vec4<f16>(x) * w)` summed in f32) were
//! measured on lavapipe and fail the fp16 oracle (tests/fp16.rs): on the overflow fixture single products
//! overflow to ±inf (inf - inf = NaN past T5Block's clamp; logit 0 18.3 vs transformers' 0.95), and with
//! the overflowing products taken exact, the float16 rounding of each product alone still moves the
//! logits by up to 0.75 (tolerance 1e-3 + 2^-8 |logit|).

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::rc::Rc;

use t5_core::WeightDtype;

use crate::fusion::Prologue;

const ACT: &str = include_str!("shaders/act.wgsl");
const EPILOGUE: &str = include_str!("shaders/epilogue.wgsl");

/// Size of one kernel's parameters (8 × u32, see [`Params`]) and the smallest stride of their slots in
/// the uniform arena.
pub(crate) const PARAMS_SIZE: u64 = 32;

/// A kernel's parameters: a struct per kernel, written to the uniform arena as the WGSL `struct P` of
/// its shader (8 words).
pub(crate) trait Params {
    fn words(&self) -> [u32; 8];
}

/// Which matmul template a dispatch uses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum MatmulKind {
    /// shared-memory tiles, 4x4 register tiles (many rows)
    Tiled,
    /// 4 columns per workgroup, 64 lanes over k (decode steps)
    Matvec,
    /// software adapters: one invocation per column, no barriers
    MatvecThread,
    /// software adapters: 4 columns of one row per invocation, no workgroup memory
    Thread,
}

impl MatmulKind {
    fn template(self) -> &'static str {
        match self {
            MatmulKind::Tiled => include_str!("shaders/matmul/tiled.wgsl"),
            MatmulKind::Matvec => include_str!("shaders/matmul/matvec.wgsl"),
            MatmulKind::MatvecThread => include_str!("shaders/matmul/matvec_thread.wgsl"),
            MatmulKind::Thread => include_str!("shaders/matmul/thread.wgsl"),
        }
    }
}

/// How a weight is read by a matmul / embedding kernel.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct WeightForm {
    /// the resident form (F32, F16, Q8, Q4; bf16 is resident dequantized)
    pub dtype: WeightDtype,
    /// float16 read as `vec4<f16>` through `shader-f16` (else packed two per u32 and unpacked)
    pub shader_f16: bool,
    /// rows of the weight and of the input a multiple of 4 elements: vec4 loads (else four guarded loads)
    pub vec4: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum KernelKey {
    Matmul { kind: MatmulKind, prologue: Prologue, form: WeightForm },
    Embedding(WeightDtype),
    RmsNorm,
    Unary,
    Binary,
    GatherRows,
    Attention,
    Argmax,
    TopK,
    ClampHalf,
}

impl KernelKey {
    /// Read-only flags of the storage bindings 1.. (binding 0 is the uniform parameters).
    fn storage(&self) -> &'static [bool] {
        match self {
            KernelKey::Matmul { prologue: Prologue::Norm, .. } => &[true, true, false, true, false],
            KernelKey::Matmul { .. } | KernelKey::Embedding(_) | KernelKey::RmsNorm | KernelKey::Argmax => &[true, true, false],
            KernelKey::TopK => &[true, true, true, false],
            KernelKey::Unary | KernelKey::ClampHalf => &[false],
            KernelKey::Binary => &[false, true],
            KernelKey::GatherRows => &[true, false],
            KernelKey::Attention => &[true, true, true, true, true, false, false],
        }
    }

    fn label(&self) -> String {
        format!("{self:?}")
    }

    /// The WGSL module of this kernel.
    pub fn source(&self) -> String {
        let with_act = |s: &str| format!("{ACT}\n{s}");
        match *self {
            KernelKey::Matmul { kind, prologue, form } => matmul_source(kind, prologue, form),
            KernelKey::Embedding(dtype) => {
                let form = WeightForm { dtype, shader_f16: false, vec4: false };
                format!("{}\n{}", weight_decl(form, 1), include_str!("shaders/matmul/embedding.wgsl"))
            }
            KernelKey::RmsNorm => with_act(include_str!("shaders/rms_norm.wgsl")),
            KernelKey::Unary => with_act(include_str!("shaders/unary.wgsl")),
            KernelKey::Binary => with_act(include_str!("shaders/binary.wgsl")),
            KernelKey::GatherRows => include_str!("shaders/gather_rows.wgsl").into(),
            KernelKey::Attention => with_act(include_str!("shaders/attention.wgsl")),
            KernelKey::Argmax => include_str!("shaders/argmax.wgsl").into(),
            KernelKey::TopK => include_str!("shaders/topk.wgsl").into(),
            KernelKey::ClampHalf => include_str!("shaders/clamp_half.wgsl").into(),
        }
    }
}

/// The weight binding and its loads `wload(i)` (element `i` of the row-major chunk, as f32) and, for
/// vec4-aligned rows, `wload4(i4)` (elements `4 i4 .. 4 i4 + 3`).
fn weight_decl(form: WeightForm, binding: u32) -> String {
    let b = format!("@group(0) @binding({binding}) var<storage, read>");
    match (form.dtype, form.shader_f16, form.vec4) {
        (WeightDtype::Q8, ..) => include_str!("shaders/weights/q8.wgsl").replace("BINDING", &binding.to_string()),
        (WeightDtype::Q4, ..) => include_str!("shaders/weights/q4.wgsl").replace("BINDING", &binding.to_string()),
        (WeightDtype::F16, true, _) => format!(
            "{b} w: array<vec4<f16>>;\nfn wload(i: u32) -> f32 {{ return f32(w[i >> 2u][i & 3u]); }}\nfn wload4(i4: u32) -> vec4<f32> {{ return vec4<f32>(w[i4]); }}\n"
        ),
        (WeightDtype::F16, false, true) => format!(
            "{b} w: array<vec2<u32>>;\nfn wload(i: u32) -> f32 {{ return unpack2x16float(w[i >> 2u][(i >> 1u) & 1u])[i & 1u]; }}\nfn wload4(i4: u32) -> vec4<f32> {{ let v = w[i4]; return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)); }}\n"
        ),
        (WeightDtype::F16, false, false) => format!("{b} w: array<u32>;\nfn wload(i: u32) -> f32 {{ return unpack2x16float(w[i >> 1u])[i & 1u]; }}\n"),
        (_, _, true) => format!("{b} w: array<vec4<f32>>;\nfn wload(i: u32) -> f32 {{ return w[i >> 2u][i & 3u]; }}\nfn wload4(i4: u32) -> vec4<f32> {{ return w[i4]; }}\n"),
        (_, _, false) => format!("{b} w: array<f32>;\nfn wload(i: u32) -> f32 {{ return w[i]; }}\n"),
    }
}

/// A read-only f32 binding `name` with `namev4(i, kk)`: the four elements from flat index `i` (at offset
/// `kk` of a row of `p.k`; beyond the row: 0), and `names(i)`: element `i`.
fn input_decl(name: &str, binding: u32, vec4: bool) -> String {
    let b = format!("@group(0) @binding({binding}) var<storage, read>");
    if vec4 {
        format!("{b} {name}: array<vec4<f32>>;\nfn {name}v4(i: u32, kk: u32) -> vec4<f32> {{ return {name}[i >> 2u]; }}\nfn {name}s(i: u32) -> f32 {{ return {name}[i >> 2u][i & 3u]; }}\n")
    } else {
        format!(
            "{b} {name}: array<f32>;\nfn {name}v4(i: u32, kk: u32) -> vec4<f32> {{\n  var v = vec4<f32>({name}[i], 0.0, 0.0, 0.0);\n  if (kk + 1u < p.k) {{ v.y = {name}[i + 1u]; }}\n  if (kk + 2u < p.k) {{ v.z = {name}[i + 2u]; }}\n  if (kk + 3u < p.k) {{ v.w = {name}[i + 3u]; }}\n  return v;\n}}\nfn {name}s(i: u32) -> f32 {{ return {name}[i]; }}\n"
        )
    }
}

/// The matmul family's shared part (see the module doc), then the template of `kind`.
fn matmul_source(kind: MatmulKind, prologue: Prologue, form: WeightForm) -> String {
    let mut s = String::new();
    if form.shader_f16 {
        s.push_str("enable f16;\n");
    }
    s.push_str(ACT);
    s.push_str("\nstruct P { m: u32, n: u32, k: u32, n_off: u32, nc: u32, epi: u32, eps: f32, half: u32 }\n@group(0) @binding(0) var<uniform> p: P;\n");
    s.push_str(&input_decl("x", 1, form.vec4));
    s.push_str(&weight_decl(form, 2));
    s.push_str("@group(0) @binding(3) var<storage, read_write> out: array<f32>;\n");
    s.push_str(EPILOGUE);
    s.push_str(
        "\n// acc + a . b in k order (exact products of f16 / dequantized weights, f32 sums)\n\
         fn fma4(a: vec4<f32>, b: vec4<f32>, acc: f32) -> f32 { return fma(a.w, b.w, fma(a.z, b.z, fma(a.y, b.y, fma(a.x, b.x, acc)))); }\n\
         fn x4(r: u32, kk: u32) -> vec4<f32> { return xv4(r * p.k + kk, kk); }\n",
    );
    if form.vec4 {
        s.push_str("fn w4(c: u32, kk: u32) -> vec4<f32> { return wload4((c * p.k + kk) >> 2u); }\n");
    } else {
        s.push_str(
            "fn w4(c: u32, kk: u32) -> vec4<f32> {\n  let i = c * p.k + kk;\n  var v = vec4<f32>(wload(i), 0.0, 0.0, 0.0);\n  if (kk + 1u < p.k) { v.y = wload(i + 1u); }\n  if (kk + 2u < p.k) { v.z = wload(i + 2u); }\n  if (kk + 3u < p.k) { v.w = wload(i + 3u); }\n  return v;\n}\n",
        );
    }
    match prologue {
        Prologue::None => s.push_str("fn prologue(l: u32, first: bool) {}\nfn xin(r: u32, kk: u32) -> vec4<f32> { return x4(r, kk); }\n"),
        Prologue::Norm => {
            s.push_str(&input_decl("nw", 4, form.vec4));
            s.push_str(include_str!("shaders/matmul/norm.wgsl"));
            s.push_str(if kind == MatmulKind::MatvecThread { include_str!("shaders/matmul/norm_thread.wgsl") } else { include_str!("shaders/matmul/norm_workgroup.wgsl") });
        }
    }
    s.push('\n');
    s.push_str(kind.template());
    s
}

/// A compiled kernel: the pipeline and its bind group layout.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Compiled kernels by key, each built the first time it is asked for (the backend asks for a weight
/// form's matmuls when a weight of that form is uploaded, so none is compiled in the middle of a step).
#[derive(Default)]
pub(crate) struct KernelCache {
    map: RefCell<HashMap<KernelKey, Rc<Kernel>>>,
}

impl KernelCache {
    pub fn get(&self, device: &wgpu::Device, key: KernelKey) -> Rc<Kernel> {
        if let Some(k) = self.map.borrow().get(&key) {
            return k.clone();
        }
        let k = Rc::new(compile(device, &key.label(), &key.source(), key.storage()));
        self.map.borrow_mut().insert(key, k.clone());
        k
    }

    /// Forget a key (a kernel that failed to compile inside an error scope).
    pub fn remove(&self, key: &KernelKey) {
        self.map.borrow_mut().remove(key);
    }

    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }
}

/// Binding 0: the uniform parameters (dynamic offset); then one storage buffer per entry of
/// `storage` (`true` = read-only).
pub(crate) fn compile(device: &wgpu::Device, name: &str, source: &str, storage: &[bool]) -> Kernel {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every matmul kernel of every weight form is one template with the form's loads in it: the float16
    /// kernels differ from the f32 ones only in the weight declaration (and `enable f16;`).
    #[test]
    fn f16_kernels_are_generated_from_the_f32_templates() {
        for kind in [MatmulKind::Tiled, MatmulKind::Matvec, MatmulKind::MatvecThread, MatmulKind::Thread] {
            for prologue in [Prologue::None, Prologue::Norm] {
                let f32 = matmul_source(kind, prologue, WeightForm { dtype: WeightDtype::F32, shader_f16: false, vec4: true });
                let h16 = matmul_source(kind, prologue, WeightForm { dtype: WeightDtype::F16, shader_f16: true, vec4: true });
                let strip = |s: &str| s.lines().filter(|l| !l.contains(" w: array<") && !l.starts_with("fn wload") && !l.starts_with("enable ")).collect::<Vec<_>>().join("\n");
                assert_eq!(strip(&f32), strip(&h16), "{kind:?} {prologue:?}");
                assert!(h16.starts_with("enable f16;") && h16.contains("array<vec4<f16>>"));
            }
        }
    }
}
