use std::time::Instant;
fn main() {
    let (n, k) = (32128usize, 512usize);
    let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let x: Vec<f32> = (0..k).map(|i| (i % 5) as f32).collect();
    let mut out = vec![0.0f32; n];
    for m in [1usize, 4, 32] {
        let xm: Vec<f32> = x.iter().cycle().take(m * k).cloned().collect();
        let mut outm = vec![0.0f32; m * n];
        let t = Instant::now();
        let reps = 20;
        for _ in 0..reps { t5_core::backend::cpu::gemm::matmul_nt(m, n, k, &xm, &w, &mut outm); }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("m={m}: {:.2} ms, {:.1} GB/s of weights, {:.1} GFLOP/s", s * 1e3, (n * k * 4) as f64 / s / 1e9, (2 * m * n * k) as f64 / s / 1e9);
    }
    let t = Instant::now();
    let mut s = 0.0f32;
    for _ in 0..20 { s += w.iter().sum::<f32>(); }
    println!("sum: {:.1} GB/s ({s})", (n * k * 4 * 20) as f64 / t.elapsed().as_secs_f64() / 1e9);
    let _ = &mut out;
}
