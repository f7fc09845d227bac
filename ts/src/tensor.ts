/** A dense float tensor: row-major `data` with shape `dims` (transformers.js' `Tensor` shape). */
export class Tensor {
  constructor(
    readonly data: Float32Array,
    readonly dims: number[],
  ) {}

  get size(): number {
    return this.data.length;
  }

  /** Nested arrays, like `torch.Tensor.tolist()`. */
  tolist(): unknown[] {
    const build = (offset: number, d: number): unknown[] => {
      const n = this.dims[d]!;
      if (d === this.dims.length - 1) return Array.from(this.data.subarray(offset, offset + n));
      const stride = this.dims.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) => build(offset + i * stride, d + 1));
    };
    return this.dims.length === 0 ? [] : build(0, 0);
  }
}
