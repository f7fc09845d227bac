// q4 weights (t5_core::QWeight::Q4) resident packed, one u32 array per row chunk of the weight:
//   [0] word offset of the scales, [1] word offset of the zero points, [2] log2 of the weights per
//   group (128: torchao; 32: GGUF Q4_0 / Q4_1; a group not a power of two is stored as blocks of the largest
//   power of two dividing it, its scale and zero point repeated), [3] 0,
//   then the packed nibbles, eight per u32, in t5-core's byte layout (rows of k / 2 bytes; per 64-weight
//   chunk c, byte c * 32 + j holds weight c * 64 + j in its low nibble and c * 64 + 32 + j in its high one;
//   rows are a multiple of 64 weights, so the layout is the same counted over the whole chunk), then the
//   f32 scales and zero points ([rows, k / block] each: element i has block i >> w[2]).
// wload(i): element i dequantized as QWeight::dequantize_row does: (f32(q) - 8) * scale + zero.
// wload4(i4): elements 4 i4 .. 4 i4 + 3, the low or high nibbles of one word (bytes b .. b + 3), one
// scale and zero point (blocks hold at least 16 weights): the same values from a quarter of the reads.
@group(0) @binding(BINDING) var<storage, read> w: array<u32>;
fn wload(i: u32) -> f32 {
  let b = ((i >> 6u) << 5u) | (i & 31u);          // byte of weight i
  let sh = ((b & 3u) << 3u) | ((i & 32u) >> 3u);  // its bit offset in the word (+4: high nibble)
  let q = (w[4u + (b >> 2u)] >> sh) & 15u;
  let g = i >> w[2];
  return (f32(q) - 8.0) * bitcast<f32>(w[w[0] + g]) + bitcast<f32>(w[w[1] + g]);
}
fn wload4(i4: u32) -> vec4<f32> {
  let i = i4 << 2u;
  let b = ((i >> 6u) << 5u) | (i & 31u);          // byte of weight i (a multiple of 4)
  let sh = (i & 32u) >> 3u;                        // 4: the high nibbles
  let q = (vec4<u32>(w[4u + (b >> 2u)]) >> (vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(sh))) & vec4<u32>(15u);
  let g = i >> w[2];
  return (vec4<f32>(q) - 8.0) * bitcast<f32>(w[w[0] + g]) + bitcast<f32>(w[w[1] + g]);
}
