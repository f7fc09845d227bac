// The norm prologue of matvec.wgsl: the workgroup reduces each row's sum of squares; the first workgroup
// also writes norm(x) to h for the other matmuls that read it.
var<workgroup> nred: array<f32, 256>;
var<workgroup> inv: array<f32, 8>;
fn prologue(l: u32, first: bool) {
  for (var r = 0u; r < p.m; r++) {
    var s = 0.0;
    for (var kk = l * 4u; kk < p.k; kk += 1024u) { let v = x4(r, kk); s = fma4(v, v, s); }
    nred[l] = s;
    workgroupBarrier();
    for (var st = 128u; st > 0u; st >>= 1u) {
      if (l < st) { nred[l] += nred[l + st]; }
      workgroupBarrier();
    }
    if (l == 0u) { inv[r] = 1.0 / sqrt(nred[0] / f32(p.k) + p.eps); }
    workgroupBarrier();
  }
  if (first) {
    for (var r = 0u; r < p.m; r++) {
      for (var kk = l; kk < p.k; kk += 256u) { h[r * p.k + kk] = normed(xs(r * p.k + kk), nws(kk), inv[r]); }
    }
  }
}
