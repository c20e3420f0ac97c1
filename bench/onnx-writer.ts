/**
 * Just enough ONNX protobuf writing for the benchmarks: a one-node MatMul model, `y = a · b`, with `a` [M,K] a graph
 * input and `b` [K,N] an initializer (weights live with the model, as in a transformer). The same bytes go to kiln
 * (`importOnnx`) and to onnxruntime-web, so both run the same graph. Field numbers are those of
 * `../shared/conformance/onnx.proto3`.
 */

class Writer {
  private readonly parts: Uint8Array[] = [];
  private varint(v: number): void {
    const out: number[] = [];
    while (v > 0x7f) {
      out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(v);
    this.parts.push(Uint8Array.from(out));
  }
  int(field: number, v: number): this {
    this.varint(field << 3); // wire type 0
    this.varint(v);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.varint((field << 3) | 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }
  finish(): Uint8Array {
    const n = this.parts.reduce((s, p) => s + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

const FLOAT = 1;

function valueInfo(name: string, dims: readonly number[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.msg(1, new Writer().int(1, d)); // Dimension.dim_value
  const tensorType = new Writer().int(1, FLOAT).msg(2, shape);
  return new Writer().str(1, name).msg(2, new Writer().msg(1, tensorType));
}

/** ONNX bytes of `y[M,N] = a[M,K] · b[K,N]` (opset 17), `b` stored as a raw little-endian f32 initializer. */
export function matmulModel(M: number, N: number, K: number, b: Float32Array): Uint8Array {
  const node = new Writer().str(1, 'a').str(1, 'b').str(2, 'y').str(3, 'matmul').str(4, 'MatMul');
  const init = new Writer()
    .int(1, K)
    .int(1, N)
    .int(2, FLOAT)
    .str(8, 'b')
    .bytes(9, new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  const graph = new Writer()
    .msg(1, node)
    .str(2, 'bench_matmul')
    .msg(5, init)
    .msg(11, valueInfo('a', [M, K]))
    .msg(12, valueInfo('y', [M, N]));
  return new Writer()
    .int(1, 8) // ir_version
    .str(2, 'kiln-bench')
    .msg(7, graph)
    .msg(8, new Writer().str(1, '').int(2, 17))
    .finish();
}
