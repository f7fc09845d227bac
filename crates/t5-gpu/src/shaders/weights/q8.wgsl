// q8 weights (t5_core::QWeight::Q8) resident packed, one u32 array per row chunk of the weight:
//   [0] word offset of the scales, [1] word offset of the zero points (unused here), [2] log2 of the
//   weights per scale (the row length k when a power of two, 32 for GGUF Q8_0 blocks; other rows: blocks of the
//   largest power of two dividing k, the row's scale repeated), [3] 0,
//   then the int8 codes four per u32 (element i of the chunk, row-major, in byte i), then the f32 scales
//   ([rows, k / block], row-major: element i has scale i >> w[2]).
// wload(i): element i dequantized as QWeight::dequantize_row does: f32(q) * scale. wload4(i4): elements
// 4 i4 .. 4 i4 + 3 from one word of codes and one scale (blocks hold at least 16 weights), same values.
@group(0) @binding(BINDING) var<storage, read> w: array<u32>;
fn wload(i: u32) -> f32 {
  let q = bitcast<i32>(w[4u + (i >> 2u)] << (24u - ((i & 3u) << 3u))) >> 24u;
  return f32(q) * bitcast<f32>(w[w[0] + (i >> w[2])]);
}
fn wload4(i4: u32) -> vec4<f32> {
  let q = bitcast<vec4<i32>>(vec4<u32>(w[4u + i4]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return vec4<f32>(q) * bitcast<f32>(w[w[0] + ((i4 << 2u) >> w[2])]);
}
