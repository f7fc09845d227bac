//! A fixed-point copy of one activation row, for the integer q8 matvec (the wasm kernel; the scalar
//! [`fixed::dot`] is its portable reference, checked natively).
//!
//! With `m = max |x|`, `X_t = round(x_t / m · 2^28)` (to nearest, ties to even), clamped to a signed
//! 29-bit integer (`-2^28 ≤ X_t ≤ 2^28 - 1`: only `x_t = m` itself moves, by one unit), is split into
//! two i16 limbs, `hi_t = X_t >> 14` (arithmetic, `-2^14 ≤ hi_t < 2^14`) and `lo_t = X_t & 0x3fff`
//! (`0..2^14`), so that `X_t = hi_t · 2^14 + lo_t` exactly; or, for the relaxed-SIMD q4 kernel, into
//! four bytes of 7 bits ([`FixedX::digits`]: `X_t = d3 · 2^21 + d2 · 2^14 + d1 · 2^7 + d0`, `d3`
//! signed in `-128..128`, the others in `0..128`; `hi = d3 · 2^7 + d2`, `lo = d1 · 2^7 + d0`), which
//! is why `X` stays in 29 bits. A q8 row's `Σ q_t X_t = 2^14 Σ q hi + Σ q lo` is then exact
//! integer arithmetic (i16 × i16 products summed in i32 lanes, flushed to i64), and the output is
//! `scale · (m · 2^-28) · Σ q X`, formed in f64 and rounded once to f32.
//!
//! Numerics: the only rounding before the final one is that of `x` itself, `|X_t · m 2^-28 − x_t|
//! ≤ 2^-29 m` (`2^-28 m` where `x_t = m`, the clamp; plus ~2^-53 relative from the f64 scaling), so
//! `|out − scale Σ q x| ≤ scale · Σ|q| · 2^-29 m + |out| 2^-24` (`2^-28` for the term of `x_t = m`). Against f32 accumulation of exact products (the float kernels): the same
//! order for k of a few thousand, and the error here does not grow with the length of the sums.
//! Non-finite `x` has no fixed-point form ([`FixedX::new`] gives `None`: callers use a float kernel);
//! all-zero `x` gives `unit = 0`, so every output is 0.

/// Fractional bits of `X = x / m · 2^BITS`.
pub const BITS: i32 = 28;
/// Bits of the low limb: `X = hi · 2^LIMB + lo`.
pub const LIMB: u32 = 14;
/// Weights of a row summed in i32 lanes before they are flushed into an i64. The SIMD kernel
/// keeps 4 i32 lanes per limb; each 16 weights add 4 products `q · limb` to every lane, each
/// `|q · limb| ≤ 128 · 2^14 = 2^21`, so after `FLUSH` weights a lane holds at most
/// `FLUSH / 16 · 4 · 2^21 = 2^30 < 2^31` (checked by [`dot`], which sums the same lanes with
/// overflow checks, in the unit tests).
pub const FLUSH: usize = 2048;

pub struct FixedX {
    /// `X >> LIMB`, in the order of `x`.
    pub hi: Vec<i16>,
    /// `X & (2^LIMB - 1)`.
    pub lo: Vec<i16>,
    /// `m · 2^-BITS`: `x_t ≈ X_t · unit`.
    pub unit: f64,
    /// `X` in four 7-bit digits, four planes of `x.len()` bytes: `digits[p · len + t]` is digit
    /// `3 - p` of `X_t` (the most significant plane first): `X_t >> 21` (signed), then `(X_t >> 14)
    /// & 127`, `(X_t >> 7) & 127`, `X_t & 127`. Empty until [`FixedX::with_digits`].
    pub digits: Vec<i8>,
}

impl FixedX {
    /// `None` when `x` holds a non-finite value. `X_t` rounds to nearest, ties to even
    /// ([`to_fixed`]); in wasm SIMD128 eight values at a time ([`convert_simd128`]), the same bits.
    pub fn new(x: &[f32]) -> Option<FixedX> {
        let m = max_abs(x)?;
        let one = 1i64 << BITS;
        let f = if m > 0.0 { one as f64 / m as f64 } else { 0.0 };
        let (mut hi, mut lo) = (vec![0i16; x.len()], vec![0i16; x.len()]);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let done = convert_simd128(x, f, &mut hi, &mut lo);
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        let done = 0;
        for t in done..x.len() {
            let q = to_fixed(x[t], f);
            hi[t] = (q >> LIMB) as i16;
            lo[t] = (q & ((1 << LIMB) - 1)) as i16;
        }
        Some(FixedX { hi, lo, unit: m as f64 / one as f64, digits: Vec::new() })
    }

    /// This row with its [`FixedX::digits`] (from `hi` and `lo`: `d3 = hi >> 7`, `d2 = hi & 127`,
    /// `d1 = lo >> 7`, `d0 = lo & 127`; `-2^14 ≤ hi < 2^14` keeps `d3` in a signed byte).
    pub fn with_digits(mut self) -> FixedX {
        let len = self.hi.len();
        let mut d = vec![0i8; 4 * len];
        let (d3, rest) = d.split_at_mut(len);
        let (d2, rest) = rest.split_at_mut(len);
        let (d1, d0) = rest.split_at_mut(len);
        for t in 0..len {
            let (h, l) = (self.hi[t], self.lo[t]);
            d3[t] = (h >> 7) as i8;
            d2[t] = (h & 127) as i8;
            d1[t] = (l >> 7) as i8;
            d0[t] = (l & 127) as i8;
        }
        self.digits = d;
        self
    }

    /// A row's output from its exact `Σ q X` and its scale.
    #[inline(always)]
    pub fn out(&self, s: i64, scale: f32) -> f32 {
        (s as f64 * self.unit * scale as f64) as f32
    }
}

/// `max |x|`, `None` when `x` holds a non-finite value: the largest of the bit patterns with the
/// sign cleared (for finite floats they order as the magnitudes do, and every NaN and infinity
/// lies above the largest finite one); an integer reduction, which the compiler vectorizes.
fn max_abs(x: &[f32]) -> Option<f32> {
    let m = x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
    (m < f32::INFINITY.to_bits()).then(|| f32::from_bits(m))
}

/// `X = round(v · f)`, ties to even, clamped to `-2^BITS..2^BITS` (a signed `BITS + 1`-bit integer;
/// `f = 2^BITS / max |x|`, so `v · f` reaches `2^BITS` for `v = max |x|` and passes `±2^BITS` only
/// by the rounding of `f`).
#[inline(always)]
pub fn to_fixed(v: f32, f: f64) -> i32 {
    let one = (1i64 << BITS) as f64;
    (v as f64 * f).round_ties_even().clamp(-one, one - 1.0) as i32
}

/// [`to_fixed`] and the limb split for `x`'s first `x.len() / 8 * 8` values, 8 at a time (returns
/// that count): `f64x2.nearest` rounds ties to even, the clamp and the truncation of an integral
/// value are exact, so every lane equals [`to_fixed`]'s result; `hi` and `lo` fit i16, so the
/// saturating narrowing changes nothing.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn convert_simd128(x: &[f32], f: f64, hi: &mut [i16], lo: &mut [i16]) -> usize {
    use core::arch::wasm32::*;
    let n8 = x.len() / 8 * 8;
    let (fv, one) = (f64x2_splat(f), f64x2_splat((1i64 << BITS) as f64));
    let top = f64x2_splat(((1i64 << BITS) - 1) as f64);
    let mask = i32x4_splat((1 << LIMB) - 1);
    // four f32 (one v128) to four i32 X values
    let four = |v: v128| {
        let q = |d: v128| i32x4_trunc_sat_f64x2_zero(f64x2_pmax(f64x2_neg(one), f64x2_pmin(top, f64x2_nearest(f64x2_mul(d, fv)))));
        let (a, b) = (q(f64x2_promote_low_f32x4(v)), q(f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 0, 1>(v, v))));
        i32x4_shuffle::<0, 1, 4, 5>(a, b)
    };
    for t in (0..n8).step_by(8) {
        // SAFETY: t + 8 <= n8 <= the length of x, hi and lo.
        unsafe {
            let a = four(v128_load(x.as_ptr().add(t) as *const v128));
            let b = four(v128_load(x.as_ptr().add(t + 4) as *const v128));
            v128_store(hi.as_mut_ptr().add(t) as *mut v128, i16x8_narrow_i32x4(i32x4_shr(a, LIMB), i32x4_shr(b, LIMB)));
            v128_store(lo.as_mut_ptr().add(t) as *mut v128, i16x8_narrow_i32x4(v128_and(a, mask), v128_and(b, mask)));
        }
    }
    n8
}

/// `Σ_t codes_t · X_t`, exactly, summed as the SIMD kernel sums it: products in 4 i32 lanes per
/// limb (weight `t` in lane `(t mod 8) / 2`), flushed into i64 every [`FLUSH`] weights; the i32
/// additions are checked, so a test on extreme inputs checks the `FLUSH` bound.
pub fn dot(codes: &[i8], fx: &FixedX) -> i64 {
    let mut s = 0i64;
    for (c, chunk) in codes.chunks(FLUSH).enumerate() {
        let (mut ah, mut al) = ([0i32; 4], [0i32; 4]);
        for (i, &q) in chunk.iter().enumerate() {
            let t = c * FLUSH + i;
            let l = (t % 8) / 2;
            ah[l] = ah[l].checked_add(q as i32 * fx.hi[t] as i32).expect("i32 lane overflow (hi)");
            al[l] = al[l].checked_add(q as i32 * fx.lo[t] as i32).expect("i32 lane overflow (lo)");
        }
        let (h, l): (i64, i64) = (ah.iter().map(|&v| v as i64).sum(), al.iter().map(|&v| v as i64).sum());
        s += (h << LIMB) + l;
    }
    s
}

/// Largest q4 group for [`q4_dot`]: per group, each i32 lane sums `group / 4` products `q · limb`,
/// `|q · limb| ≤ 15 · 2^14`, so a lane stays below `64 · 15 · 2^14 < 2^24` for groups up to 256
/// and converts to f32 exactly (checked by [`q4_dot`] in the unit tests).
pub const Q4_GROUP_MAX: usize = 256;

/// The i32 lane (of 4) in which the q4 kernel of this build sums the products of weight `t`: SIMD128's
/// `i32x4.dot_i16x8_s` adds weights `2l, 2l + 1` of each 8 into lane `l` (`(t mod 8) / 2`); the
/// relaxed-SIMD build's `i32x4.relaxed_dot_i8x16_i7x16_add_s` adds 4 bytes a lane (`(t mod 16) / 4`).
/// Each lane sums `group / 4` weights either way.
pub const fn q4_lane(t: usize) -> usize {
    if cfg!(target_feature = "relaxed-simd") {
        (t % 16) / 4
    } else {
        (t % 8) / 2
    }
}

/// q4 (`row`: one row's packed nibbles, [`crate::dtype::quant::q4_code`] layout; groups of `group`, a
/// multiple of 64 up to [`Q4_GROUP_MAX`]): `unit · Σ_g scale_g Σ_{t∈g} q_t X_t` (codes `q` in
/// 0..16, the zero points left to the caller), summed as the SIMD kernel sums it: per group,
/// exact products in 4 i32 lanes per limb (weight `t` in lane [`q4_lane`]; the additions and
/// the f32 exactness of the lanes checked), each lane's `2^14 hi + lo` formed in f32 (one
/// rounding), times the group's scale, accumulated in 4 f32 lanes; the lanes summed, times `unit`
/// in f64, rounded to f32.
///
/// Numerics: the fixed-point `x` adds at most `2^-29 m Σ_g |scale_g| Σ q` (as for q8); the f32
/// sums of the exact per-group lanes at most `(gpr + 4) 2^-24 Σ_g |scale_g| Σ q |X| unit` (one
/// rounding per lane value, one per product and sum over the `gpr = k / group` groups, two in the
/// final lane sum), plus the final rounding to f32, `|out| 2^-24`. The float kernel's error is of
/// the same order, and grows with the group length too; this one does not.
pub fn q4_dot(row: &[u8], group: usize, scales: &[f32], fx: &FixedX) -> f32 {
    assert!(group % 64 == 0 && group <= Q4_GROUP_MAX);
    let exact = |v: i32| {
        assert!(v.unsigned_abs() < 1 << 24, "i32 lane not exact in f32");
        v as f32
    };
    let mut tot = [0.0f32; 4];
    for (g, &scale) in scales.iter().enumerate().take(row.len() * 2 / group) {
        let (mut ah, mut al) = ([0i32; 4], [0i32; 4]);
        for t in g * group..(g + 1) * group {
            let (q, l) = (crate::dtype::quant::q4_code(row, t) as i32, q4_lane(t));
            ah[l] = ah[l].checked_add(q * fx.hi[t] as i32).expect("i32 lane overflow (hi)");
            al[l] = al[l].checked_add(q * fx.lo[t] as i32).expect("i32 lane overflow (lo)");
        }
        for l in 0..4 {
            tot[l] += (exact(ah[l]) * (1 << LIMB) as f32 + exact(al[l])) * scale;
        }
    }
    (tot.iter().sum::<f32>() as f64 * fx.unit) as f32
}
