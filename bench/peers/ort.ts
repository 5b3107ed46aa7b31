// The onnxruntime-node peer: the attention a Node user gets today from
// onnxruntime-node on the CPU EP, as one of three graphs built in memory:
//   mha    com.microsoft MultiHeadAttention (ORT's fused CPU kernel)
//   gqa    com.microsoft GroupQueryAttention, prefill pass (always causal)
//   matmul MatMul-Softmax-MatMul in plain ONNX ops, what an exported model
//          without attention fusion runs
// Inputs are our [B, S, H, D] layout, seen by ORT as [B, S, H*D]: the 3D
// query/key/value form the contrib ops take, so no copy or transpose on our side.
// float16 runs, but only GroupQueryAttention has a float16 CPU kernel: for the
// others ORT inserts Casts to float32 around the node (and expands Softmax into
// its function body), which is what a float16 model gets, so we time it as is.
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { ELEM_TYPE, encodeModel, type InitializerSpec, type ModelSpec, type NodeSpec } from './onnx_model.js';

export type OrtGraph = 'mha' | 'gqa' | 'matmul';
export interface OrtShape { B: number; H: number; S: number; D: number; causal: boolean; dtype: 'float32' | 'bfloat16' | 'float16' }
export type OrtData = Float32Array | Uint16Array;
export interface OrtRunner {
  /** q, k, v: [B, S, H, D] contiguous; float32 values, or float16 bits. Returns [B, S, H, D]. */
  run(q: OrtData, k: OrtData, v: OrtData): Promise<OrtData>;
  release(): Promise<void>;
}

type Ort = typeof import('onnxruntime-node');
let ort: Ort | undefined;

/** Loads onnxruntime-node; false when it is not installed (a devDependency), so the bench skips the peer. */
export async function loadOrt(): Promise<boolean> {
  try {
    ort ??= await import('onnxruntime-node');
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return false;
    throw e;
  }
}

const MS = 'com.microsoft';
const OPSETS = { '': 21, [MS]: 1 };

// Constant initializers, all little-endian raw_data.
function int32s(name: string, dims: number[], values: number[]): InitializerSpec {
  return { name, type: 'int32', dims, raw: new Uint8Array(Int32Array.from(values).buffer) };
}
function int64s(name: string, values: number[]): InitializerSpec {
  return { name, type: 'int64', dims: [values.length], raw: new Uint8Array(BigInt64Array.from(values, BigInt).buffer) };
}

function mha(s: OrtShape): ModelSpec {
  return {
    opsets: OPSETS,
    nodes: [{
      op: 'MultiHeadAttention', domain: MS, inputs: ['q', 'k', 'v'], outputs: ['out'],
      // unidirectional: top-left causal mask; with no past, query i sees keys j <= i. ORT's CPU
      // kernel takes its MLAS flash-attention path only when non-causal (float32, no mask, no
      // past); causal runs the unfused path with S*S scores per head.
      attrs: { num_heads: { i: s.H }, scale: { f: 1 / Math.sqrt(s.D) }, ...(s.causal ? { unidirectional: { i: 1 } } : {}) },
    }],
    inputs: qkvInputs(s), outputs: [output(s)],
  };
}

function gqa(s: OrtShape): ModelSpec {
  // A prefill pass with no KV cache: past_key/past_value left out, seqlens_k = total length - 1 per
  // batch row, total_sequence_length = S. present_key/present_value (the KV cache for a next step)
  // are optional outputs in 1.30 and left out: a one-shot attention has no use for them.
  return {
    opsets: OPSETS,
    nodes: [{
      op: 'GroupQueryAttention', domain: MS,
      inputs: ['q', 'k', 'v', '', '', 'seqlens_k', 'total_sequence_length'],
      outputs: ['out'],
      attrs: { num_heads: { i: s.H }, kv_num_heads: { i: s.H }, scale: { f: 1 / Math.sqrt(s.D) } },
    }],
    inputs: qkvInputs(s), outputs: [output(s)],
    initializers: [int32s('seqlens_k', [s.B], Array(s.B).fill(s.S - 1)), int32s('total_sequence_length', [], [s.S])],
  };
}

function matmul(s: OrtShape): ModelSpec {
  const { B, H, S, D } = s;
  // Float constants are stored as float32 and Cast to the model's type; constant folding
  // (any optimization level) turns the Cast into a plain initializer at session creation.
  const floats: InitializerSpec[] = [];
  const casts: NodeSpec[] = [];
  const floatConst = (name: string, dims: number[], values: Float32Array): void => {
    const stored = s.dtype === 'float32' ? name : `${name}_f32`;
    floats.push({ name: stored, type: 'float32', dims, raw: new Uint8Array(values.buffer) });
    if (stored !== name) casts.push({ op: 'Cast', inputs: [stored], outputs: [name], attrs: { to: { i: ELEM_TYPE[s.dtype] } } });
  };
  floatConst('scale', [], Float32Array.of(1 / Math.sqrt(D)));
  if (s.causal) {
    // -inf above the diagonal; every row keeps its diagonal, so no row is all -inf.
    const mask = new Float32Array(S * S);
    for (let i = 0; i < S; i++) mask.fill(-Infinity, i * S + i + 1, (i + 1) * S);
    floatConst('mask', [S, S], mask);
  }
  const heads = (x: string, perm: number[]): NodeSpec[] => [
    { op: 'Reshape', inputs: [x, 'bshd'], outputs: [`${x}4`] },
    { op: 'Transpose', inputs: [`${x}4`], outputs: [`${x}h`], attrs: { perm: { ints: perm } } },
  ];
  const scores = s.causal ? 'masked' : 'scaled';
  return {
    opsets: OPSETS,
    nodes: [
      ...casts,
      ...heads('q', [0, 2, 1, 3]),  // [B, H, S, D]
      ...heads('k', [0, 2, 3, 1]),  // [B, H, D, S]: K already transposed for Q·Kᵀ
      ...heads('v', [0, 2, 1, 3]),
      { op: 'MatMul', inputs: ['qh', 'kh'], outputs: ['qk'] },
      { op: 'Mul', inputs: ['qk', 'scale'], outputs: ['scaled'] },
      ...(s.causal ? [{ op: 'Add', inputs: ['scaled', 'mask'], outputs: ['masked'] }] : []),
      { op: 'Softmax', inputs: [scores], outputs: ['p'], attrs: { axis: { i: -1 } } },
      { op: 'MatMul', inputs: ['p', 'vh'], outputs: ['o4'] },
      { op: 'Transpose', inputs: ['o4'], outputs: ['ot'], attrs: { perm: { ints: [0, 2, 1, 3] } } },
      { op: 'Reshape', inputs: ['ot', 'bsx'], outputs: ['out'] },
    ],
    inputs: qkvInputs(s), outputs: [output(s)],
    initializers: [...floats, int64s('bshd', [B, S, H, D]), int64s('bsx', [B, S, H * D])],
  };
}

function qkvInputs(s: OrtShape) {
  return ['q', 'k', 'v'].map((name) => ({ name, type: s.dtype, dims: [s.B, s.S, s.H * s.D] }));
}
function output(s: OrtShape) {
  return { name: 'out', type: s.dtype, dims: [s.B, s.S, s.H * s.D] };
}

const GRAPHS: Record<OrtGraph, (s: OrtShape) => ModelSpec> = { mha, gqa, matmul };

/**
 * A session for one graph and shape, or why ORT cannot run it. Call loadOrt() first.
 * threads: intra-op threads (the bench uses 2); inter-op is 1 as the graphs are chains.
 */
export async function createOrtRunner(graph: OrtGraph, shape: OrtShape, threads: number): Promise<OrtRunner | { unsupported: string }> {
  if (!ort) throw new Error('createOrtRunner: call loadOrt() first');
  // Checked in 1.30 with in-graph Casts: MultiHeadAttention, GroupQueryAttention and MatMul have no
  // bfloat16 CPU kernel either, so feeding bfloat16 some other way would not help.
  if (shape.dtype === 'bfloat16') {
    return { unsupported: 'onnxruntime-node has no bfloat16 tensor type, nor the CPU EP bfloat16 attention/MatMul kernels' };
  }
  if (graph === 'gqa' && !shape.causal) return { unsupported: 'GroupQueryAttention is always causal' };

  let session: InferenceSession;
  try {
    session = await ort.InferenceSession.create(encodeModel(GRAPHS[graph](shape)), {
      executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
    });
  } catch (e) {
    // Typically "Could not find an implementation for <Op>(<version>) node ..." for a dtype with no CPU kernel.
    return { unsupported: String((e as Error).message).split('\n')[0].slice(0, 200) };
  }

  const { Tensor } = ort;
  const dims = [shape.B, shape.S, shape.H * shape.D];
  // The Tensor constructor checks that the array type matches the dtype.
  const tensor = (x: OrtData): OrtTensor =>
    shape.dtype === 'float32' ? new Tensor('float32', x as Float32Array, dims) : new Tensor('float16', x as Uint16Array, dims);
  return {
    async run(q, k, v) {
      const { out } = await session.run({ q: tensor(q), k: tensor(k), v: tensor(v) });
      return out.data as OrtData;
    },
    release: () => session.release(),
  };
}
