// The norm prologue of matvec_thread.wgsl: each invocation computes the rows' scales (no barriers); the one
// of column 0 also writes norm(x) to h for the other matmuls that read it.
var<private> inv: array<f32, 8>;
fn prologue(l: u32, first: bool) {
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = 0u; kk < p.k; kk += 4u) { let v = x4(r, kk); s = fma4(v, v, s); }
    inv[r] = 1.0 / sqrt(s / f32(p.k) + p.eps);
  }
  if (first) {
    for (var r = 0u; r < p.m; r++) {
      for (var kk = 0u; kk < p.k; kk++) { h[r * p.k + kk] = normed(xs(r * p.k + kk), nws(kk), inv[r]); }
    }
  }
}
