// A minimal ONNX ModelProto encoder: just enough protobuf to hand onnxruntime a
// one-graph model built in memory, so the ORT peer needs neither Python, nor a
// checked-in .onnx file per shape, nor protobufjs. Field numbers and enum values
// are those of onnx/onnx.proto (proto2).

/** TensorProto.DataType values for the element types the peers use. */
export const ELEM_TYPE = { float32: 1, int32: 6, int64: 7, float16: 10, bfloat16: 16 } as const;
export type ElemType = keyof typeof ELEM_TYPE;

/** A dimension: a fixed size, or a symbolic name (dim_param) left for run time. */
export type Dim = number | string;

/** Attribute values, tagged because a JS number cannot tell INT from FLOAT. */
export type Attr = { i: number } | { f: number } | { ints: readonly number[] };

export interface NodeSpec {
  op: string;
  domain?: string;                // '' (the default ONNX domain) when absent
  inputs: readonly string[];      // '' marks an optional input left out
  outputs: readonly string[];
  attrs?: Record<string, Attr>;
}

export interface ValueSpec { name: string; type: ElemType; dims: readonly Dim[] }

export interface InitializerSpec { name: string; type: ElemType; dims: readonly number[]; raw: Uint8Array }

export interface ModelSpec {
  opsets: Record<string, number>; // domain ('' for ONNX) -> version
  nodes: readonly NodeSpec[];
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  initializers?: readonly InitializerSpec[];
}

// Protobuf wire types.
const VARINT = 0, LEN = 2, I32 = 5;

/**
 * A message under construction, kept as a list of chunks so a large raw_data
 * (a causal mask is S*S elements) is copied once, into the final buffer.
 */
class Message {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  // int64 fields take negatives (axis = -1) as 10-byte two's complement varints.
  private varint(v: number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    for (; x > 0x7fn; x >>= 7n) out.push(Number(x & 0x7fn) | 0x80);
    out.push(Number(x));
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number): this {
    this.key(field, VARINT);
    this.varint(v);
    return this;
  }

  // Repeated scalars are written unpacked: onnx.proto is proto2 and does not declare them packed.
  ints(field: number, vs: readonly number[]): this {
    for (const v of vs) this.int(field, v);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, LEN);
    this.varint(b.length);
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Message): this {
    this.key(field, LEN);
    this.varint(m.length);
    for (const c of m.chunks) this.push(c);
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) { out.set(c, at); at += c.length; }
    return out;
  }
}

// AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
function attribute(name: string, a: Attr): Message {
  const m = new Message().string(1, name);
  if ('f' in a) return m.float(2, a.f).int(20, 1);
  if ('i' in a) return m.int(3, a.i).int(20, 2);
  return m.ints(8, a.ints).int(20, 7);
}

// NodeProto: input 1, output 2, op_type 4, attribute 5, domain 7.
function node(n: NodeSpec): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(4, n.op);
  for (const [name, a] of Object.entries(n.attrs ?? {})) m.message(5, attribute(name, a));
  if (n.domain) m.string(7, n.domain);
  return m;
}

// ValueInfoProto { name 1, type 2 } -> TypeProto { tensor_type 1 } -> Tensor { elem_type 1, shape 2 }
// -> TensorShapeProto { dim 1 } -> Dimension { dim_value 1 | dim_param 2 }.
function valueInfo(v: ValueSpec): Message {
  const shape = new Message();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, ELEM_TYPE[v.type]).message(2, shape);
  return new Message().string(1, v.name).message(2, new Message().message(1, tensorType));
}

// TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian, as ONNX specifies).
function tensor(t: InitializerSpec): Message {
  return new Message().ints(1, t.dims).int(2, ELEM_TYPE[t.type]).string(8, t.name).bytes(9, t.raw);
}

/** Serializes a single-graph ModelProto. */
export function encodeModel(spec: ModelSpec): Uint8Array {
  // GraphProto: node 1, name 2, initializer 5, input 11, output 12.
  const graph = new Message();
  for (const n of spec.nodes) graph.message(1, node(n));
  graph.string(2, 'main');
  for (const t of spec.initializers ?? []) graph.message(5, tensor(t));
  for (const v of spec.inputs) graph.message(11, valueInfo(v));
  for (const v of spec.outputs) graph.message(12, valueInfo(v));

  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 (OperatorSetIdProto: domain 1, version 2).
  // IR version 10 is the one that goes with ONNX opset 21 (ONNX 1.16).
  const model = new Message().int(1, 10).string(2, 'fmha-bench');
  model.message(7, graph);
  for (const [domain, version] of Object.entries(spec.opsets)) model.message(8, new Message().string(1, domain).int(2, version));
  return model.toBytes();
}
