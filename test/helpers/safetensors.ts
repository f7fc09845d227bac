/**
 * A tiny safetensors reader and writer for the tests (the library itself never parses safetensors
 * in JS: the engine does). Format: u64 little-endian header length, JSON header
 * `{name: {dtype, shape, data_offsets: [start, end]}, "__metadata__"?: {...}}`, then the data.
 */

export interface StEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface StFile {
  header: Record<string, StEntry>;
  metadata: Record<string, string> | undefined;
  /** Bytes after the header. */
  data: Uint8Array;
}

export function parseSafetensors(bytes: Uint8Array): StFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  const { __metadata__, ...header } = json;
  return {
    header: header as Record<string, StEntry>,
    metadata: __metadata__ as Record<string, string> | undefined,
    data: bytes.subarray(8 + n),
  };
}

/** The F32 tensors of a safetensors file. */
export function readF32Tensors(bytes: Uint8Array): Map<string, { shape: number[]; data: Float32Array }> {
  const f = parseSafetensors(bytes);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, e] of Object.entries(f.header)) {
    if (e.dtype !== "F32") throw new Error(`${name}: dtype ${e.dtype}, the test reader only reads F32`);
    const [s, t] = e.data_offsets;
    // copy: the slice is not necessarily 4-byte aligned
    const raw = f.data.slice(s, t);
    out.set(name, { shape: e.shape, data: new Float32Array(raw.buffer, raw.byteOffset, (t - s) / 4) });
  }
  return out;
}

/** Serialise tensors (raw bytes per tensor, as stored) into a safetensors file. */
export function writeSafetensors(
  tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header["__metadata__"] = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  if (pad) h = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let at = 8 + h.length;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}

/** All tensors of a file with their raw bytes, in file order. */
export function rawTensors(bytes: Uint8Array): { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] {
  const f = parseSafetensors(bytes);
  return Object.entries(f.header)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, bytes: f.data.slice(e.data_offsets[0], e.data_offsets[1]) }));
}
